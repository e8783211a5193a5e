from django.apps import AppConfig
from django.db.models.signals import post_migrate, pre_migrate


class RetainersConfig(AppConfig):
    name = "retainers"
    verbose_name = "Retainers core"

    def ready(self) -> None:
        from retainers import tenancy

        # Migrations (data migrations included) see every workspace's rows; the bypass ends with them.
        pre_migrate.connect(tenancy.migrations_bypass_on, dispatch_uid="retainers.tenancy.bypass_on")
        post_migrate.connect(tenancy.migrations_bypass_off, dispatch_uid="retainers.tenancy.bypass_off")
