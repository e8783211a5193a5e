"""Writes to these tables move their workspace's data version (retainers.pagecache)."""

from django.db import migrations

from retainers.pagecache import track


class Migration(migrations.Migration):
    dependencies = [("renewals", "0001_initial"), ("retainers", "0003_data_version")]

    operations = [track("renewals_renewal"), track("renewals_renewalsettings")]
