from django.urls import include, path

from dashboard import clients, search, views

# The client pages have the "dashboard" namespace (dashboard:client_detail); the dashboard itself
# is plain "dashboard", as the project has always linked to it.
client_patterns = (
    [
        path("clients/<int:client_id>/", clients.client_detail, name="client_detail"),
        path("clients/<int:client_id>/timeline/", clients.client_timeline, name="client_timeline"),
    ],
    "dashboard",
)

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("search/", search.search, name="search"),
    path("", include(client_patterns)),
]
