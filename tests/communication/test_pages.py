"""Every page of communication, with data and with form errors, obeys the strict CSP; the client
page's section takes a fixed number of queries."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from communication import services as communication
from tests.communication.conftest import HTMX, XSS, portal_url, team_url
from tests.retainers.test_security import csp_problems

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(acme, alice, bob, carol, session):
    note = communication.create_note(client=acme, author=alice, body="**Shared** " + XSS[1], visibility="shared")
    communication.update_note(note=note, actor=alice, body="Edited " + XSS[0], visibility="shared")
    communication.create_note(
        client=acme, author=bob, body="Private [x](javascript:alert(1))", visibility="private", session=session
    )
    communication.send_team_message(
        client=acme,
        author=alice,
        body="Hello " + XSS[2],
        files=[SimpleUploadedFile("r.pdf", b"%PDF-1.4\n", content_type="application/pdf")],
    )
    communication.send_contact_message(contact=carol, body="Reply " + XSS[3])
    task = communication.create_task(
        client=acme, title="Call <b>back</b>", due_at=datetime(2026, 1, 20, 9, tzinfo=UTC), assignee=bob, actor=alice
    )
    communication.suggest_follow_up(session=session, days=7, actor=alice)
    return {"note": note, "task": task}


def test_communication_pages_obey_the_csp(workspace, acme, history, owner_client, carol_browser):
    note, task = history["note"], history["task"]
    responses = {
        "client page": owner_client.get(f"/w/{workspace.slug}/clients/{acme.pk}/"),
        "client page, communication": owner_client.get(f"/w/{workspace.slug}/clients/{acme.pk}/communication/"),
        "notes": owner_client.get(team_url(workspace, "note_list", client_id=acme.pk)),
        "new note": owner_client.get(team_url(workspace, "note_create", client_id=acme.pk)),
        "new note errors": owner_client.post(team_url(workspace, "note_create", client_id=acme.pk), {}),
        "edit note": owner_client.get(team_url(workspace, "note_edit", note_id=note.pk)),
        "edit note errors": owner_client.post(team_url(workspace, "note_edit", note_id=note.pk), {"body": ""}),
        "thread": owner_client.get(team_url(workspace, "message_thread", client_id=acme.pk)),
        "thread errors": owner_client.post(
            team_url(workspace, "message_thread", client_id=acme.pk),
            {"attachments": [SimpleUploadedFile("x.exe", b"MZ")]},
        ),
        "tasks": owner_client.get(team_url(workspace, "task_list"), {"who": "all"}),
        "tasks done": owner_client.get(team_url(workspace, "task_list"), {"state": "done"}),
        "new task": owner_client.get(team_url(workspace, "task_create")),
        "new task errors": owner_client.post(team_url(workspace, "task_create"), {}),
        "new client task": owner_client.get(team_url(workspace, "client_task_create", client_id=acme.pk)),
        "edit task": owner_client.get(team_url(workspace, "task_edit", task_id=task.pk)),
        "edit task errors": owner_client.post(team_url(workspace, "task_edit", task_id=task.pk), {"title": ""}),
        "timeline": owner_client.get(team_url(workspace, "dashboard:client_timeline", client_id=acme.pk)),
        "portal messages": carol_browser.get(portal_url(workspace, "message_list")),
        "portal message errors": carol_browser.post(portal_url(workspace, "message_send"), {"body": ""}),
        "portal notes": carol_browser.get(portal_url(workspace, "shared_notes")),
    }
    for label, response in responses.items():
        assert response.status_code == 200, label
        assert csp_problems(response) == [], label
        if "errors" in label:
            assert "has-error" in response.content.decode(), label


def test_htmx_fragments_carry_no_scripts_or_styles(workspace, acme, history, owner_client):
    fragments = [
        owner_client.post(team_url(workspace, "note_create", client_id=acme.pk), {"origin": "client"}, **HTMX),
        owner_client.post(team_url(workspace, "client_task_create", client_id=acme.pk), {"origin": "client"}, **HTMX),
        owner_client.get(team_url(workspace, "task_list"), {"who": "all"}, **HTMX),
        owner_client.get(team_url(workspace, "dashboard:client_timeline", client_id=acme.pk), **HTMX),
    ]
    for response in fragments:
        html = response.content.decode()
        assert response.status_code == 200
        assert "<script" not in html and "style=" not in html and "<style" not in html


def test_the_client_section_takes_a_fixed_number_of_queries(workspace, acme, alice, bob, carol, session, owner_client):
    from django.test import RequestFactory

    from communication.selectors import client_section
    from retainers.models import Membership

    request = RequestFactory().get("/")
    request.workspace, request.user = workspace, alice
    request.membership = Membership.objects.get(workspace=workspace, user=alice)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            context = client_section(request, acme)
            for form in ("note_form", "task_form", "follow_up_form", "checkin_form"):
                str(context[form])  # rendering evaluates the choices
        return len(queries)

    few = count()
    for n in range(20):
        communication.create_note(client=acme, author=alice, body=f"n{n}", visibility="private")
        communication.send_contact_message(contact=carol, body=f"m{n}")
        communication.create_task(
            client=acme, title=f"t{n}", due_at=datetime(2026, 1, 20, 9, tzinfo=UTC), assignee=bob, actor=alice
        )
    assert count() == few <= 8
