"""The per-workspace data version (retainers.pagecache): its table, the trigger function, and the
triggers on this app's tables. Each app's own migration tracks its tables."""

from django.db import migrations, models

from retainers.pagecache import DROP_FUNCTION_SQL, FUNCTION_SQL, track


class Migration(migrations.Migration):
    dependencies = [("retainers", "0002_workspace_locale")]

    operations = [
        migrations.CreateModel(
            name="DataVersion",
            fields=[
                ("workspace_id", models.BigIntegerField(primary_key=True, serialize=False)),
                ("version", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.RunSQL(FUNCTION_SQL, DROP_FUNCTION_SQL),
        track("retainers_workspace", events="UPDATE"),
        track("retainers_membership"),
        track("retainers_invitation"),
    ]
