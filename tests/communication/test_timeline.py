"""The client's timeline: merged newest first in a stable order, filtered by kind, paged with htmx."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from clients.timeline import Cursor
from communication import services as communication
from dashboard import timeline
from delivery.services import record_delivery
from retainers.models import Membership
from tests.communication.conftest import HTMX, team_url

pytestmark = pytest.mark.django_db


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


START = at(2026, 1, 2, 9)


def fill(acme, alice, carol, retainer, *, days: int, start: datetime = START) -> None:
    """One note, message, task and session a day, each at its own hour."""
    for n in range(days):
        day = start + timedelta(days=n)
        with time_machine.travel(day, tick=False):
            communication.create_note(client=acme, author=alice, body=f"note {n}", visibility="private")
        with time_machine.travel(day + timedelta(hours=1), tick=False):
            communication.send_contact_message(contact=carol, body=f"message {n}")
        with time_machine.travel(day + timedelta(hours=2), tick=False):
            communication.create_task(client=acme, title=f"task {n}", due_at=day + timedelta(days=3), actor=alice)
        with time_machine.travel(day + timedelta(hours=3), tick=False):
            record_delivery(
                retainer=retainer,
                delivered_on=date(2026, 1, 2) + timedelta(days=n),
                quantity=Decimal("0.25"),
                description=f"session {n}",
                actor=alice,
            )


@pytest.fixture
def request_for(workspace, alice):
    request = RequestFactory().get("/")
    request.workspace, request.user = workspace, alice
    request.membership = Membership.objects.get(workspace=workspace, user=alice)
    return request


def test_events_of_every_kind_are_merged_newest_first(acme, alice, carol, retainer, request_for):
    fill(acme, alice, carol, retainer, days=2)
    page = timeline.page(request_for, acme)
    assert [(e.kind, e.at) for e in page.events] == [
        ("session", at(2026, 1, 3, 12)),
        ("task", at(2026, 1, 3, 11)),
        ("message", at(2026, 1, 3, 10)),
        ("note", at(2026, 1, 3, 9)),
        ("session", at(2026, 1, 2, 12)),
        ("task", at(2026, 1, 2, 11)),
        ("message", at(2026, 1, 2, 10)),
        ("note", at(2026, 1, 2, 9)),
    ]
    assert page.next_cursor is None


def test_a_note_shows_its_words_not_its_markdown(acme, alice, request_for):
    """The timeline is plain text: a note's `**`, `#` and list marks would show as typed."""
    communication.create_note(
        client=acme, author=alice, body="## Go-live\n\n- **Pick rate** agreed\n- *Rota* signed", visibility="private"
    )
    [event] = timeline.page(request_for, acme).events
    assert event.detail == "Go-live Pick rate agreed Rota signed"


def test_events_at_the_same_moment_keep_a_stable_order_across_pages(acme, alice, carol, request_for):
    moment = at(2026, 1, 5, 9)
    with time_machine.travel(moment, tick=False):
        for n in range(4):
            communication.create_note(client=acme, author=alice, body=f"note {n}", visibility="private")
            communication.send_contact_message(contact=carol, body=f"message {n}")
            communication.create_task(client=acme, title=f"task {n}", due_at=moment, actor=alice)
    everything = timeline.page(request_for, acme, limit=100).events
    assert [e.kind for e in everything] == ["task"] * 4 + ["note"] * 4 + ["message"] * 4
    assert [e.pk for e in everything[:4]] == sorted((e.pk for e in everything[:4]), reverse=True)

    seen, cursor = [], None
    while True:
        page = timeline.page(request_for, acme, before=cursor, limit=5)
        seen += page.events
        if page.next_cursor is None:
            break
        cursor = Cursor.decode(page.next_cursor.encode())  # through the URL and back
    assert seen == everything


def test_filtering_by_kind(workspace, acme, alice, carol, retainer, owner_client):
    fill(acme, alice, carol, retainer, days=2)
    html = owner_client.get(
        team_url(workspace, "dashboard:client_timeline", client_id=acme.pk), {"kind": ["note", "session"]}
    ).content.decode()
    assert "note 1" in html and "session 1" in html
    assert "message 1" not in html and "task 1" not in html
    unknown = owner_client.get(team_url(workspace, "dashboard:client_timeline", client_id=acme.pk), {"kind": "bogus"})
    assert "message 1" in unknown.content.decode()  # an unknown kind is ignored: everything shows


def test_load_more_with_htmx_returns_the_next_rows_only(workspace, acme, alice, carol, retainer, owner_client):
    fill(acme, alice, carol, retainer, days=8)  # 32 events: two pages of 25
    url = team_url(workspace, "dashboard:client_timeline", client_id=acme.pk)
    first = owner_client.get(url).content.decode()
    assert first.count('<span class="badge badge-muted">') == 25
    more = re.search(r'hx-get="([^"]+)"[^>]*>Load more', first).group(1).replace("&amp;", "&")
    assert more.startswith("?before=")  # relative to the page, as the browser resolves it
    fragment = owner_client.get(url + more, **HTMX).content.decode()
    assert "<html" not in fragment
    assert fragment.count('<span class="badge badge-muted">') == 7
    assert "Load more" not in fragment
    assert "note 0" in fragment and "note 0" not in first  # the oldest is on page two


def test_a_malformed_cursor_shows_the_first_page(workspace, acme, alice, carol, retainer, owner_client):
    fill(acme, alice, carol, retainer, days=1)
    response = owner_client.get(
        team_url(workspace, "dashboard:client_timeline", client_id=acme.pk), {"before": "garbage~x~y"}
    )
    assert response.status_code == 200 and "session 0" in response.content.decode()


def test_a_page_takes_the_same_number_of_queries_however_long_the_history(
    workspace, acme, alice, carol, retainer, owner_client
):
    url = team_url(workspace, "dashboard:client_timeline", client_id=acme.pk)
    fill(acme, alice, carol, retainer, days=2)
    owner_client.get(url)  # the first visit also saves the session: measure the next ones
    with CaptureQueriesContext(connection) as small:
        owner_client.get(url)
    fill(acme, alice, carol, retainer, days=15, start=at(2026, 1, 10, 9))
    with CaptureQueriesContext(connection) as large:
        response = owner_client.get(url)
    assert "Load more" in response.content.decode()
    assert [q["sql"][:60] for q in large] == [q["sql"][:60] for q in small]
    with CaptureQueriesContext(connection) as filtered:
        owner_client.get(url, {"kind": "note"})
    # Only the notes' provider is asked: one query fewer for every other kind (each provider has one kind).
    assert len(filtered) == len(small) - (len(timeline.kind_choices()) - 1)


def test_timeline_of_another_workspace_is_404(workspace, other_workspace, acme, outsider_client):
    assert (
        outsider_client.get(team_url(other_workspace, "dashboard:client_timeline", client_id=acme.pk)).status_code
        == 404
    )
