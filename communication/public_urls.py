"""Communication's URL outside any workspace: the inbound-mail webhook."""

from django.urls import path

from communication import public_views

app_name = "communication_public"

urlpatterns = [
    path("inbound/email/", public_views.receive_email, name="receive_email"),
]
