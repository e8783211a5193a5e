"""Bookings as pages list them: the read-model of the dashboard's "today" and "this week", the client
page's and the retainer page's bookings, the consultant's bookings page and the portal's "your sessions".

A `Line` is one booking in plain values (no model instances), so a cached page part can hold it;
what depends on the moment and the reader (started yet, still movable, the day and hour in their
zone) is worked out per request by `show`. Every function here makes one query.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, TypedDict, cast
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django.db.models import IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from clients.models import Client, Retainer
from delivery.models import Booking, BookingPolicy, SessionType
from retainers.http import WorkspaceRequest
from retainers.models import User, Workspace
from retainers.units import format_units

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

ACTIVE = Booking.Status.BOOKED
CANCELLED = (Booking.Status.CANCELLED, Booking.Status.LATE_CANCELLED)
DEFAULT_WINDOW_HOURS = BookingPolicy._meta.get_field("cancel_window_hours").get_default()
LIST_LIMIT = 50  # the most one section lists; the bookings page pages through the rest


@dataclass(frozen=True)
class Line:
    """One booking, every value a page prints."""

    pk: int
    starts_at: datetime
    ends_at: datetime
    status: str
    status_label: str
    session_type: str
    member: str
    client_id: int
    client: str
    retainer_id: int
    retainer: str
    contact: str
    units: str  # "1 hour", "2 sessions"
    location: str
    move_until: datetime  # a contact moves or cancels freely until then (the retainer's window)

    @property
    def is_active(self) -> bool:
        return self.status == ACTIVE


@dataclass(frozen=True)
class Shown:
    """A line as one reader sees it at one moment."""

    line: Line
    day: date
    day_label: str  # "Tue 10 Mar"
    hours: str  # "09:00–10:00"
    started: bool
    ended: bool
    movable: bool  # a contact may still move or cancel it without the late rules

    @property
    def settle(self) -> bool:
        """Waiting to be marked held or no-show."""
        return self.line.is_active and self.started


class _Window(TypedDict):
    window_hours: int  # the retainer's cancellation window, or the default


type WindowedBooking = WithAnnotations[Booking, _Window]


def _queryset(workspace: Workspace) -> QuerySet[WindowedBooking]:
    window = BookingPolicy.objects.filter(workspace=workspace, retainer=OuterRef("retainer")).values(
        "cancel_window_hours"
    )[:1]
    return cast(
        "QuerySet[WindowedBooking]",  # the annotation below is an int: the window, or the default
        Booking.objects.for_workspace(workspace)
        .select_related("session_type", "member", "client", "retainer", "contact")
        .annotate(window_hours=Coalesce(Subquery(window), Value(DEFAULT_WINDOW_HOURS), output_field=IntegerField())),
    )


def _unit_text(quantity: Decimal, unit: str) -> str:
    word = unit[:-1] if quantity == 1 and unit.endswith("s") else unit
    return f"{format_units(quantity)} {word}"


def _line(booking: WindowedBooking) -> Line:
    return Line(
        pk=booking.pk,
        starts_at=booking.starts_at,
        ends_at=booking.ends_at,
        status=booking.status,
        status_label=booking.get_status_display(),
        session_type=booking.session_type.name,
        member=booking.member.get_full_name(),
        client_id=booking.client_id,
        client=booking.client.name,
        retainer_id=booking.retainer_id,
        retainer=booking.retainer.name,
        contact=booking.contact.name if booking.contact else "",
        units=_unit_text(booking.units, booking.unit),
        location=booking.session_type.location,
        move_until=booking.starts_at - timedelta(hours=booking.window_hours),
    )


def lines(bookings: Iterable[WindowedBooking]) -> list[Line]:
    return [_line(booking) for booking in bookings]


def line(workspace: Workspace, booking_id: int) -> Line:
    """One booking of the workspace, as the lists show it (after it changed)."""
    return _line(_queryset(workspace).get(pk=booking_id))


def show(found: list[Line], *, zone: ZoneInfo, now: datetime) -> list[Shown]:
    """The lines as a reader in `zone` sees them at `now`."""
    shown = []
    for item in found:
        start, end = item.starts_at.astimezone(zone), item.ends_at.astimezone(zone)
        shown.append(
            Shown(
                line=item,
                day=start.date(),
                day_label=f"{start:%a} {start.day} {start:%b}",
                hours=f"{start:%H:%M}–{end:%H:%M}",
                started=now >= item.starts_at,
                ended=now >= item.ends_at,
                movable=now < item.move_until,
            )
        )
    return shown


def _day_start(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


# --- The consultant's pages ------------------------------------------------------------------------


@dataclass(frozen=True)
class Week:
    """The dashboard's bookings: today's, the rest of this week's (to Sunday), and earlier ones still
    waiting to be marked held or no-show."""

    today: list[Line]
    later: list[Line]
    to_settle: list[Line]

    def __bool__(self) -> bool:
        return bool(self.today or self.later or self.to_settle)


def week(workspace: Workspace, *, today: date) -> Week:
    """This week's bookings in the workspace's days: cancelled ones left out, held ones kept (today's
    list shows what happened). Plain values: the dashboard caches it under the data version."""
    zone = workspace.tzinfo
    start = _day_start(today, zone)
    tomorrow = _day_start(today + timedelta(days=1), zone)
    week_end = _day_start(today + timedelta(days=7 - today.weekday()), zone)
    found = lines(
        _queryset(workspace)
        .filter(Q(starts_at__gte=start, starts_at__lt=week_end) | Q(status=ACTIVE, starts_at__lt=start))
        .exclude(status__in=CANCELLED)
        .order_by("starts_at", "pk")[: LIST_LIMIT * 3]
    )
    return Week(
        today=[b for b in found if start <= b.starts_at < tomorrow],
        later=[b for b in found if b.starts_at >= tomorrow],
        to_settle=[b for b in found if b.starts_at < start],
    )


def for_client(workspace: Workspace, client: Client) -> list[Line]:
    """The client's bookings waiting to happen or to be settled, oldest first (the client page)."""
    return lines(_queryset(workspace).filter(client=client, status=ACTIVE).order_by("starts_at", "pk")[:LIST_LIMIT])


def for_retainer(workspace: Workspace, retainer: Retainer) -> list[Line]:
    """The retainer's bookings waiting to happen or to be settled, oldest first (the retainer page)."""
    return lines(_queryset(workspace).filter(retainer=retainer, status=ACTIVE).order_by("starts_at", "pk")[:LIST_LIMIT])


def agenda(workspace: Workspace, *, member: User | None = None, past: bool = False, now: datetime) -> QuerySet:
    """The bookings page: active bookings, the ones to settle first (`past`: those settled or
    cancelled in the last 30 days, newest first). A queryset, for the page's paginator."""
    found = _queryset(workspace)
    if member is not None:
        found = found.filter(member=member)
    if past:
        return found.exclude(status=ACTIVE).filter(starts_at__gte=now - timedelta(days=30)).order_by("-starts_at")
    return found.filter(status=ACTIVE).order_by("starts_at", "pk")


def client_section(request: WorkspaceRequest, client: Client) -> dict[str, object]:
    """The client page's "Bookings" section: the client's bookings to come and to settle (one query)."""
    found = for_client(request.workspace, client)
    return {
        "client": client,
        "rows": show(found, zone=request.workspace.tzinfo, now=timezone.now()),
        "next_url": request.get_full_path(),
    }


# --- The portal ---------------------------------------------------------------------------------------


def upcoming_for_client(workspace: Workspace, client: Client, *, today: date) -> list[Line]:
    """The client's active bookings from today on (and any not settled yet), for the portal: plain
    values, so the overview can cache them; `show` then drops those that have ended."""
    return lines(
        _queryset(workspace)
        .filter(client=client, status=ACTIVE, ends_at__gte=_day_start(today, workspace.tzinfo))
        .order_by("starts_at", "pk")[:LIST_LIMIT]
    )


def still_ahead(shown: list[Shown]) -> list[Shown]:
    return [item for item in shown if not item.ended]


# --- Free times, a week at a time (the booking pages of both sides) ------------------------------------


DAYS_SHOWN = 7


@dataclass(frozen=True)
class OfferDay:
    day: date
    label: str  # "Tuesday 10 March"
    starts: list[tuple[datetime, str]]  # (start, "09:30" in the reader's zone)


@dataclass(frozen=True)
class OfferWeek:
    """Seven days of free times in the reader's zone, from `first`, and where the others are."""

    days: list[OfferDay]
    first: date
    last: date
    earlier_from: date | None  # the `first` of the page before, when there are times before
    later_from: date | None  # the first day with times after this page
    any_times: bool


def offer_week(starts: list[datetime], *, zone: ZoneInfo, today: date, first: date | None) -> OfferWeek:
    """Group free start times by the reader's days and show seven of them, from `first` (by default
    the first day that has a time; never before today)."""
    by_day: dict[date, list[datetime]] = {}
    for start in starts:
        by_day.setdefault(start.astimezone(zone).date(), []).append(start)
    days_with_times = sorted(by_day)
    if first is None:
        first = days_with_times[0] if days_with_times else today
    first = max(first, today)
    last = first + timedelta(days=DAYS_SHOWN - 1)
    earlier = [d for d in days_with_times if d < first]
    later = [d for d in days_with_times if d > last]
    return OfferWeek(
        days=[
            OfferDay(
                day=day,
                label=f"{day:%A} {day.day} {day:%B}",
                starts=[(s, f"{s.astimezone(zone):%H:%M}") for s in by_day[day]],
            )
            for day in days_with_times
            if first <= day <= last
        ],
        first=first,
        last=last,
        earlier_from=max(first - timedelta(days=DAYS_SHOWN), earlier[0]) if earlier else None,
        later_from=later[0] if later else None,
        any_times=bool(starts),
    )


# --- Choosing what to book, and start times in links ----------------------------------------------------

STAMP = "%Y%m%dT%H%MZ"  # a start time in a link: UTC to the minute, nothing to escape


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(STAMP)


def parse_stamp(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


@dataclass
class Choice:
    """What a client can book (delivery.booking.bookable_for_client) and which type and retainer a
    request picked: the first of each unless it named another one of them."""

    types: list[tuple[SessionType, list[Retainer]]]
    session_type: SessionType | None
    retainer: Retainer | None

    @property
    def retainers(self) -> list[Retainer]:
        return next((rs for t, rs in self.types if t == self.session_type), [])

    def query(self, **extra: str) -> str:
        params = {"type": str(self.session_type.pk)} if self.session_type else {}
        if self.retainer is not None:
            params["retainer"] = str(self.retainer.pk)
        return urlencode({**params, **extra})


def choose(types: list[tuple[SessionType, list[Retainer]]], *, type_id: int | None, retainer_id: int | None) -> Choice:
    chosen = next(((t, rs) for t, rs in types if t.pk == type_id), types[0] if types else None)
    if chosen is None:
        return Choice(types, None, None)
    session_type, retainers = chosen
    return Choice(types, session_type, next((r for r in retainers if r.pk == retainer_id), retainers[0]))


def int_param(value: str | None) -> int | None:
    """An id from a query string or form, or None for anything else."""
    return int(value) if value and value.isdigit() and len(value) < 12 else None


def times_page(
    starts: list[datetime], *, zone: ZoneInfo, today: date, first: str, link: Callable[..., str]
) -> dict[str, object]:
    """What a page of free times shows: seven days from `first` (an ISO date from the query string;
    anything else: the first day with a time), each time a link made by `link(start=...)`, and the
    links to the days before and after (`link(from=...)`)."""
    try:
        first_day: date | None = date.fromisoformat(first) if len(first) == 10 else None
    except ValueError:
        first_day = None
    week = offer_week(starts, zone=zone, today=today, first=first_day)
    return {
        "days": [
            {"label": day.label, "day": day.day, "times": [(link(start=stamp(s)), label) for s, label in day.starts]}
            for day in week.days
        ],
        "shown_from": week.first,
        "shown_to": week.last,
        "earlier_url": link(**{"from": week.earlier_from.isoformat()}) if week.earlier_from else "",
        "later_url": link(**{"from": week.later_from.isoformat()}) if week.later_from else "",
        "any_times": week.any_times,
    }
