from django.apps import AppConfig


class DemoConfig(AppConfig):
    """Demo and benchmark data. The one app allowed to depend on every other one."""

    name = "demo"
