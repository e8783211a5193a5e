from django.urls import path

from clients import views

app_name = "clients"

urlpatterns = [
    path("clients/", views.client_list, name="client_list"),
    path("clients/new/", views.client_create, name="client_create"),
    path("clients/import/", views.client_import, name="client_import"),
    path("clients/import/preview/", views.client_import_preview, name="client_import_preview"),
    path("clients/import/confirm/", views.client_import_confirm, name="client_import_confirm"),
    path("clients/<int:client_id>/edit/", views.client_edit, name="client_edit"),
    path("clients/<int:client_id>/archive/", views.client_archive, name="client_archive"),
    path("clients/<int:client_id>/unarchive/", views.client_unarchive, name="client_unarchive"),
    path("clients/<int:client_id>/contacts/new/", views.contact_create, name="contact_create"),
    path("clients/contacts/<int:contact_id>/edit/", views.contact_edit, name="contact_edit"),
    path("clients/contacts/<int:contact_id>/remove/", views.contact_remove, name="contact_remove"),
    path("clients/contacts/<int:contact_id>/portal/", views.contact_portal, name="contact_portal"),
    path("plans/", views.plan_list, name="plan_list"),
    path("plans/new/", views.plan_create, name="plan_create"),
    path("plans/<int:plan_id>/edit/", views.plan_edit, name="plan_edit"),
    path("plans/<int:plan_id>/archive/", views.plan_archive, name="plan_archive"),
    path("plans/<int:plan_id>/unarchive/", views.plan_unarchive, name="plan_unarchive"),
]
