from django.urls import path

from renewals import views

app_name = "renewals"

urlpatterns = [
    path("renewals/", views.renewal_list, name="renewal_list"),
    path("renewals/settings/", views.renewal_settings, name="renewal_settings"),
    path("renewals/<int:renewal_id>/", views.renewal_detail, name="renewal_detail"),
    path("renewals/<int:renewal_id>/proposal/", views.renewal_edit, name="renewal_edit"),
    path("renewals/<int:renewal_id>/preview/", views.renewal_preview, name="renewal_preview"),
    path("renewals/<int:renewal_id>/send/", views.renewal_send, name="renewal_send"),
    path("renewals/<int:renewal_id>/evidence/", views.renewal_refresh, name="renewal_refresh"),
    path("renewals/<int:renewal_id>/record/", views.renewal_record, name="renewal_record"),
]
