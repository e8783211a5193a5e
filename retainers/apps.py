from django.apps import AppConfig


class RetainersConfig(AppConfig):
    name = "retainers"
    verbose_name = "Retainers core"
