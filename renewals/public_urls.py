"""Renewal URLs outside any workspace: the emailed accept/decline links (the signed token is the key)."""

from django.urls import path

from renewals import views

app_name = "renewals_public"

urlpatterns = [
    path("renewal/<str:token>/accept/", views.respond_accept, name="respond_accept"),
    path("renewal/<str:token>/decline/", views.respond_decline, name="respond_decline"),
]
