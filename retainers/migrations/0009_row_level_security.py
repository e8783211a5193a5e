"""Row-level security on retainers's tenant tables: the second wall (retainers/tenancy.py, docs/tenancy.md)."""

from django.db import migrations

from retainers import tenancy

TABLES = [
    "retainers_membership",
    "retainers_invitation",
    "retainers_dailyrun",
    "retainers_auditevent",
]


class Migration(migrations.Migration):
    dependencies = [("retainers", "0008_workspace_onboarding_dismissed_at")]

    operations = [
        migrations.RunSQL(tenancy.policy_sql(TABLES), tenancy.drop_policy_sql(TABLES)),
        migrations.RunSQL(tenancy.MEMBER_POLICY_SQL, tenancy.DROP_MEMBER_POLICY_SQL),
    ]
