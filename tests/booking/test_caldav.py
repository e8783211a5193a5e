"""CalDAV against a real server (radicale on loopback, tests/booking/conftest.py): connect, read busy
times, write bookings and keep them in step, fail loudly once, never block booking pages."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
from django.core import mail
from icalendar import Calendar

from delivery import booking, caldav_sync
from delivery.caldav_sync import CalendarError
from delivery.encryption import unseal
from delivery.models import Booking, BusyBlock, CalendarConnection
from retainers.models import Email
from tests.booking.conftest import RADICALE_PASSWORD, RADICALE_USER, at

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def event(uid: str, start: str, end: str, *, extra: str = "") -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260301T000000Z\r\nDTSTART{start}\r\nDTEND{end}\r\nSUMMARY:Private\r\n{extra}"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def put(radicale, calendar_url: str, text: str) -> None:
    uid = text.split("UID:")[1].split("\r\n")[0]
    response = radicale.client().put(f"{calendar_url}{uid}.ics", text, {"Content-Type": "text/calendar"})
    assert response.status in (201, 204)


def stored(radicale, calendar_url: str) -> dict[str, Calendar]:
    """The events on the server, parsed with icalendar, by UID."""
    import caldav

    calendar = caldav.Calendar(client=radicale.client(), url=calendar_url)
    found = {}
    for item in calendar.events():
        parsed = Calendar.from_ical(item.data)
        found[str(parsed.walk("VEVENT")[0]["UID"])] = parsed
    return found


@pytest.fixture
def calendar_url(radicale, caldav_settings) -> str:
    return radicale.new_calendar()


@pytest.fixture
def connection(workspace, bob, calendar_url) -> CalendarConnection:
    return caldav_sync.connect(
        workspace=workspace, member=bob, url=calendar_url, username=RADICALE_USER, password=RADICALE_PASSWORD
    )


# --- Connecting ---------------------------------------------------------------------------------------


def test_connecting_finds_the_calendar_and_seals_the_password(workspace, bob, radicale, calendar_url):
    connection = caldav_sync.connect(
        workspace=workspace, member=bob, url=calendar_url, username=RADICALE_USER, password=RADICALE_PASSWORD
    )
    assert connection.calendar_url == calendar_url
    assert RADICALE_PASSWORD not in connection.password_sealed
    assert unseal(connection.password_sealed) == RADICALE_PASSWORD
    # The account's address works too: its calendar with events is found.
    again = caldav_sync.connect(
        workspace=workspace, member=bob, url=radicale.url, username=RADICALE_USER, password=RADICALE_PASSWORD
    )
    assert again.calendar_url.startswith(radicale.url) and CalendarConnection.objects.count() == 1


@pytest.mark.parametrize(
    ("url", "password", "field", "message"),
    [
        ("calendar", "wrong-password", "password", "refused this username and app password"),
        ("http://127.0.0.1:9/", RADICALE_PASSWORD, "url", "did not answer"),
        ("ftp://example.com/", RADICALE_PASSWORD, "url", "https://"),
    ],
)
def test_a_calendar_that_does_not_work_is_not_saved(workspace, bob, calendar_url, url, password, field, message):
    with pytest.raises(CalendarError, match=message) as refused:
        caldav_sync.connect(
            workspace=workspace,
            member=bob,
            url=calendar_url if url == "calendar" else url,
            username=RADICALE_USER,
            password=password,
        )
    assert refused.value.field == field
    assert CalendarConnection.objects.count() == 0


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:5232/", "https://169.254.169.254/latest/", "https://10.0.0.8/dav/", "https://localhost/"]
)
def test_private_addresses_are_refused_in_production(settings, url):
    settings.CALDAV_ALLOW_PRIVATE_HOSTS = False
    with pytest.raises(CalendarError) as refused:
        caldav_sync.check_address(url)
    assert refused.value.field == "url"


# --- Reading busy times --------------------------------------------------------------------------------


def test_sync_reads_busy_times_and_booking_pages_leave_them_out(
    now, radicale, connection, calendar_url, session_type, retainer, carol
):
    put(radicale, calendar_url, event("dentist", ":20260310T100000Z", ":20260310T103000Z"))
    put(
        radicale,
        calendar_url,
        event("weekly", ":20260311T140000Z", ":20260311T150000Z", extra="RRULE:FREQ=WEEKLY;COUNT=3\r\n"),
    )
    put(radicale, calendar_url, event("holiday", ";VALUE=DATE:20260313", ";VALUE=DATE:20260314"))
    put(radicale, calendar_url, event("free", ":20260312T090000Z", ":20260312T100000Z", extra="TRANSP:TRANSPARENT\r\n"))
    put(
        radicale,
        calendar_url,
        event("called-off", ":20260312T130000Z", ":20260312T140000Z", extra="STATUS:CANCELLED\r\n"),
    )
    put(radicale, calendar_url, event("past", ":20260302T100000Z", ":20260302T110000Z"))
    result = caldav_sync.sync_connection(connection.pk)
    assert result.ok and result.busy_blocks == 5
    blocks = sorted(BusyBlock.objects.filter(connection=connection).values_list("starts_at", "ends_at"))
    assert blocks == [
        (at(10, 10), at(10, 10, 30)),
        (at(11, 14), at(11, 15)),
        (at(13, 0), at(14, 0)),  # all day, in Bob's zone
        (at(18, 14), at(18, 15)),
        (at(25, 14), at(25, 15)),
    ]
    connection.refresh_from_db()
    assert connection.status == CalendarConnection.Status.OK and connection.last_synced_at == now
    starts = set(booking.available_starts(session_type=session_type, first=date(2026, 3, 10), last=date(2026, 3, 13)))
    assert at(10, 9) in starts and at(10, 9, 30) not in starts and at(10, 10) not in starts
    assert at(11, 14) not in starts and at(12, 9) in starts and at(12, 13) in starts
    assert not {s for s in starts if s.date() == date(2026, 3, 13)}
    with pytest.raises(booking.BookingError, match="just taken"):
        booking.book(
            session_type=session_type, retainer=retainer, starts_at=at(10, 10), actor=carol.user, contact=carol
        )


def test_a_sync_with_nothing_changed_writes_nothing(now, radicale, connection, calendar_url):
    put(radicale, calendar_url, event("dentist", ":20260310T100000Z", ":20260310T103000Z"))
    caldav_sync.sync_connection(connection.pk)
    first = set(BusyBlock.objects.values_list("pk", flat=True))
    caldav_sync.sync_connection(connection.pk)
    assert set(BusyBlock.objects.values_list("pk", flat=True)) == first
    radicale.client().delete(f"{calendar_url}dentist.ics")
    caldav_sync.sync_connection(connection.pk)
    assert BusyBlock.objects.count() == 0


# --- Writing bookings ---------------------------------------------------------------------------------


def test_bookings_are_written_moved_and_removed_in_step(
    now, radicale, connection, calendar_url, session_type, retainer, carol, bob, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):  # the task after commit writes it
        made = booking.book(
            session_type=session_type, retainer=retainer, starts_at=at(12, 9), actor=carol.user, contact=carol
        )
    on_server = stored(radicale, calendar_url)
    (written,) = on_server[made.uid].walk("VEVENT")
    assert written.start == at(12, 9) and written["SEQUENCE"] == 0
    made.refresh_from_db()
    assert made.calendar_sequence == 0 and made.calendar_href.endswith(".ics")

    with django_capture_on_commit_callbacks(execute=True):
        booking.reschedule(booking=made, starts_at=at(12, 14), actor=bob)
    (moved,) = stored(radicale, calendar_url)[made.uid].walk("VEVENT")
    assert moved.start == at(12, 14) and moved["SEQUENCE"] == 1
    assert len(stored(radicale, calendar_url)) == 1  # the same event, not a second one

    # Our own event comes back from the calendar: it is a booking, not a busy block.
    assert caldav_sync.sync_connection(connection.pk).busy_blocks == 0

    with django_capture_on_commit_callbacks(execute=True):
        booking.cancel(booking=made, actor=bob)
    assert made.uid not in stored(radicale, calendar_url)
    made.refresh_from_db()
    assert (made.calendar_sequence, made.calendar_href) == (2, "")


def test_the_email_invitation_round_trips_through_the_server(
    now, radicale, calendar_url, session_type, retainer, carol
):
    """What the client's calendar gets by email, stored on a CalDAV server and read back, is the same event."""
    from zoneinfo import ZoneInfo

    from delivery import ics

    made = booking.book(
        session_type=session_type, retainer=retainer, starts_at=at(30, 9), actor=carol.user, contact=carol
    )
    invitation = Calendar.from_ical(ics.invitation(made, zone=ZoneInfo("Europe/London"), method=ics.REQUEST))
    del invitation["METHOD"]  # an iTIP message becomes a stored object without its METHOD
    put(radicale, calendar_url, invitation.to_ical().decode())
    back = stored(radicale, calendar_url)[made.uid]
    (sent,), (read,) = invitation.walk("VEVENT"), back.walk("VEVENT")
    for name in ("UID", "SEQUENCE", "SUMMARY", "LOCATION", "ORGANIZER", "STATUS"):
        assert read[name] == sent[name]
    assert read.start == sent.start == at(30, 9) and read.end == sent.end
    assert str(read["DTSTART"].params["TZID"]) == "Europe/London"
    assert [tz.tz_name for tz in back.timezones] == ["Europe/London"]


def test_a_write_lost_with_its_task_is_made_by_the_next_sync(
    now, radicale, connection, calendar_url, session_type, retainer, carol
):
    made = booking.book(
        session_type=session_type, retainer=retainer, starts_at=at(12, 9), actor=carol.user, contact=carol
    )
    assert made.uid not in stored(radicale, calendar_url)  # its on_commit task never ran
    result = caldav_sync.sync_connection(connection.pk)
    assert result.written == 1 and made.uid in stored(radicale, calendar_url)
    assert caldav_sync.sync_connection(connection.pk).written == 0


# --- Failing -------------------------------------------------------------------------------------------


def test_a_calendar_that_stops_answering_fails_emails_once_and_recovers(
    now, connection, session_type, retainer, carol, bob
):
    CalendarConnection.objects.filter(pk=connection.pk).update(
        calendar_url="http://127.0.0.1:9/gone/", url="http://127.0.0.1:9/"
    )
    first = caldav_sync.sync_connection(connection.pk)
    assert not first.ok and "did not answer" in first.error
    connection.refresh_from_db()
    assert connection.status == CalendarConnection.Status.FAILED and connection.failed_since == now
    assert caldav_sync.sync_connection(connection.pk).ok is False
    (alert,) = Email.objects.filter(to=bob.email, key__startswith="calendar-failed-")
    assert "could not reach your calendar" in alert.body_text
    # Booking pages keep working on what was read last.
    made = booking.book(
        session_type=session_type, retainer=retainer, starts_at=at(12, 9), actor=carol.user, contact=carol
    )
    assert made.status == Booking.Status.BOOKED
    assert booking.available_starts(session_type=session_type, first=date(2026, 3, 12), last=date(2026, 3, 12))


def test_recovery_clears_the_failure_and_the_next_outage_is_told_again(now, radicale, connection, calendar_url, bob):
    good = (connection.url, connection.calendar_url)
    CalendarConnection.objects.filter(pk=connection.pk).update(
        calendar_url="http://127.0.0.1:9/x/", url="http://127.0.0.1:9/"
    )
    caldav_sync.sync_connection(connection.pk)
    CalendarConnection.objects.filter(pk=connection.pk).update(url=good[0], calendar_url=good[1])
    assert caldav_sync.sync_connection(connection.pk).ok
    connection.refresh_from_db()
    assert (connection.status, connection.failed_since, connection.failure_notified_at) == ("ok", None, None)
    CalendarConnection.objects.filter(pk=connection.pk).update(
        calendar_url="http://127.0.0.1:9/x/", url="http://127.0.0.1:9/"
    )
    caldav_sync.sync_connection(connection.pk, now=now + timedelta(days=2))
    assert Email.objects.filter(to=bob.email, key__startswith="calendar-failed-").count() == 2


def test_disconnecting_forgets_the_busy_times_and_what_was_written(
    now, radicale, connection, calendar_url, session_type, retainer, carol
):
    put(radicale, calendar_url, event("dentist", ":20260310T100000Z", ":20260310T103000Z"))
    made = booking.book(
        session_type=session_type, retainer=retainer, starts_at=at(12, 9), actor=carol.user, contact=carol
    )
    caldav_sync.sync_connection(connection.pk)
    caldav_sync.disconnect(connection)
    assert BusyBlock.objects.count() == 0 and CalendarConnection.objects.count() == 0
    made.refresh_from_db()
    assert (made.calendar_sequence, made.calendar_href) == (None, "")
    assert caldav_sync.sync_connection(connection.pk) is None  # a queued task finds nothing to do


def test_beat_fans_out_one_sync_per_connected_calendar(now, radicale, connection, calendar_url, workspace, alice):
    other = caldav_sync.connect(
        workspace=workspace,
        member=alice,
        url=radicale.new_calendar(),
        username=RADICALE_USER,
        password=RADICALE_PASSWORD,
    )
    put(radicale, calendar_url, event(f"e-{uuid.uuid4().hex}", ":20260310T100000Z", ":20260310T103000Z"))
    assert caldav_sync.fan_out() == 2  # tasks run eagerly in tests
    assert BusyBlock.objects.filter(connection=connection).count() == 1
    assert CalendarConnection.objects.get(pk=other.pk).status == "ok"
    assert len(mail.outbox) == 0
