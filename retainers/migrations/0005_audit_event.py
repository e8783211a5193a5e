"""The audit trail (retainers.audit): its table, append-only in PostgreSQL like the ledger (a trigger
holds for whatever role connects), and its data-version trigger (inserts are its only writes)."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

from retainers.pagecache import track

APPEND_ONLY_SQL = """
CREATE FUNCTION retainers_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only: % of event % refused', TG_OP, OLD.id
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER retainers_auditevent_append_only
    BEFORE UPDATE OR DELETE ON retainers_auditevent
    FOR EACH ROW EXECUTE FUNCTION retainers_audit_append_only();
"""

REVERSE_SQL = """
DROP TRIGGER retainers_auditevent_append_only ON retainers_auditevent;
DROP FUNCTION retainers_audit_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("retainers", "0004_currency_code"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditEvent",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("actor_label", models.CharField(blank=True, max_length=254)),
                ("action", models.CharField(max_length=60)),
                ("object_type", models.CharField(blank=True, max_length=60)),
                ("object_id", models.BigIntegerField(blank=True, null=True)),
                ("client_id", models.BigIntegerField(blank=True, null=True)),
                ("summary", models.CharField(blank=True, max_length=255)),
                ("amount_minor", models.BigIntegerField(blank=True, null=True)),
                ("currency", models.CharField(blank=True, max_length=3)),
                ("changes", models.JSONField(blank=True, default=dict)),
                ("ip", models.GenericIPAddressField(blank=True, null=True)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "actor",
                    models.ForeignKey(
                        db_constraint=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                ("workspace", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, to="retainers.workspace")),
            ],
            options={
                "indexes": [
                    models.Index(fields=["workspace", "object_type", "object_id"], name="audit_object_idx"),
                    models.Index(fields=["workspace", "client_id", "created_at"], name="audit_client_idx"),
                ],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("currency", ""), ("currency__regex", "^[A-Z]{3}$"), _connector="OR"),
                        name="auditevent_currency_code",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("amount_minor", None), models.Q(("currency", ""), _negated=True), _connector="OR"
                        ),
                        name="auditevent_amount_has_currency",
                    ),
                ],
            },
        ),
        migrations.RunSQL(APPEND_ONLY_SQL, REVERSE_SQL),
        track("retainers_auditevent", events="INSERT"),
    ]
