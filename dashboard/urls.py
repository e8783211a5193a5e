from django.urls import include, path

from dashboard import clients, views

# The client pages have the "dashboard" namespace (dashboard:client_detail); the dashboard itself
# is plain "dashboard", as the project has always linked to it.
client_patterns = (
    [
        path("clients/<int:client_id>/", clients.client_detail, name="client_detail"),
        path("clients/<int:client_id>/timeline/", clients.client_timeline, name="client_timeline"),
        path("onboarding/dismiss/", views.onboarding_dismiss, name="onboarding_dismiss"),
    ],
    "dashboard",
)

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("", include(client_patterns)),
]
