"""iCalendar invitations and the member's subscription feed (delivery.ics, delivery.feeds), and the outbox
part that carries an invitation (retainers.outbox.calendar_invitation)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from icalendar import Calendar

from delivery import booking, feeds, ics
from delivery.models import CalendarFeed
from retainers import outbox
from retainers.models import Membership
from tests.booking.conftest import at

pytestmark = pytest.mark.django_db

ZONES = ["Europe/London", "America/New_York", "Australia/Sydney"]


def transitions(zone: ZoneInfo, year: int) -> list[datetime]:
    """The instants (UTC) the zone's offset changes in `year`, found by the hour then the minute."""
    found, moment = [], datetime(year, 1, 1, tzinfo=UTC)
    while moment.year == year:
        step = moment + timedelta(hours=1)
        if step.astimezone(zone).utcoffset() != moment.astimezone(zone).utcoffset():
            while (moment + timedelta(minutes=1)).astimezone(zone).utcoffset() == moment.astimezone(zone).utcoffset():
                moment += timedelta(minutes=1)
            found.append(moment + timedelta(minutes=1))
        moment = step
    return found


@pytest.mark.parametrize("name", ZONES)
def test_the_vtimezone_changes_offset_exactly_when_the_zone_does(now, session_type, retainer, carol, name):
    """RFC 5545: an observance starts at DTSTART read in its TZOFFSETFROM. Every 2026 change must be one."""
    made = booking.book(
        session_type=session_type, retainer=retainer, starts_at=at(10, 9), actor=carol.user, contact=carol
    )
    zone = ZoneInfo(name)
    (timezone,) = Calendar.from_ical(ics.invitation(made, zone=zone, method=ics.REQUEST)).timezones
    onsets = set()
    for observance in timezone.subcomponents:
        offset_from = observance["TZOFFSETFROM"].td
        if offset_from == observance["TZOFFSETTO"].td:
            continue  # the opening observance, not a change
        rdates = observance.get("RDATE") or []
        moments = [observance.DTSTART] + [
            m.dt for dates in (rdates if isinstance(rdates, list) else [rdates]) for m in dates.dts
        ]
        onsets |= {(m - offset_from).replace(tzinfo=UTC) for m in moments}
    assert {o for o in onsets if o.year == 2026} == set(transitions(zone, 2026))


def test_an_invitation_parses_with_tzid_uid_sequence_and_people(now, session_type, retainer, carol, bob):
    made = booking.book(
        session_type=session_type, retainer=retainer, starts_at=at(30, 9), actor=carol.user, contact=carol
    )
    text = ics.invitation(made, zone=ZoneInfo("Europe/London"), method=ics.REQUEST)
    assert "DTSTART;TZID=Europe/London:20260330T090000" in text  # BST by then: 08:00 UTC
    parsed = Calendar.from_ical(text)
    assert parsed["METHOD"] == "REQUEST" and [tz.tz_name for tz in parsed.timezones] == ["Europe/London"]
    (event,) = parsed.walk("VEVENT")
    assert event.start == made.starts_at and event.end == made.ends_at
    assert event.start.utcoffset() == timedelta(hours=1)
    assert str(event["UID"]) == made.uid and event["SEQUENCE"] == 0 and event["STATUS"] == "CONFIRMED"
    assert event["ORGANIZER"] == f"mailto:{bob.email}" and event["ORGANIZER"].params["CN"] == "Bob Baker"
    assert [str(a) for a in event.attendees] == [f"mailto:{carol.email}"]
    assert event["LOCATION"] == "https://meet.example.com/bob"
    object_text = ics.calendar_object(made, zone=ZoneInfo("Europe/London"))
    assert "METHOD" not in object_text  # RFC 4791: no METHOD in a stored calendar object


def test_the_email_carries_the_invitation_as_a_calendar_part_and_a_file(
    now, session_type, retainer, carol, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        made = booking.book(
            session_type=session_type, retainer=retainer, starts_at=at(10, 9), actor=carol.user, contact=carol
        )
    (to_carol,) = [m for m in mail.outbox if m.to == [carol.email]]
    message = to_carol.message()
    parts = {part.get_content_type(): part for part in message.walk()}
    calendar_part = parts["text/calendar"]
    assert calendar_part.get_param("method") == "REQUEST"
    assert calendar_part in parts["multipart/alternative"].get_payload()  # beside text and HTML
    (attached,) = [p for p in message.walk() if p.get_filename() == "invite.ics"]
    assert attached.get_content_type() == "application/ics"
    assert Calendar.from_ical(calendar_part.get_content()).walk("VEVENT")[0]["UID"] == made.uid
    assert Calendar.from_ical(attached.get_content()) == Calendar.from_ical(calendar_part.get_content())


def test_an_outbox_email_without_an_invitation_has_no_calendar_part(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        outbox.queue_email(
            to="someone@example.com",
            template="portal_invitation",
            context={"contact": {"name": "Carol"}, "workspace": {"name": "N"}, "client_name": "A", "path": "/p/"},
            attachments=[{"content": "hello", "filename": "note.txt", "mimetype": "text/plain"}],
        )
    message = mail.outbox[0].message()
    types = [part.get_content_type() for part in message.walk()]
    assert "text/calendar" not in types
    (note,) = [p for p in message.walk() if p.get_filename() == "note.txt"]
    assert note.get_content().strip() == "hello"


# --- The subscription feed ---------------------------------------------------------------------------


def test_the_feed_lists_the_members_bookings_and_a_new_url_revokes_the_old(
    now, client, session_type, retainer, carol, workspace, bob
):
    kept = booking.book(
        session_type=session_type, retainer=retainer, starts_at=at(10, 9), actor=carol.user, contact=carol
    )
    gone = booking.book(
        session_type=session_type, retainer=retainer, starts_at=at(10, 13), actor=carol.user, contact=carol
    )
    booking.cancel(booking=gone, actor=bob)
    feed = feeds.regenerate_feed(workspace=workspace, member=bob)
    url = feeds.feed_url(feed)
    path = url.removeprefix("http://127.0.0.1:8000")
    response = client.get(path)
    assert response.status_code == 200 and response["Content-Type"] == "text/calendar; charset=utf-8"
    parsed = Calendar.from_ical(response.content)
    status = {str(e["UID"]): str(e["STATUS"]) for e in parsed.walk("VEVENT")}
    assert status == {kept.uid: "CONFIRMED", gone.uid: "CANCELLED"}
    again = feeds.regenerate_feed(workspace=workspace, member=bob)
    assert client.get(path).status_code == 404
    assert client.get(feeds.feed_url(again).removeprefix("http://127.0.0.1:8000")).status_code == 200
    feeds.revoke_feed(workspace=workspace, member=bob)
    assert client.get(feeds.feed_url(again).removeprefix("http://127.0.0.1:8000")).status_code == 404
    assert CalendarFeed.objects.filter(member=bob, revoked_at=None).count() == 0


@pytest.mark.parametrize("token", ["1", "x.y", "99999999.secret", "1.wrong", "١.secret", "1" * 40 + ".s"])
def test_forged_or_garbled_feed_tokens_are_404(client, workspace, bob, token):
    feeds.regenerate_feed(workspace=workspace, member=bob)
    assert client.get(f"/calendar/{token}.ics").status_code == 404


def test_the_feed_of_someone_who_left_the_workspace_is_404(client, workspace, bob):
    url = feeds.feed_url(feeds.regenerate_feed(workspace=workspace, member=bob))
    Membership.objects.filter(workspace=workspace, user=bob).delete()
    assert client.get(url.removeprefix("http://127.0.0.1:8000")).status_code == 404


def test_the_feed_secret_is_stored_hashed_and_sealed_never_plain(workspace, bob):
    feed = feeds.regenerate_feed(workspace=workspace, member=bob)
    secret = feeds.feed_url(feed).rsplit("/", 1)[1].removesuffix(".ics").split(".", 1)[1]
    row = CalendarFeed.objects.get(pk=feed.pk)
    assert len(secret) >= 40 and secret not in row.secret_sealed and secret not in row.secret_hash
