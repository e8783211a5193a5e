"""Every tenant table moves its workspace's data version on commit (retainers.pagecache)."""

from django.db import migrations, models

from retainers.pagecache import DROP_FUNCTION_SQL, DROP_PEOPLE_SQL, FUNCTION_SQL, PEOPLE_SQL, track

TENANT_TABLES = [
    "billing_billingprofile",
    "billing_invoice",
    "billing_invoiceline",
    "billing_invoicesequence",
    "billing_payment",
    "billing_stripecustomer",
    "clients_amendment",
    "clients_attachment",
    "clients_client",
    "clients_contact",
    "clients_message",
    "clients_note",
    "clients_noterevision",
    "clients_plan",
    "clients_retainer",
    "clients_task",
    "delivery_deliverable",
    "delivery_ledgerentry",
    "delivery_period",
    "delivery_workitem",
    "renewals_renewal",
    "renewals_renewalsettings",
    "retainers_invitation",
    "retainers_membership",
]


class Migration(migrations.Migration):
    dependencies = [
        ("retainers", "0002_workspace_locale"),
        ("billing", "0002_closing_invoices"),
        ("clients", "0004_task_links"),
        ("delivery", "0003_period_prices"),
        ("renewals", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="DataVersion",
            fields=[
                ("workspace_id", models.BigIntegerField(primary_key=True, serialize=False)),
                ("version", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.RunSQL(FUNCTION_SQL, DROP_FUNCTION_SQL),
        # The ledger refuses UPDATE and DELETE itself: only its INSERTs can count.
        *(track(table, events="INSERT" if table == "delivery_ledgerentry" else "INSERT OR UPDATE OR DELETE")
          for table in TENANT_TABLES),
        track("retainers_workspace", events="UPDATE"),
        migrations.RunSQL(PEOPLE_SQL, DROP_PEOPLE_SQL),
    ]
