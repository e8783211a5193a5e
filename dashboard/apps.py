from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The consultant's first page. Like `demo/`, it reads every other app; it owns no models."""

    name = "dashboard"
