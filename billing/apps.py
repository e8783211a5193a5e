from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        from billing.branding import workspace_branding
        from retainers.models import Workspace
        from retainers.outbox import email_branding

        email_branding.connect(workspace_branding, sender=Workspace, dispatch_uid="billing.workspace_branding")
