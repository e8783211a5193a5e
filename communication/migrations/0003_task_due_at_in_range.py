"""Tasks are due within the years every zone can show (retainers.fields).

Rows typed before the bound (due 0001-01-01 or 9999-12-31) are moved to the nearest end of the
range first, at noon UTC, whose day is in range in every zone: the pages that took them down
show them again, with their title and everything else as they were.
"""

import datetime

from django.db import migrations, models

CLAMP = """
UPDATE clients_task
   SET due_at = CASE WHEN due_at < '1970-01-01T12:00:00Z' THEN timestamptz '1970-01-01T12:00:00Z'
                     ELSE timestamptz '2199-12-31T12:00:00Z' END
 WHERE due_at < '1970-01-01T12:00:00Z' OR due_at > '2199-12-31T12:00:00Z'
"""


class Migration(migrations.Migration):
    dependencies = [
        ("communication", "0002_inbound_email"),
    ]

    operations = [
        migrations.RunSQL(CLAMP, reverse_sql=migrations.RunSQL.noop),
        migrations.AddConstraint(
            model_name="task",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("due_at__gte", datetime.datetime(1969, 12, 31, 0, 0, tzinfo=datetime.UTC)),
                    ("due_at__lt", datetime.datetime(2200, 1, 2, 0, 0, tzinfo=datetime.UTC)),
                ),
                name="task_due_at_in_range",
            ),
        ),
    ]
