from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The consultant's composed pages: the dashboard, the client page and its timeline. It reads
    every app to its left and owns no models."""

    name = "dashboard"
