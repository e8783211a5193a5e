from django.contrib import admin
from django.urls import include, path

from retainers import views

workspace_patterns = [
    path("", include("dashboard.urls")),  # name "dashboard"
    path("settings/", views.workspace_settings, name="workspace_settings"),
    path("team/", views.team, name="team"),
    path("team/<int:membership_id>/role/", views.member_role, name="member_role"),
    path("team/<int:membership_id>/remove/", views.member_remove, name="member_remove"),
    path("team/invitations/<int:invitation_id>/revoke/", views.invitation_revoke, name="invitation_revoke"),
    path("", include("clients.urls")),
    path("", include("delivery.urls")),
    path("", include("billing.urls")),
    path("", include("communication.urls")),
    path("", include("renewals.urls")),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("w/new/", views.workspace_create, name="workspace_create"),
    path("w/<slug:workspace_slug>/", include(workspace_patterns)),
    path("invite/<str:token>/", views.invitation_accept, name="invitation_accept"),
    path("portal/", include("portal.urls")),
    path("", include("billing.public_urls")),
    path("", include("delivery.public_urls")),
    path("", include("renewals.public_urls")),
    path("", include("communication.public_urls")),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
]
