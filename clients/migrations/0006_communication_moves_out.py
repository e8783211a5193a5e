"""Notes, revisions, messages, attachments and tasks moved to the `communication` app.

Only Django's model state changes: the tables (`clients_note` and the rest), their rows,
constraints, indexes and data-version triggers stay exactly where they are, and
communication 0001 takes them over under the same names. The models are removed in an order
where nothing left in the state points at a removed one.
"""

from django.db import migrations

MOVED = ["Attachment", "NoteRevision", "Message", "Note", "Task"]


class Migration(migrations.Migration):
    dependencies = [("clients", "0005_data_version")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name=name) for name in MOVED],
            database_operations=[],
        )
    ]
