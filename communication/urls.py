from django.urls import path

from communication import views

app_name = "communication"

urlpatterns = [
    path("clients/<int:client_id>/notes/", views.note_list, name="note_list"),
    path("clients/<int:client_id>/notes/new/", views.note_create, name="note_create"),
    path("notes/<int:note_id>/edit/", views.note_edit, name="note_edit"),
    path("notes/<int:note_id>/delete/", views.note_delete, name="note_delete"),
    path("clients/<int:client_id>/messages/", views.message_thread, name="message_thread"),
    path("attachments/<int:attachment_id>/", views.attachment_download, name="attachment_download"),
    path("tasks/", views.task_list, name="task_list"),
    path("tasks/new/", views.task_create, name="task_create"),
    path("clients/<int:client_id>/tasks/new/", views.client_task_create, name="client_task_create"),
    path("tasks/<int:task_id>/edit/", views.task_edit, name="task_edit"),
    path("tasks/<int:task_id>/complete/", views.task_complete, name="task_complete"),
    path("tasks/<int:task_id>/reopen/", views.task_reopen, name="task_reopen"),
    path("tasks/<int:task_id>/delete/", views.task_delete, name="task_delete"),
    path("clients/<int:client_id>/follow-up/", views.follow_up_create, name="follow_up_create"),
    path("clients/<int:client_id>/check-in/", views.checkin_update, name="checkin_update"),
    path("clients/<int:client_id>/reply-address/", views.reply_address_regenerate, name="reply_address_regenerate"),
]
