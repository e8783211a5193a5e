"""Row-level security on communication's tenant tables: the second wall (retainers/tenancy.py, docs/tenancy.md)."""

from django.db import migrations

from retainers import tenancy

TABLES = [
    "clients_note",
    "clients_noterevision",
    "clients_message",
    "clients_attachment",
    "clients_task",
    "communication_replyaddress",
    "communication_inboundemail",
]


class Migration(migrations.Migration):
    dependencies = [("communication", "0004_search")]

    operations = [
        migrations.RunSQL(tenancy.policy_sql(TABLES), tenancy.drop_policy_sql(TABLES)),
    ]
