"""CalDAV: a member's own calendar (Fastmail, iCloud, Nextcloud, Google's CalDAV endpoint...).

- `connect` checks the address, username and app password against the server before saving
  anything (errors go next to the form's fields) and stores the password sealed.
- `sync_connection` (beat, every 15 minutes, one task per calendar; and "Sync now") reads the busy
  times between now and the member's horizon into BusyBlock rows and writes the bookings that are
  not in step yet; `push_connection` (a task after each booking change) only writes.
- Booking pages read BusyBlock rows only: a calendar that is slow or down never blocks them. A
  calendar that stops answering marks its connection failed and emails the member once per outage.

Writes are keyed by the booking's SEQUENCE: a booking whose `calendar_sequence` is behind is
written again (PUT of the whole event at one stable href), a cancelled one is deleted; a write
lost with its task is picked up by the next sync.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from delivery import ics
from delivery.encryption import SealError, seal, unseal
from delivery.models import Booking, BusyBlock, CalendarConnection, Schedule
from retainers import tenancy
from retainers.models import Membership, User, Workspace
from retainers.outbox import queue_email

log = logging.getLogger(__name__)

MAX_BUSY_BLOCKS = 5000  # more events than this in the horizon is not a calendar we can mirror
ERROR_LENGTH = 500


class CalendarError(Exception):
    """A calendar that cannot be used; `field` names the form field it belongs to."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


# --- The address and the server -----------------------------------------------------------------


def check_address(url: str) -> None:
    """Refuse addresses the server should not call: not http(s), or (unless allowed) plain http and
    hosts on loopback, private or link-local networks, such as the cloud's metadata endpoint."""
    parts = urlsplit(url)
    if parts.scheme not in {"https", "http"} or not parts.hostname:
        raise CalendarError("Enter the calendar's https:// address.", field="url")
    if settings.CALDAV_ALLOW_PRIVATE_HOSTS:
        return
    if parts.scheme != "https":
        raise CalendarError("Use the https:// address: the app password must not travel in clear.", field="url")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise CalendarError(f"No server is known at {parts.hostname}.", field="url") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise CalendarError("That address is on a private network; use the calendar's public address.", field="url")


def _client(url: str, username: str, password: str):
    from caldav.davclient import DAVClient  # loaded on first use: niquests and lxml are heavy

    return DAVClient(
        url=url,
        username=username,
        password=password,
        timeout=settings.CALDAV_TIMEOUT_SECONDS,  # type: ignore[arg-type]  # caldav says int but hands it to niquests, which takes seconds as a float
        enable_rfc6764=False,  # the member gave the address: no DNS discovery
        # App passwords are Basic auth everywhere (iCloud, Fastmail, Nextcloud...); sending it at once
        # saves the unauthenticated probe, which servers answer 401 after a deliberate delay.
        auth_type="basic",
    )


def describe(exc: Exception) -> tuple[str, str | None]:
    """A calendar failure in words for the member, and the form field it points at."""
    from caldav.lib import error

    if isinstance(exc, CalendarError):
        return str(exc), exc.field
    if isinstance(exc, SealError):
        return "The saved app password can no longer be read: connect the calendar again.", "password"
    if isinstance(exc, error.AuthorizationError):
        return "The server refused this username and app password.", "password"
    if isinstance(exc, error.NotFoundError):
        return "Nothing was found at this address.", "url"
    if isinstance(exc, error.DAVError):
        return f"The server answered, but not as a CalDAV calendar does ({type(exc).__name__}).", "url"
    if isinstance(exc, OSError):  # niquests' connection errors and timeouts, DNS failures
        return "The server did not answer at this address.", "url"
    return f"The calendar could not be read ({type(exc).__name__}).", None


def _same(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def find_calendar(client, url: str) -> str:
    """The calendar at `url`: the address of one of the account's calendars, or (an account or server
    address) its first calendar that holds events."""
    calendars = client.principal().calendars()
    for calendar in calendars:
        if _same(str(calendar.url), url):
            return str(calendar.url)
    inside = [c for c in calendars if str(c.url).startswith(url.rstrip("/") + "/")] or calendars
    for calendar in inside:
        try:
            components = calendar.get_supported_components()
        except Exception:  # servers that do not say: assume events
            components = ["VEVENT"]
        if "VEVENT" in components:
            return str(calendar.url)
    raise CalendarError("No calendar with events was found for this account.", field="url")


# --- Connecting -------------------------------------------------------------------------------------


def connect(*, workspace: Workspace, member: User, url: str, username: str, password: str) -> CalendarConnection:
    """Check the calendar answers with these credentials, then save (or replace) the member's
    connection with the password sealed. Raises CalendarError (with a field) and saves nothing."""
    url, username = url.strip(), username.strip()
    check_address(url)
    try:
        calendar_url = find_calendar(_client(url, username, password), url)
    except Exception as exc:
        message, field = describe(exc)
        raise CalendarError(message, field=field) from exc
    with transaction.atomic():
        old = CalendarConnection.objects.filter(workspace=workspace, member=member).first()
        if old is not None:
            _forget(old)
        connection = CalendarConnection.objects.create(
            workspace=workspace,
            member=member,
            url=url,
            username=username,
            password_sealed=seal(password),
            calendar_url=calendar_url,
        )
    return connection


def _forget(connection: CalendarConnection) -> None:
    # Bookings written to this calendar will be written again to the next one.
    Booking.objects.filter(workspace_id=connection.workspace_id, member_id=connection.member_id).exclude(
        calendar_sequence=None, calendar_href=""
    ).update(calendar_sequence=None, calendar_href="")
    connection.delete()  # its busy blocks go with it


@transaction.atomic
def disconnect(connection: CalendarConnection) -> None:
    """Stop reading and writing the calendar. Events already written stay in it."""
    _forget(connection)


# --- Syncing ----------------------------------------------------------------------------------------


@dataclass
class SyncResult:
    ok: bool
    busy_blocks: int = 0
    written: int = 0
    deleted: int = 0
    error: str = ""


def _zone(connection: CalendarConnection) -> tuple[ZoneInfo, Schedule | None]:
    schedule = Schedule.objects.filter(workspace_id=connection.workspace_id, member_id=connection.member_id).first()
    name = schedule.zone_name(connection.workspace.timezone) if schedule else connection.workspace.timezone
    return ZoneInfo(name), schedule


def _live(connection_id: int) -> CalendarConnection | None:
    connection = CalendarConnection.objects.select_related("workspace", "member").filter(pk=connection_id).first()
    if connection is None:  # disconnected since the task was queued
        return None
    if not Membership.objects.filter(workspace_id=connection.workspace_id, user_id=connection.member_id).exists():
        return None  # they left the workspace: their calendar is not ours to touch
    return connection


@tenancy.per_row("delivery.CalendarConnection")
def sync_connection(connection_id: int, *, now: datetime | None = None) -> SyncResult | None:
    """Read the member's busy times and write their bookings. Safe to run any number of times."""
    return _run(connection_id, now=now or timezone.now(), read=True)


@tenancy.per_row("delivery.CalendarConnection")
def push_connection(connection_id: int, *, now: datetime | None = None) -> SyncResult | None:
    """Write the member's bookings that are not in step with their calendar (after a booking change)."""
    return _run(connection_id, now=now or timezone.now(), read=False)


def _run(connection_id: int, *, now: datetime, read: bool) -> SyncResult | None:
    connection = _live(connection_id)
    if connection is None:
        return None
    zone, schedule = _zone(connection)
    result = SyncResult(ok=True)
    try:
        check_address(connection.url)
        client = _client(connection.url, connection.username, unseal(connection.password_sealed))
        blocks = None
        if read:
            horizon = (schedule.horizon_days if schedule else 60) + 1
            calendar = client.calendar(url=connection.calendar_url)
            blocks = read_busy(
                calendar.search(start=now, end=now + timedelta(days=horizon), event=True, expand=True),
                start=now,
                end=now + timedelta(days=horizon),
                zone=zone,
                own_uids=_own_uids(connection),
            )
        result.written, result.deleted = _push(client, connection, zone=zone, now=now)
    except Exception as exc:
        log.warning("calendar %s failed: %s", connection.pk, exc, exc_info=True)
        result.ok, result.error = False, describe(exc)[0]
        _mark_failed(connection, result.error, now=now)
        return result
    if blocks is not None:
        result.busy_blocks = _store_busy(connection, blocks, now=now)
    CalendarConnection.objects.filter(pk=connection.pk).update(
        status=CalendarConnection.Status.OK,
        last_synced_at=now,
        last_error="",
        failed_since=None,
        failure_notified_at=None,
    )
    return result


def _own_uids(connection: CalendarConnection) -> set[str]:
    """Our own bookings come back from the calendar as events: they are bookings, not busy blocks."""
    return set(
        Booking.objects.filter(workspace_id=connection.workspace_id, member_id=connection.member_id).values_list(
            "uid", flat=True
        )
    )


def _instant(value: date | datetime, zone: ZoneInfo) -> datetime:
    if isinstance(value, datetime):
        return value if timezone.is_aware(value) else value.replace(tzinfo=zone)  # floating: the member's
    return datetime.combine(value, time(0), tzinfo=zone)  # all-day: the member's whole day


def read_busy(
    objects: Iterable, *, start: datetime, end: datetime, zone: ZoneInfo, own_uids: set[str]
) -> set[tuple[datetime, datetime]]:
    """The busy intervals of the calendar objects a search returned, clipped to [start, end): events
    that are not transparent (free), not cancelled and not our own bookings; all-day events take the
    member's whole days."""
    blocks: set[tuple[datetime, datetime]] = set()
    for item in objects:
        for event in item.icalendar_instance.walk("VEVENT"):
            if str(event.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
                continue
            if str(event.get("STATUS", "")).upper() == "CANCELLED" or str(event.get("UID", "")) in own_uids:
                continue
            if event.get("DTSTART") is None:
                continue
            begins = event.decoded("DTSTART")
            if event.get("DTEND") is not None:
                finishes = event.decoded("DTEND")
            elif event.get("DURATION") is not None:
                finishes = begins + event.decoded("DURATION")
            else:  # RFC 5545: a day for a date, nothing for a time
                finishes = begins + timedelta(days=1) if not isinstance(begins, datetime) else begins
            begins, finishes = max(_instant(begins, zone), start), min(_instant(finishes, zone), end)
            if finishes > begins:
                blocks.add((begins, finishes))
            if len(blocks) > MAX_BUSY_BLOCKS:
                raise CalendarError(f"This calendar has more than {MAX_BUSY_BLOCKS} events ahead; choose another one.")
    return blocks


@transaction.atomic
def _store_busy(connection: CalendarConnection, blocks: set[tuple[datetime, datetime]], *, now: datetime) -> int:
    """Make the stored busy blocks equal to `blocks`, writing only the difference: an unchanged
    calendar writes nothing (and so leaves the workspace's cached pages alone)."""
    stored = {
        (starts_at, ends_at): pk
        for pk, starts_at, ends_at in BusyBlock.objects.filter(connection=connection).values_list(
            "pk", "starts_at", "ends_at"
        )
    }
    gone = [pk for interval, pk in stored.items() if interval not in blocks or interval[1] <= now]
    if gone:
        BusyBlock.objects.filter(pk__in=gone).delete()
    BusyBlock.objects.bulk_create(
        BusyBlock(
            workspace_id=connection.workspace_id,
            connection=connection,
            member_id=connection.member_id,
            starts_at=starts_at,
            ends_at=ends_at,
        )
        for starts_at, ends_at in sorted(blocks - set(stored))
    )
    return len(blocks)


def _href(connection: CalendarConnection, booking: Booking) -> str:
    return connection.calendar_url.rstrip("/") + "/" + quote(booking.uid, safe="") + ".ics"


def _push(client, connection: CalendarConnection, *, zone: ZoneInfo, now: datetime) -> tuple[int, int]:
    """Write active bookings whose calendar copy is behind, delete cancelled ones written before."""
    behind = Q(calendar_sequence__isnull=True) | Q(calendar_sequence__lt=F("sequence"))
    pending = (
        Booking.objects.filter(workspace_id=connection.workspace_id, member_id=connection.member_id)
        .filter(
            (Q(status=Booking.Status.BOOKED, ends_at__gt=now) & behind)
            | (Q(status__in=[Booking.Status.CANCELLED, Booking.Status.LATE_CANCELLED]) & ~Q(calendar_href=""))
        )
        .select_related("session_type", "client", "contact", "member", "retainer")
        .order_by("starts_at")
    )
    written = deleted = 0
    for booking in pending:
        if booking.status == Booking.Status.BOOKED:
            href = booking.calendar_href or _href(connection, booking)
            response = client.put(
                href, ics.calendar_object(booking, zone=zone), {"Content-Type": "text/calendar; charset=utf-8"}
            )
            if response.status not in (200, 201, 204):
                raise CalendarError(f"The calendar refused to save a booking (HTTP {response.status}).")
            written += 1
        else:
            href = ""
            response = client.delete(booking.calendar_href)
            if response.status not in (200, 204, 404, 410):
                raise CalendarError(f"The calendar refused to remove a booking (HTTP {response.status}).")
            deleted += 1
        # Only if the booking did not change meanwhile; else the next push writes the newer one.
        Booking.objects.filter(pk=booking.pk, sequence=booking.sequence).update(
            calendar_sequence=booking.sequence, calendar_href=href
        )
    return written, deleted


def _mark_failed(connection: CalendarConnection, message: str, *, now: datetime) -> None:
    """The connection failed: say so on the page, and email the member the first time (per outage)."""
    with transaction.atomic():
        CalendarConnection.objects.filter(pk=connection.pk).update(
            status=CalendarConnection.Status.FAILED, last_error=message[:ERROR_LENGTH]
        )
        CalendarConnection.objects.filter(pk=connection.pk, failed_since=None).update(failed_since=now)
        claimed = CalendarConnection.objects.filter(pk=connection.pk, failure_notified_at=None).update(
            failure_notified_at=now
        )
        if not claimed:
            return
        failed_since = CalendarConnection.objects.values_list("failed_since", flat=True).get(pk=connection.pk)
        assert failed_since is not None  # set above when it was empty
        workspace = connection.workspace
        path = reverse("delivery:booking_calendar", kwargs={"workspace_slug": workspace.slug})
        queue_email(
            to=connection.member.email,
            template="calendar_failed",
            context={
                "workspace": workspace,
                "recipient_name": connection.member.get_short_name(),
                "connection": connection,
                "error": message,
                "url": settings.SITE_URL + path,
            },
            workspace=workspace,
            key=f"calendar-failed-{connection.pk}-{int(failed_since.timestamp())}",
        )


@tenancy.scan("calendar sync: the connected calendars of every workspace")
def fan_out() -> int:
    """Beat's sweep: one sync task per calendar of a current member."""
    from delivery import tasks

    ids = list(
        CalendarConnection.objects.filter(
            member__memberships__workspace_id=F("workspace_id"), member__is_active=True
        ).values_list("pk", flat=True)
    )
    for connection_id in ids:
        tasks.sync_calendar.delay(connection_id)
    return len(ids)
