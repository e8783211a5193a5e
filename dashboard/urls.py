from django.urls import include, path

from dashboard import clients, emails, search, views

# The client pages have the "dashboard" namespace (dashboard:client_detail); the dashboard itself
# is plain "dashboard", as the project has always linked to it.
client_patterns = (
    [
        path("clients/<int:client_id>/", clients.client_detail, name="client_detail"),
        # The client page's tabs: each a URL of its own (the bare URL shows the first, Work).
        path("clients/<int:client_id>/work/", clients.client_work, name="client_work"),
        path("clients/<int:client_id>/billing/", clients.client_billing, name="client_billing"),
        path("clients/<int:client_id>/communication/", clients.client_communication, name="client_communication"),
        path("clients/<int:client_id>/renewals/", clients.client_renewals, name="client_renewals"),
        path("clients/<int:client_id>/timeline/", clients.client_timeline, name="client_timeline"),
        path("onboarding/dismiss/", views.onboarding_dismiss, name="onboarding_dismiss"),
    ],
    "dashboard",
)

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("search/", search.search, name="search"),
    path("settings/emails/", emails.email_previews, name="email_previews"),
    path("settings/emails/<slug:template>/", emails.email_preview, name="email_preview"),
    path("settings/emails/<slug:template>/frame/", emails.email_preview_frame, name="email_preview_frame"),
    path("", include(client_patterns)),
]
