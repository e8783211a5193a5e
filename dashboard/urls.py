from django.urls import path

from dashboard import views

# No app namespace: the project links to the dashboard as plain "dashboard" everywhere.
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
]
