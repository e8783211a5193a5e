"""Replies by email: each client's reply address and the log of emails received at them.

Both are tenant tables, so writes to them move their workspace's data version (retainers.pagecache).
"""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

from retainers.pagecache import track


class Migration(migrations.Migration):
    dependencies = [
        ("clients", "0007_contact_timezone"),
        ("communication", "0001_initial"),
        ("retainers", "0003_data_version"),
    ]

    operations = [
        migrations.CreateModel(
            name="InboundEmail",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("received_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("message_id", models.CharField(blank=True, max_length=255)),
                ("sender", models.CharField(blank=True, help_text="The From address.", max_length=320)),
                ("recipient", models.CharField(help_text="The reply address it came to.", max_length=320)),
                ("subject", models.CharField(blank=True, max_length=255)),
                (
                    "outcome",
                    models.CharField(
                        choices=[
                            ("posted", "Posted to the thread"),
                            ("dropped", "Dropped"),
                            ("quarantined", "Quarantined"),
                        ],
                        max_length=12,
                    ),
                ),
                ("reason", models.CharField(blank=True, max_length=200)),
                ("body", models.TextField(blank=True, help_text="The start of the text, for quarantined emails only.")),
                (
                    "client",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="inbound_emails", to="clients.client"
                    ),
                ),
                (
                    "posted_message",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="communication.message",
                    ),
                ),
                ("workspace", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, to="retainers.workspace")),
            ],
            options={
                "indexes": [models.Index(fields=["workspace", "received_at"], name="inbound_email_received_idx")],
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("outcome", "posted"), models.Q(("message_id", ""), _negated=True)),
                        fields=("workspace", "message_id"),
                        name="inbound_email_posted_once",
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="ReplyAddress",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("token", models.CharField(max_length=64)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("revoked_at", models.DateTimeField(blank=True, null=True)),
                (
                    "client",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="reply_addresses", to="clients.client"
                    ),
                ),
                ("workspace", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, to="retainers.workspace")),
            ],
            options={
                "indexes": [models.Index(fields=["token"], name="reply_address_token_idx")],
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("revoked_at__isnull", True)),
                        fields=("workspace", "client"),
                        name="reply_address_one_current",
                    )
                ],
            },
        ),
        track("communication_inboundemail"),
        track("communication_replyaddress"),
    ]
