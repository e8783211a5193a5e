"""Writes to these tables move their workspace's data version (retainers.pagecache)."""

from django.db import migrations

from retainers.pagecache import track


class Migration(migrations.Migration):
    dependencies = [("delivery", "0003_period_prices"), ("retainers", "0003_data_version")]

    operations = [
        track("delivery_deliverable"),
        track("delivery_ledgerentry", events="INSERT"),  # append-only: UPDATE and DELETE are refused
        track("delivery_period"),
        track("delivery_workitem"),
    ]
