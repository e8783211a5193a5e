"""Communication's models moved out of clients with their tables: the same tables, triggers and
content types (permissions and admin log entries point at content types)."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection

from communication.models import Attachment, Message, Note, NoteRevision, Task

pytestmark = pytest.mark.django_db

MOVED = [Attachment, Message, Note, NoteRevision, Task]
initial = importlib.import_module("communication.migrations.0001_initial")


@pytest.fixture(autouse=True)
def content_type_cache():
    """These tests rewrite content type rows (rolled back after each test): no cached row may outlive them."""
    ContentType.objects.clear_cache()
    yield
    ContentType.objects.clear_cache()


def test_the_moved_models_keep_their_tables_and_data_version_triggers():
    tables = [model._meta.db_table for model in MOVED]
    assert tables == ["clients_attachment", "clients_message", "clients_note", "clients_noterevision", "clients_task"]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgrelid::regclass::text FROM pg_trigger WHERE tgname = 'data_version' AND tgrelid::regclass::text = ANY(%s)",
            [tables],
        )
        assert sorted(row[0] for row in cursor.fetchall()) == tables


def test_the_migration_moves_the_content_types_and_their_permissions():
    # As an existing database has them before communication 0001: under the clients label.
    ContentType.objects.filter(app_label="communication").update(app_label="clients")
    ContentType.objects.clear_cache()
    task_type = ContentType.objects.get(app_label="clients", model="task")
    initial.forwards(apps, None)
    ContentType.objects.clear_cache()
    moved = ContentType.objects.filter(model__in=initial.MODELS)
    assert sorted(moved.values_list("app_label", "model")) == [("communication", m) for m in sorted(initial.MODELS)]
    assert ContentType.objects.get_for_model(Task).pk == task_type.pk  # the same row: permissions follow
    assert Permission.objects.filter(content_type=task_type, codename="change_task").exists()
    initial.backwards(apps, None)
    assert set(ContentType.objects.filter(model__in=initial.MODELS).values_list("app_label", flat=True)) == {"clients"}


def test_a_content_type_already_under_communication_is_left_as_it_is():
    ContentType.objects.filter(app_label="communication", model="note").update(app_label="clients")
    ContentType.objects.create(app_label="communication", model="note")
    ContentType.objects.clear_cache()
    initial.forwards(apps, None)  # no IntegrityError on the (app_label, model) unique key
    assert ContentType.objects.filter(model="note").count() == 2
