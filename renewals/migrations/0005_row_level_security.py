"""Row-level security on renewals's tenant tables: the second wall (retainers/tenancy.py, docs/tenancy.md)."""

from django.db import migrations

from retainers import tenancy

TABLES = [
    "renewals_renewalsettings",
    "renewals_renewal",
]


class Migration(migrations.Migration):
    dependencies = [("renewals", "0004_renewal_next_terms_link")]

    operations = [
        migrations.RunSQL(tenancy.policy_sql(TABLES), tenancy.drop_policy_sql(TABLES)),
    ]
