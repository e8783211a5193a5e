"""Follow-up tasks: by hand, after a session, from the client page and the tasks page."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import IntegrityError, connection, transaction
from django.urls import reverse

from communication import services as communication
from communication.models import Task
from retainers.fields import EARLIEST_INSTANT, LATEST_INSTANT
from tests import factories
from tests.communication.conftest import HTMX, team_url
from tests.retainers.test_security import FieldBlocks

pytestmark = pytest.mark.django_db


def make_task(client, *, title="Call back", due_at=None, assignee=None, actor=None, **extra) -> Task:
    return communication.create_task(
        client=client,
        title=title,
        due_at=due_at or datetime(2026, 7, 1, 8, 0, tzinfo=UTC),
        assignee=assignee,
        actor=actor,
        **extra,
    )


def test_due_time_is_entered_in_the_workspaces_time_zone(workspace, acme, alice, bob, member_client):
    # Europe/London is on BST (UTC+1) in July.
    data = {
        "task-title": "Send the summary",
        "task-due_at": "2026-07-01T09:30",
        "task-assignee": alice.pk,
        "task-client": acme.pk,
    }
    response = member_client.post(team_url(workspace, "task_create"), data)
    assert response.status_code == 302
    task = Task.objects.get()
    assert task.due_at == datetime(2026, 7, 1, 8, 30, tzinfo=UTC)
    assert (task.client, task.assignee, task.created_by, task.source) == (acme, alice, bob, Task.Source.MANUAL)
    page = member_client.get(team_url(workspace, "task_edit", task_id=task.pk)).content.decode()
    assert 'value="2026-07-01T09:30"' in page


def test_adding_a_task_on_the_client_page_returns_the_section(workspace, acme, alice, session, owner_client):
    data = {
        "origin": "client",
        "task-title": "Prepare review",
        "task-due_at": "2026-07-02T10:00",
        "task-assignee": alice.pk,
        "task-session": session.pk,
    }
    response = owner_client.post(team_url(workspace, "client_task_create", client_id=acme.pk), data, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Prepare review" in html and 'id="client-communication"' in html
    assert Task.objects.get().session == session


def test_assignee_and_client_choices_are_scoped_to_the_workspace(
    workspace, other_workspace, acme, charlie, member_client
):
    foreign_client = factories.ClientFactory(workspace=other_workspace)
    data = {
        "task-title": "x",
        "task-due_at": "2026-07-01T09:00",
        "task-assignee": charlie.pk,
        "task-client": foreign_client.pk,
    }
    response = member_client.post(team_url(workspace, "task_create"), data)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('class="field has-error"') == 2
    assert not Task.objects.exists()
    with pytest.raises(communication.CommunicationError):
        make_task(acme, assignee=charlie)


def test_session_of_another_client_cannot_be_linked(workspace, globex, session):
    with pytest.raises(communication.CommunicationError):
        make_task(globex, session=session)


def test_complete_reopen_edit_and_delete(workspace, acme, alice, bob, member_client):
    task = make_task(acme, assignee=alice)
    Task.objects.filter(pk=task.pk).update(reminded_at=datetime(2026, 7, 1, 8, 0, tzinfo=UTC))
    assert member_client.post(team_url(workspace, "task_complete", task_id=task.pk)).status_code == 302
    task.refresh_from_db()
    assert task.status == Task.Status.DONE and task.completed_at is not None
    member_client.post(team_url(workspace, "task_complete", task_id=task.pk))  # twice: still done, same time
    assert Task.objects.get().completed_at == task.completed_at
    member_client.post(team_url(workspace, "task_reopen", task_id=task.pk))
    task.refresh_from_db()
    assert task.status == Task.Status.OPEN and task.completed_at is None

    data = {"title": "Call back (moved)", "due_at": "2026-07-03T15:00", "assignee": bob.pk}
    response = member_client.post(
        team_url(workspace, "task_edit", task_id=task.pk) + "?next=/w/" + workspace.slug + "/tasks/", data
    )
    assert response.status_code == 302 and response.url == f"/w/{workspace.slug}/tasks/"
    task.refresh_from_db()
    assert task.title == "Call back (moved)" and task.assignee == bob
    assert task.due_at == datetime(2026, 7, 3, 14, 0, tzinfo=UTC)
    assert task.reminded_at is None  # a new due time arms the reminder again

    member_client.post(team_url(workspace, "task_delete", task_id=task.pk))
    assert not Task.objects.exists()


def test_tasks_of_another_workspace_are_404(workspace, other_workspace, acme, alice, outsider_client):
    task = make_task(acme, assignee=alice)
    assert outsider_client.get(team_url(other_workspace, "task_edit", task_id=task.pk)).status_code == 404
    for name in ["task_complete", "task_reopen", "task_delete"]:
        assert outsider_client.post(team_url(other_workspace, name, task_id=task.pk)).status_code == 404
    assert outsider_client.post(team_url(other_workspace, "client_task_create", client_id=acme.pk)).status_code == 404
    assert Task.objects.get().status == Task.Status.OPEN
    assert "Call back" not in outsider_client.get(team_url(other_workspace, "task_list") + "?who=all").content.decode()


@time_machine.travel(datetime(2026, 7, 1, 12, 0, tzinfo=UTC), tick=False)
def test_task_list_filters(workspace, acme, alice, bob, member_client):
    make_task(acme, title="Bob overdue", assignee=bob, due_at=datetime(2026, 6, 30, 9, 0, tzinfo=UTC))
    make_task(acme, title="Bob later today", assignee=bob, due_at=datetime(2026, 7, 1, 20, 0, tzinfo=UTC))
    make_task(acme, title="Bob next week", assignee=bob, due_at=datetime(2026, 7, 8, 9, 0, tzinfo=UTC))
    make_task(acme, title="Alice today", assignee=alice, due_at=datetime(2026, 7, 1, 9, 0, tzinfo=UTC))
    done = make_task(acme, title="Bob done", assignee=bob)
    communication.complete_task(task=done, actor=bob)

    def titles(**params) -> list[str]:
        html = member_client.get(team_url(workspace, "task_list"), params).content.decode()
        return [t for t in ["Bob overdue", "Bob later today", "Bob next week", "Alice today", "Bob done"] if t in html]

    assert titles() == ["Bob overdue", "Bob later today", "Bob next week"]  # mine, open
    assert titles(who="all") == ["Bob overdue", "Bob later today", "Bob next week", "Alice today"]
    assert titles(state="due") == ["Bob overdue", "Bob later today"]
    assert titles(state="overdue") == ["Bob overdue"]
    assert titles(who="all", state="overdue") == ["Bob overdue", "Alice today"]
    assert titles(state="done") == ["Bob done"]
    assert titles(who="nonsense", state="nonsense") == ["Bob overdue", "Bob later today", "Bob next week"]
    fragment = member_client.get(team_url(workspace, "task_list"), {"state": "done"}, **HTMX).content.decode()
    assert "Bob done" in fragment and "<html" not in fragment


def test_task_list_takes_a_fixed_number_of_queries(
    workspace, acme, alice, bob, member_client, django_assert_max_num_queries
):
    for n in range(30):
        make_task(acme, title=f"Task {n}", assignee=bob)
    with django_assert_max_num_queries(12):
        assert member_client.get(team_url(workspace, "task_list")).status_code == 200


# --- Follow-up after a session -----------------------------------------------------------------


def test_suggest_follow_up_is_due_n_days_after_the_session_at_nine_local(workspace, acme, bob, session):
    task = communication.suggest_follow_up(session=session, days=7, actor=bob)
    # The session was delivered on 12 January 2026; London is on GMT then.
    assert task.due_at == datetime(2026, 1, 19, 9, 0, tzinfo=UTC)
    assert (task.source, task.session, task.client, task.assignee) == (Task.Source.SESSION, session, acme, bob)
    assert "Strategy workshop" in task.title
    assert (
        communication.suggest_follow_up(session=session, days=14, actor=bob) == task
    )  # one open follow-up per session
    with pytest.raises(communication.CommunicationError):
        communication.suggest_follow_up(session=session, days=0, actor=bob)


def test_follow_up_form_on_the_client_page(workspace, acme, session, owner_client):
    page = owner_client.get(f"/w/{workspace.slug}/clients/{acme.pk}/communication/").content.decode()
    assert "Follow up after a session" in page and "Strategy workshop" in page
    data = {"origin": "client", "follow-session": session.pk, "follow-days": "3"}
    response = owner_client.post(team_url(workspace, "follow_up_create", client_id=acme.pk), data, **HTMX)
    assert response.status_code == 200
    assert "Follow-up due 15 Jan 2026, 09:00" in response.content.decode()
    assert Task.objects.get().source == Task.Source.SESSION


def test_follow_up_refuses_another_clients_session(workspace, globex, session, owner_client):
    data = {"origin": "client", "follow-session": session.pk, "follow-days": "3"}
    response = owner_client.post(team_url(workspace, "follow_up_create", client_id=globex.pk), data, **HTMX)
    assert response.status_code == 200 and "has-error" in response.content.decode()
    assert not Task.objects.exists()


def test_check_in_cadence_is_set_on_the_client_page(workspace, acme, owner_client):
    url = team_url(workspace, "checkin_update", client_id=acme.pk)
    response = owner_client.post(url, {"origin": "client", "checkin-checkin_every_days": "14"}, **HTMX)
    assert "Check-ins every 14 days" in response.content.decode()
    acme.refresh_from_db()
    assert acme.checkin_every_days == 14
    owner_client.post(url, {"checkin-checkin_every_days": ""})
    acme.refresh_from_db()
    assert acme.checkin_every_days is None
    response = owner_client.post(url, {"origin": "client", "checkin-checkin_every_days": "0"}, **HTMX)
    assert "has-error" in response.content.decode()


def test_the_check_in_can_also_email_the_client(workspace, acme, owner_client):
    url = team_url(workspace, "checkin_update", client_id=acme.pk)
    data = {"origin": "client", "checkin-checkin_every_days": "21", "checkin-checkin_email_client": "on"}
    response = owner_client.post(url, data, **HTMX)
    assert "The client is emailed to book a session too." in response.content.decode()
    assert 'name="checkin-checkin_email_client"' in response.content.decode()
    acme.refresh_from_db()
    assert (acme.checkin_every_days, acme.checkin_email_client) == (21, True)
    owner_client.post(url, {"checkin-checkin_every_days": "21"})
    acme.refresh_from_db()
    assert not acme.checkin_email_client


def test_task_list_of_one_client(workspace, other_workspace, acme, globex, bob, member_client):
    make_task(acme, title="For Acme", assignee=bob)
    make_task(globex, title="For Globex", assignee=bob)
    html = member_client.get(team_url(workspace, "task_list"), {"client": acme.pk}).content.decode()
    assert "For Acme" in html and "For Globex" not in html and "Show every client" in html
    foreign = factories.ClientFactory(workspace=other_workspace)
    assert member_client.get(team_url(workspace, "task_list"), {"client": foreign.pk}).status_code == 404


@pytest.mark.parametrize("typed", ["0001-01-01T00:00", "9999-12-31T23:59", "1969-12-31T23:59", "2200-01-01T00:00"])
def test_a_due_time_outside_sane_years_is_a_field_error(workspace, acme, owner_client, typed):
    """The hostile-input pass: these were accepted, and broke the dashboard after a time-zone change."""
    data = {"task-title": "Far away", "task-due_at": typed, "task-client": acme.pk}
    response = owner_client.post(team_url(workspace, "task_create"), data)
    assert response.status_code == 200
    page = FieldBlocks()
    page.feed(response.content.decode())
    assert page.block_for("task-due_at")["errors"] == ["Pick a date from 1 January 1970 to 31 December 2199."]
    assert not Task.objects.exists()


PAGES_WITH_TASKS = [
    ("dashboard", {}),
    ("dashboard:client_detail", {"client_id": "client"}),  # the summary counts the open tasks
    ("dashboard:client_communication", {"client_id": "client"}),
    ("dashboard:client_timeline", {"client_id": "client"}),
    ("communication:task_list", {}),
    ("communication:task_edit", {"task_id": "task"}),
]


def assert_pages_show(browser, workspace, task) -> None:
    """In the zones furthest east and west of UTC, every page that shows the task answers."""
    for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):  # UTC+14, UTC-11
        workspace.timezone = zone
        workspace.save(update_fields=["timezone"])
        for name, kwargs in PAGES_WITH_TASKS:
            ids = {key: {"client": task.client_id, "task": task.pk}[value] for key, value in kwargs.items()}
            response = browser.get(reverse(name, kwargs={"workspace_slug": workspace.slug, **ids}))
            assert response.status_code == 200, (zone, name)


@pytest.mark.parametrize("due_at", [EARLIEST_INSTANT, LATEST_INSTANT - timedelta(minutes=1)])
def test_pages_show_a_task_due_at_either_end_of_what_the_database_holds(
    workspace, acme, alice, retainer, owner_client, due_at
):
    task = make_task(acme, title="Far away", assignee=alice, actor=alice)
    Task.objects.filter(pk=task.pk).update(due_at=due_at)  # past the form's days, as far as the database goes
    assert_pages_show(owner_client, workspace, task)


@pytest.mark.parametrize("due_at", [datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, tzinfo=UTC)])
def test_a_task_due_beyond_the_years_every_zone_can_show_is_refused(workspace, acme, alice, due_at):
    with pytest.raises(communication.CommunicationError, match="Pick a date from 1 January 1970"):
        make_task(acme, due_at=due_at, actor=alice)
    task = make_task(acme, actor=alice)
    with pytest.raises(communication.CommunicationError, match="Pick a date"):
        communication.update_task(task=task, title="x", due_at=due_at, assignee=None, actor=alice)
    with pytest.raises(IntegrityError, match="task_due_at_in_range"), transaction.atomic():
        Task.objects.filter(pk=task.pk).update(due_at=due_at)


def test_the_migration_brings_tasks_stored_at_the_ends_of_time_back_in_range(workspace, acme, alice, owner_client):
    """Rows typed before the bound: moved to the nearest end of the range, and the pages work again."""
    clamp = importlib.import_module("communication.migrations.0003_task_due_at_in_range").CLAMP
    with connection.cursor() as cursor:
        # As before the migration (first: the table may not be altered once this transaction wrote to it).
        cursor.execute("ALTER TABLE clients_task DROP CONSTRAINT task_due_at_in_range")
        early, late = make_task(acme, title="Early", actor=alice), make_task(acme, title="Late", actor=alice)
        Task.objects.filter(pk=early.pk).update(due_at=datetime(1, 1, 1, tzinfo=UTC))
        Task.objects.filter(pk=late.pk).update(due_at=datetime(9999, 12, 31, 23, 59, tzinfo=UTC))
        cursor.execute(clamp)
    early.refresh_from_db(), late.refresh_from_db()
    assert (early.due_at, late.due_at) == (datetime(1970, 1, 1, 12, tzinfo=UTC), datetime(2199, 12, 31, 12, tzinfo=UTC))
    assert_pages_show(owner_client, workspace, early)
    assert_pages_show(owner_client, workspace, late)
