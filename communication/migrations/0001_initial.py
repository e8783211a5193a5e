"""Notes, revisions, messages, attachments and tasks, taken over from `clients` as they are.

The tables exist already (clients 0003 and 0004 made them, clients 0005 put the data-version
triggers on them) and keep their names, so this creates the models in Django's state only:
no table, column, constraint or index is touched, and no row moves. Constraint and index
names are the ones the tables have.

The content types of the five models move with them (app label `clients` -> `communication`),
so their permissions, and admin log entries that point at them, keep working. On a new
database there are no rows yet (Django adds content types after migrating) and this does nothing.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

MODELS = ["attachment", "message", "note", "noterevision", "task"]


def move_content_types(apps, schema_editor, *, source: str, target: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    taken = set(ContentType.objects.filter(app_label=target, model__in=MODELS).values_list("model", flat=True))
    # A target row that exists already (made by hand, say) wins; the source row is left alone.
    ContentType.objects.filter(app_label=source, model__in=set(MODELS) - taken).update(app_label=target)


def forwards(apps, schema_editor) -> None:
    move_content_types(apps, schema_editor, source="clients", target="communication")


def backwards(apps, schema_editor) -> None:
    move_content_types(apps, schema_editor, source="communication", target="clients")


STATE = [
    migrations.CreateModel(
        name="Message",
        fields=[
            ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
            ("body", models.TextField()),
            ("read_by_team_at", models.DateTimeField(blank=True, null=True)),
            ("read_by_client_at", models.DateTimeField(blank=True, null=True)),
            ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
            (
                "client",
                models.ForeignKey(
                    on_delete=django.db.models.deletion.CASCADE, related_name="messages", to="clients.client"
                ),
            ),
            (
                "sent_by_contact",
                models.ForeignKey(
                    blank=True,
                    null=True,
                    on_delete=django.db.models.deletion.SET_NULL,
                    related_name="messages",
                    to="clients.contact",
                ),
            ),
            (
                "sent_by_user",
                models.ForeignKey(
                    blank=True,
                    help_text="A team member; empty when a contact wrote it.",
                    null=True,
                    on_delete=django.db.models.deletion.SET_NULL,
                    related_name="+",
                    to=settings.AUTH_USER_MODEL,
                ),
            ),
            ("workspace", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, to="retainers.workspace")),
        ],
        options={
            "db_table": "clients_message",
        },
    ),
    migrations.CreateModel(
        name="Attachment",
        fields=[
            ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
            ("file", models.FileField(upload_to="attachments/")),
            ("filename", models.CharField(max_length=255)),
            ("content_type", models.CharField(max_length=100)),
            ("size", models.PositiveIntegerField()),
            ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
            ("workspace", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, to="retainers.workspace")),
            (
                "message",
                models.ForeignKey(
                    on_delete=django.db.models.deletion.CASCADE, related_name="attachments", to="communication.message"
                ),
            ),
        ],
        options={
            "db_table": "clients_attachment",
        },
    ),
    migrations.CreateModel(
        name="Note",
        fields=[
            ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
            (
                "visibility",
                models.CharField(
                    choices=[("private", "Private (team only)"), ("shared", "Shared with the client")],
                    default="private",
                    max_length=8,
                ),
            ),
            ("body", models.TextField(help_text="Markdown.")),
            ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
            ("updated_at", models.DateTimeField(default=django.utils.timezone.now)),
            (
                "author",
                models.ForeignKey(
                    null=True,
                    on_delete=django.db.models.deletion.SET_NULL,
                    related_name="+",
                    to=settings.AUTH_USER_MODEL,
                ),
            ),
            (
                "client",
                models.ForeignKey(
                    on_delete=django.db.models.deletion.CASCADE, related_name="notes", to="clients.client"
                ),
            ),
            (
                "session",
                models.ForeignKey(
                    blank=True,
                    null=True,
                    on_delete=django.db.models.deletion.SET_NULL,
                    related_name="notes",
                    to="delivery.workitem",
                ),
            ),
            ("workspace", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, to="retainers.workspace")),
        ],
        options={
            "db_table": "clients_note",
        },
    ),
    migrations.CreateModel(
        name="NoteRevision",
        fields=[
            ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
            ("body", models.TextField()),
            (
                "visibility",
                models.CharField(
                    choices=[("private", "Private (team only)"), ("shared", "Shared with the client")], max_length=8
                ),
            ),
            ("edited_at", models.DateTimeField(default=django.utils.timezone.now)),
            (
                "edited_by",
                models.ForeignKey(
                    null=True,
                    on_delete=django.db.models.deletion.SET_NULL,
                    related_name="+",
                    to=settings.AUTH_USER_MODEL,
                ),
            ),
            (
                "note",
                models.ForeignKey(
                    on_delete=django.db.models.deletion.CASCADE, related_name="revisions", to="communication.note"
                ),
            ),
            ("workspace", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, to="retainers.workspace")),
        ],
        options={
            "db_table": "clients_noterevision",
        },
    ),
    migrations.CreateModel(
        name="Task",
        fields=[
            ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
            ("title", models.CharField(max_length=200)),
            ("due_at", models.DateTimeField()),
            (
                "source",
                models.CharField(
                    choices=[
                        ("manual", "Added by hand"),
                        ("session", "After a session"),
                        ("check_in", "Check-in due"),
                        ("renewal", "Renewal"),
                    ],
                    default="manual",
                    max_length=10,
                ),
            ),
            ("status", models.CharField(choices=[("open", "Open"), ("done", "Done")], default="open", max_length=6)),
            ("reminded_at", models.DateTimeField(blank=True, null=True)),
            ("completed_at", models.DateTimeField(blank=True, null=True)),
            ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
            (
                "assignee",
                models.ForeignKey(
                    blank=True,
                    null=True,
                    on_delete=django.db.models.deletion.SET_NULL,
                    related_name="tasks",
                    to=settings.AUTH_USER_MODEL,
                ),
            ),
            (
                "client",
                models.ForeignKey(
                    on_delete=django.db.models.deletion.CASCADE, related_name="tasks", to="clients.client"
                ),
            ),
            (
                "created_by",
                models.ForeignKey(
                    null=True,
                    on_delete=django.db.models.deletion.SET_NULL,
                    related_name="+",
                    to=settings.AUTH_USER_MODEL,
                ),
            ),
            (
                "renewal",
                models.ForeignKey(
                    blank=True,
                    null=True,
                    on_delete=django.db.models.deletion.SET_NULL,
                    related_name="tasks",
                    to="renewals.renewal",
                ),
            ),
            (
                "session",
                models.ForeignKey(
                    blank=True,
                    null=True,
                    on_delete=django.db.models.deletion.SET_NULL,
                    related_name="tasks",
                    to="delivery.workitem",
                ),
            ),
            ("workspace", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, to="retainers.workspace")),
        ],
        options={
            "db_table": "clients_task",
        },
    ),
    migrations.AddIndex(
        model_name="message",
        index=models.Index(fields=["workspace", "client", "created_at"], name="message_client_idx"),
    ),
    migrations.AddIndex(
        model_name="note",
        index=models.Index(fields=["workspace", "client", "created_at"], name="note_client_idx"),
    ),
    migrations.AddIndex(
        model_name="task",
        index=models.Index(fields=["workspace", "status", "due_at"], name="task_due_idx"),
    ),
    migrations.AddIndex(
        model_name="task",
        index=models.Index(fields=["workspace", "client", "status"], name="task_client_idx"),
    ),
]


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("clients", "0006_communication_moves_out"),
        ("delivery", "0004_data_version"),
        ("renewals", "0002_data_version"),
        ("retainers", "0003_data_version"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=STATE, database_operations=[]),
        migrations.RunPython(forwards, backwards),
    ]
