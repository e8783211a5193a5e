"""Stripe Connect by onboarding: the workspace's account moves from a typed field of the billing
profile to `StripeAccount`, whose primary key makes an account one workspace's only."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

from retainers.pagecache import track


def move_accounts(apps, schema_editor):
    """Each typed account id becomes the workspace's account, taken as able to take charges (it
    was charging). An id typed in two workspaces stays with the first; the others are left
    without one, to connect through Stripe's onboarding."""
    BillingProfile = apps.get_model("billing", "BillingProfile")
    StripeAccount = apps.get_model("billing", "StripeAccount")
    taken = set()
    for profile in BillingProfile.objects.exclude(stripe_account_id="").order_by("workspace_id"):
        account_id = (profile.stripe_account_id or "").strip()
        if not account_id or account_id in taken:
            continue
        taken.add(account_id)
        StripeAccount.objects.create(
            workspace_id=profile.workspace_id, account_id=account_id, charges_enabled=True, details_submitted=True
        )


def move_back(apps, schema_editor):
    BillingProfile = apps.get_model("billing", "BillingProfile")
    StripeAccount = apps.get_model("billing", "StripeAccount")
    for account in StripeAccount.objects.filter(disconnected_at=None):
        BillingProfile.objects.filter(workspace_id=account.workspace_id).update(stripe_account_id=account.account_id)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0006_tax_treatment"),
        ("retainers", "0003_data_version"),
    ]

    operations = [
        migrations.CreateModel(
            name="StripeAccount",
            fields=[
                ("account_id", models.CharField(max_length=64, primary_key=True, serialize=False)),
                (
                    "charges_enabled",
                    models.BooleanField(default=False, help_text="Stripe's word: the account may take payments."),
                ),
                (
                    "details_submitted",
                    models.BooleanField(default=False, help_text="The onboarding form was completed."),
                ),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "updated_at",
                    models.DateTimeField(
                        default=django.utils.timezone.now, help_text="When Stripe's state was last read."
                    ),
                ),
                ("disconnected_at", models.DateTimeField(blank=True, null=True)),
                (
                    "workspace",
                    models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, to="retainers.workspace"),
                ),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("workspace",), name="stripeaccount_one_per_workspace")],
            },
        ),
        track("billing_stripeaccount"),
        migrations.RunPython(move_accounts, move_back),
        migrations.RemoveField(model_name="billingprofile", name="stripe_account_id"),
    ]
