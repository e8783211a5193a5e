"""Outbox secrets (issue 11, hole 12): secret emails are redacted once sent; an index to prune sent rows."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("retainers", "0005_audit_event"),
    ]

    operations = [
        migrations.AddField(
            model_name="email",
            name="secret",
            field=models.BooleanField(default=False),
        ),
        migrations.AddIndex(
            model_name="email",
            index=models.Index(condition=models.Q(("status", "sent")), fields=["sent_at"], name="email_sent_idx"),
        ),
    ]
