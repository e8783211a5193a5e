"""Row-level security on clients's tenant tables: the second wall (retainers/tenancy.py, docs/tenancy.md)."""

from django.db import migrations

from retainers import tenancy

TABLES = [
    "clients_client",
    "clients_contact",
    "clients_plan",
    "clients_retainer",
    "clients_amendment",
]


class Migration(migrations.Migration):
    dependencies = [("clients", "0012_overage_approval")]

    operations = [
        migrations.RunSQL(tenancy.policy_sql(TABLES), tenancy.drop_policy_sql(TABLES)),
        # A portal contact's own records, before the portal knows which workspace to open.
        migrations.RunSQL(
            tenancy.own_rows_policy_sql("clients_contact"), tenancy.drop_own_rows_policy_sql("clients_contact")
        ),
    ]
