"""Writes to these tables move their workspace's data version (retainers.pagecache)."""

from django.db import migrations

from retainers.pagecache import track

TABLES = ["billingprofile", "invoice", "invoiceline", "invoicesequence", "payment", "stripecustomer"]


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_closing_invoices"), ("retainers", "0003_data_version")]

    operations = [track(f"billing_{table}") for table in TABLES]
