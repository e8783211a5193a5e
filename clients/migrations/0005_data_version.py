"""Writes to these tables move their workspace's data version (retainers.pagecache); so does
renaming a person who is a member or a contact."""

from django.db import migrations

from retainers.pagecache import DROP_PEOPLE_SQL, PEOPLE_SQL, track

TABLES = ["amendment", "attachment", "client", "contact", "message", "note", "noterevision", "plan", "retainer", "task"]


class Migration(migrations.Migration):
    dependencies = [("clients", "0004_task_links"), ("retainers", "0003_data_version")]

    operations = [*(track(f"clients_{table}") for table in TABLES), migrations.RunSQL(PEOPLE_SQL, DROP_PEOPLE_SQL)]
