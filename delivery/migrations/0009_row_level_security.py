"""Row-level security on delivery's tenant tables: the second wall (retainers/tenancy.py, docs/tenancy.md)."""

from django.db import migrations

from retainers import tenancy

TABLES = [
    "delivery_period",
    "delivery_workitem",
    "delivery_ledgerentry",
    "delivery_deliverable",
    "delivery_overageapproval",
    "delivery_sessiontype",
    "delivery_sessiontyperetainer",
    "delivery_schedule",
    "delivery_weeklyhours",
    "delivery_dateoverride",
    "delivery_bookingpolicy",
    "delivery_booking",
    "delivery_calendarconnection",
    "delivery_busyblock",
    "delivery_calendarfeed",
]


class Migration(migrations.Migration):
    dependencies = [("delivery", "0008_overage_approval")]

    operations = [
        migrations.RunSQL(tenancy.policy_sql(TABLES), tenancy.drop_policy_sql(TABLES)),
    ]
