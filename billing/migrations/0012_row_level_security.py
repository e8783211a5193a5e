"""Row-level security on billing's tenant tables: the second wall (retainers/tenancy.py, docs/tenancy.md)."""

from django.db import migrations

from retainers import tenancy

TABLES = [
    "billing_billingprofile",
    "billing_invoicesequence",
    "billing_invoice",
    "billing_invoiceline",
    "billing_payment",
    "billing_stripecustomer",
    "billing_stripeaccount",
]


class Migration(migrations.Migration):
    dependencies = [("billing", "0011_invoice_newest_first_index")]

    operations = [
        migrations.RunSQL(tenancy.policy_sql(TABLES), tenancy.drop_policy_sql(TABLES)),
    ]
