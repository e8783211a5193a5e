"""Bookings: clients (or members on their behalf) book sessions that draw units from a retainer.

A booking reserves its units while it is `booked` (`booked_units`): under the "refuse" overage
policy, or when overage needs the client's approval, nothing can be booked beyond the balance (plus
the units the client approved, delivery.approvals) minus what is already booked; under "bill" the
caller can show the price of the excess first (`overage_quote`). Held, a booking becomes a
delivered work item in the ledger through `services.record_delivery`, in the same transaction.

Lock order, the ledger's first: the retainer row, then the member's schedule row (which
serialises bookings with one member, so the daily cap holds), then the booking row. The database
has the last word on time: an exclusion constraint refuses two active bookings of one member
whose times (with buffers) overlap, however they were written.

Every refusal is a BookingError naming the form field it belongs to, raised before anything is
written (the transaction rolls back). Emails go through the outbox with an iCalendar invitation;
CalDAV writes happen in a task after commit (delivery.caldav_sync), never in the request.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, Sum
from django.template.defaultfilters import pluralize
from django.utils import timezone

from clients.models import Client, Contact, Retainer, RetainerTerms
from delivery import ics, services, slots
from delivery.models import (
    Booking,
    BookingPolicy,
    BusyBlock,
    CalendarConnection,
    DateOverride,
    LedgerEntry,
    OverageApproval,
    Period,
    Schedule,
    SessionType,
    SessionTypeRetainer,
    WeeklyHours,
    WorkItem,
)
from delivery.periods import index_containing, period_bounds
from retainers.models import Membership, User, Workspace
from retainers.money import format_money, multiply
from retainers.outbox import calendar_invitation, queue_email

log = logging.getLogger(__name__)

ZERO = Decimal("0.00")
ACTIVE = Booking.Status.BOOKED
MAX_RANGE_DAYS = 62  # one request computes at most about two months of slots


class BookingError(Exception):
    """A booking request that cannot be honoured; `field` names the form field it belongs to."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class RetainerEnds(BookingError):
    """A day after the retainer's last: nothing can be booked on it then."""

    def __init__(self, last_on: date) -> None:
        super().__init__(f"This retainer ends on {last_on:%d %b %Y}: choose an earlier day.", field="starts_at")
        self.last_on = last_on


# --- Rules and policies ------------------------------------------------------------------------


def policy_for(retainer: Retainer) -> BookingPolicy:
    """The retainer's booking policy: its saved row, or the defaults (not saved)."""
    policy = BookingPolicy.objects.filter(workspace_id=retainer.workspace_id, retainer=retainer).first()
    return policy or BookingPolicy(workspace_id=retainer.workspace_id, retainer=retainer)


def schedule_for(workspace: Workspace, member: User) -> Schedule | None:
    return Schedule.objects.for_workspace(workspace).filter(member=member).first()


def member_zone(workspace: Workspace, schedule: Schedule | None) -> ZoneInfo:
    return ZoneInfo(schedule.zone_name(workspace.timezone) if schedule else workspace.timezone)


def rules_for(session_type: SessionType, schedule: Schedule, workspace: Workspace) -> slots.Rules:
    """The slot rules of one session type with its member's schedule (two queries: hours, overrides)."""
    weekly: dict[int, list[slots.Range]] = defaultdict(list)
    for hours in WeeklyHours.objects.filter(workspace=workspace, schedule=schedule):
        weekly[hours.weekday].append((hours.starts, hours.ends))
    overrides: dict[date, list[slots.Range]] = defaultdict(list)
    for override in DateOverride.objects.filter(workspace=workspace, schedule=schedule):
        overrides[override.on]  # a row without times: the day exists, with no hours
        if override.starts is not None and override.ends is not None:  # both or neither (a check constraint)
            overrides[override.on].append((override.starts, override.ends))
    return slots.Rules(
        zone=member_zone(workspace, schedule),
        weekly=dict(weekly),
        overrides=dict(overrides),
        duration=timedelta(minutes=session_type.duration_minutes),
        step=timedelta(minutes=schedule.step_minutes),
        buffer_before=timedelta(minutes=schedule.buffer_before_minutes),
        buffer_after=timedelta(minutes=schedule.buffer_after_minutes),
        min_notice=timedelta(minutes=schedule.min_notice_minutes),
        horizon_days=schedule.horizon_days,
        daily_cap=schedule.daily_cap,
    )


def busy_for(
    *, workspace: Workspace, member: User, rules: slots.Rules, first: date, last: date, exclude: Booking | None = None
) -> tuple[slots.Busy, dict[date, int]]:
    """What is busy for the member on the local days [first, last] (two queries): their active bookings
    (with the buffers stored on them) and the busy blocks read from their calendar; and how many
    bookings each day already has, for the daily cap."""
    margin = rules.buffer_before + rules.buffer_after + rules.duration + timedelta(days=1)
    start = datetime.combine(first, time(0), tzinfo=rules.zone) - margin
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=rules.zone) + margin
    bookings = Booking.objects.filter(
        workspace=workspace, member=member, status=ACTIVE, blocked_until__gt=start, blocked_from__lt=end
    )
    if exclude is not None:
        bookings = bookings.exclude(pk=exclude.pk)
    intervals = []
    per_day: dict[date, int] = defaultdict(int)
    for blocked_from, blocked_until, starts_at in bookings.values_list("blocked_from", "blocked_until", "starts_at"):
        intervals.append((blocked_from, blocked_until))
        per_day[slots.local_day(starts_at, rules.zone)] += 1
    intervals += BusyBlock.objects.filter(
        workspace=workspace, member=member, ends_at__gt=start, starts_at__lt=end
    ).values_list("starts_at", "ends_at")
    return slots.Busy(intervals), per_day


def available_starts(
    *,
    session_type: SessionType,
    first: date,
    last: date,
    now: datetime | None = None,
    exclude: Booking | None = None,
) -> list[datetime]:
    """The free start times (UTC) of a session type on the member's local days [first, last],
    clamped to today..the horizon and to two months per call. Reads stored rows only: a calendar
    that is slow or down never slows this down. `exclude`: a booking being moved, whose own time
    counts as free."""
    now = now or timezone.now()
    workspace = session_type.workspace
    return _available_starts(
        session_type, schedule_for(workspace, session_type.member), first=first, last=last, now=now, exclude=exclude
    )


def _available_starts(
    session_type: SessionType,
    schedule: Schedule | None,
    *,
    first: date,
    last: date,
    now: datetime,
    exclude: Booking | None,
) -> list[datetime]:
    workspace = session_type.workspace
    if schedule is None or not session_type.active:
        return []
    if not Membership.objects.filter(workspace=workspace, user_id=session_type.member_id).exists():
        return []  # they left the team: their session types stay, unbookable
    rules = rules_for(session_type, schedule, workspace)
    days = slots.bookable_days(rules, now=now, first=first, last=min(last, first + timedelta(MAX_RANGE_DAYS - 1)))
    if days is None:
        return []
    busy, per_day = busy_for(
        workspace=workspace, member=session_type.member, rules=rules, first=days[0], last=days[1], exclude=exclude
    )
    return slots.free_starts(rules, now=now, first=days[0], last=days[1], busy=busy, booked_per_day=per_day)


# --- Which session types and retainers go together ------------------------------------------------


def draws_from(session_type: SessionType, retainer: Retainer) -> bool:
    """Whether a booking of this type may draw on this retainer (units, same workspace, chosen)."""
    if session_type.workspace_id != retainer.workspace_id or retainer.model == RetainerTerms.Model.DELIVERABLES:
        return False
    if session_type.all_retainers:
        return True
    return SessionTypeRetainer.objects.filter(
        workspace_id=retainer.workspace_id, session_type=session_type, retainer=retainer
    ).exists()


def bookable_for_client(client: Client) -> list[tuple[SessionType, list[Retainer]]]:
    """The active session types a client can book, each with the client's active retainers it draws on.
    Three queries, for the portal's booking page."""
    workspace_id = client.workspace_id
    retainers = list(
        Retainer.objects.filter(workspace_id=workspace_id, client=client, status=Retainer.Status.ACTIVE)
        .exclude(model=RetainerTerms.Model.DELIVERABLES)
        # One choice per agreement: an accepted renewal's next term waits while the term it renews is live.
        .exclude(previous_term__status__in=[Retainer.Status.ACTIVE, Retainer.Status.PAUSED])
        .select_related("workspace")
        .order_by("starts_on", "pk")
    )
    if not retainers:
        return []
    types = list(
        SessionType.objects.filter(
            workspace_id=workspace_id, active=True, member__memberships__workspace_id=workspace_id
        )
        .select_related("member", "workspace")
        .order_by("name", "pk")
    )
    links: dict[int, set[int]] = defaultdict(set)
    for session_type_id, retainer_id in SessionTypeRetainer.objects.filter(
        workspace_id=workspace_id, retainer__in=retainers
    ).values_list("session_type_id", "retainer_id"):
        links[session_type_id].add(retainer_id)
    found = []
    for session_type in types:
        chosen = [r for r in retainers if session_type.all_retainers or r.pk in links[session_type.pk]]
        if chosen:
            found.append((session_type, chosen))
    return found


def can_book(client: Client) -> bool:
    """Whether `bookable_for_client` has anything for the client, in one query (for the portal overview)."""
    retainers = (
        Retainer.objects.filter(workspace_id=client.workspace_id, client=client, status=Retainer.Status.ACTIVE)
        .exclude(model=RetainerTerms.Model.DELIVERABLES)
        .exclude(previous_term__status__in=[Retainer.Status.ACTIVE, Retainer.Status.PAUSED])
        .values("pk")
    )
    linked = SessionTypeRetainer.objects.filter(
        workspace_id=client.workspace_id, session_type=OuterRef("pk"), retainer__in=retainers
    )
    return (
        SessionType.objects.filter(
            workspace_id=client.workspace_id, active=True, member__memberships__workspace_id=client.workspace_id
        )
        .filter((Q(all_retainers=True) & Exists(retainers)) | Exists(linked))
        .exists()
    )


# --- Units: booked, bookable, overage --------------------------------------------------------------


def _day_start(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


def booked_units(
    retainer: Retainer,
    *,
    start_on: date,
    end_on: date,
    exclude: Booking | None = None,
    zone: ZoneInfo | None = None,
) -> Decimal:
    """Units reserved by the retainer's active bookings on the workspace's days [start_on, end_on)
    (`zone`: the workspace's, when the caller has it at hand)."""
    zone = zone or retainer.workspace.tzinfo
    bookings = Booking.objects.reserving(retainer, start_on=start_on, end_on=end_on, zone=zone)
    if exclude is not None:
        bookings = bookings.exclude(pk=exclude.pk)
    return bookings.aggregate(units=Sum("units", default=ZERO))["units"]


def period_booked_units(period: Period) -> Decimal:
    """The "booked" figure of a period, shown apart from used and remaining."""
    return booked_units(period.retainer, start_on=period.start_on, end_on=period.end_on)


def open_booked_units(retainers: Iterable[Retainer]) -> dict[int, Decimal]:
    """The booked units of each retainer's open period, in two queries (for lists and overviews)."""
    retainers = list(retainers)
    if not retainers:
        return {}
    periods = list(Period.objects.filter(retainer__in=retainers, status=Period.Status.OPEN).select_related("workspace"))
    totals = {r.pk: ZERO for r in retainers}
    if periods:
        totals.update(booked_in_periods(periods, zone=periods[0].workspace.tzinfo))
    return totals


def booked_in_periods(periods: Iterable[Period], *, zone: ZoneInfo) -> dict[int, Decimal]:
    """The booked units of each period, by retainer id, in one query: periods of one workspace (`zone`
    is its time zone), at most one per retainer. A period with nothing booked counts zero."""
    periods = list(periods)
    condition = Q()
    for period in periods:
        condition |= Q(
            retainer_id=period.retainer_id,
            starts_at__gte=_day_start(period.start_on, zone),
            starts_at__lt=_day_start(period.end_on, zone),
        )
    totals = {period.retainer_id: ZERO for period in periods}
    if periods:
        for row in (
            Booking.objects.filter(condition, status=ACTIVE)
            .order_by()
            .values("retainer_id")
            .annotate(units=Sum("units", default=ZERO))
        ):
            totals[row["retainer_id"]] = row["units"]
    return totals


@dataclass(frozen=True)
class Allowance:
    """What is left to book in the period holding a day: the balance (or, for a period not open yet,
    its allotment), the units already booked in it, and the difference."""

    start_on: date
    end_on: date
    balance: Decimal
    booked: Decimal
    overage_rate_minor: int = 0  # the period's price of a unit beyond it
    currency: str = ""

    @property
    def bookable(self) -> Decimal:
        return self.balance - self.booked


def _continues_to(retainer: Retainer, period: Period, day: date) -> bool:
    if day < period.end_on:
        return True
    if retainer.cancel_at_period_end:
        return False
    return day < retainer.term_ends_on or retainer.auto_renew


_LOOK_UP = Period()  # "fetch the open period": `None` means the retainer has none


def allowance(
    retainer: Retainer, *, on: date, exclude: Booking | None = None, open_period: Period | None = _LOOK_UP
) -> Allowance:
    """The units left to book in the period that holds `on` (a workspace date), for a live retainer.

    The open period counts its ledger balance; a later one (booked ahead) counts its allotment only,
    since what rolls into it is not known yet. `open_period`: the retainer's, when the caller has it.
    """
    period = (
        Period.objects.filter(retainer=retainer, status=Period.Status.OPEN).first()
        if open_period is _LOOK_UP
        else open_period
    )
    if period is None or not _continues_to(retainer, period, on):
        last = (period.end_on if period and retainer.cancel_at_period_end else retainer.term_ends_on) - timedelta(1)
        raise RetainerEnds(last)
    if on < period.start_on:
        raise BookingError("That day is in a closed period.", field="starts_at")
    if on < period.end_on:
        start_on, end_on = period.start_on, period.end_on
        balance = LedgerEntry.objects.filter(period=period).aggregate(b=Sum("quantity", default=ZERO))["b"]
        if retainer.limits_overage:  # units the client approved beyond the balance (delivery.approvals)
            balance += OverageApproval.objects.filter(
                workspace_id=retainer.workspace_id, period=period, status=OverageApproval.Status.APPROVED
            ).aggregate(q=Sum("quantity", default=ZERO))["q"]
        rate, currency = period.overage_rate_minor, period.currency
    else:
        index = index_containing(retainer.anchor_on, retainer.cadence, on)
        start_on, end_on = period_bounds(retainer.anchor_on, retainer.cadence, index)
        balance = retainer.units_per_period
        rate, currency = retainer.overage_rate_minor, retainer.currency
    booked = booked_units(retainer, start_on=start_on, end_on=end_on, exclude=exclude)
    return Allowance(
        start_on=start_on, end_on=end_on, balance=balance, booked=booked, overage_rate_minor=rate, currency=currency
    )


@dataclass(frozen=True)
class OverageQuote:
    """The part of a booking beyond what is left, and its price on the next invoice."""

    units: Decimal
    amount_minor: int
    currency: str


def overage_quote(retainer: Retainer, *, units: Decimal, on: date) -> OverageQuote | None:
    """Under the "bill" policy, what booking `units` on `on` would add as overage; None when it fits
    (or the retainer does not bill overage)."""
    if not _bills_overage(retainer):
        return None
    return _quote(units, allowance(retainer, on=on))


def _bills_overage(retainer: Retainer) -> bool:
    """Beyond the balance a booking is billed (not refused, nor waiting for the client's approval)."""
    return retainer.overage_policy == RetainerTerms.Overage.BILL and not retainer.overage_needs_approval


def _quote(units: Decimal, left: Allowance) -> OverageQuote | None:
    over = min(units, max(units - max(left.bookable, ZERO), ZERO))
    if over <= 0:
        return None
    return OverageQuote(units=over, amount_minor=multiply(left.overage_rate_minor, over), currency=left.currency)


# --- What a client may book: the offers of the booking pages ------------------------------------------


@dataclass(frozen=True)
class Offer:
    """A start time that can be booked on a retainer, with what its excess would cost under "bill"."""

    starts_at: datetime
    ends_at: datetime
    overage: OverageQuote | None = None


@dataclass(frozen=True)
class Offers:
    """The bookable times of one session type on one retainer, and why some times are not offered."""

    units: Decimal
    units_text: str  # "1 hour", "2 sessions": what one booking draws
    times: list[Offer]
    notes: list[str]


def offers(
    *,
    session_type: SessionType,
    retainer: Retainer,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
    exclude: Booking | None = None,
) -> Offers:
    """The times in [start, end) (any reader's zone) that `retainer` can book with `session_type`: free in
    the member's calendar, within the retainer's term, and, under "refuse", within what is left to book
    in the period each falls in (the balance less what is booked; a later period: its allotment).
    Under "bill" each carries the price of what would go beyond. `exclude`: the booking being moved.

    The same checks `book` makes, read ahead: a few queries per period the range touches."""
    now = now or timezone.now()
    workspace = retainer.workspace
    schedule = schedule_for(workspace, session_type.member)
    zone = member_zone(workspace, schedule)
    units = session_type.units_for(retainer)
    starts = [
        moment
        for moment in _available_starts(
            session_type,
            schedule,
            first=slots.local_day(start, zone),
            last=slots.local_day(end - timedelta(microseconds=1), zone),
            now=now,
            exclude=exclude,
        )
        if start <= moment < end
    ]
    period = Period.objects.filter(retainer=retainer, status=Period.Status.OPEN).first() if starts else None
    duration = timedelta(minutes=session_type.duration_minutes)
    times: list[Offer] = []
    notes: list[str] = []
    left: Allowance | None = None
    for moment in starts:
        day = _workspace_day(moment, workspace)
        if left is None or not left.start_on <= day < left.end_on:
            try:
                left = allowance(retainer, on=day, exclude=exclude, open_period=period)
            except RetainerEnds as ends:
                notes.append(f"This retainer ends on {_day(ends.last_on)}: later times cannot be booked on it.")
                break
            if retainer.limits_overage and units > left.bookable:
                notes.append(_full_note(retainer, left))
        if retainer.limits_overage and units > left.bookable:
            continue
        quote = _quote(units, left) if _bills_overage(retainer) else None
        times.append(Offer(starts_at=moment, ends_at=moment + duration, overage=quote))
    return Offers(units=units, units_text=f"{_n(units)} {_unit_word(retainer, units)}", times=times, notes=notes)


def _full_note(retainer: Retainer, left: Allowance) -> str:
    last = left.end_on - timedelta(days=1)
    word = retainer.get_unit_display().lower()
    if left.booked > 0:
        why = f"what is left is booked already ({_n(left.booked)} {_unit_word(retainer, left.booked)})"
    else:
        why = f"its {word} are used up"
    return f"Nothing more can be booked from {_day(left.start_on, year=False)} to {_day(last)}: {why}."


def _day(day: date, *, year: bool = True) -> str:
    return f"{day.day} {day:%b %Y}" if year else f"{day.day} {day:%b}"


def bookable_now(retainer: Retainer, *, on: date) -> Allowance | None:
    """What is left to book in the period holding `on`, or None past the retainer's end."""
    try:
        return allowance(retainer, on=on)
    except BookingError:
        return None


def describe_left(retainer: Retainer, *, on: date, locale: str = "en_US") -> str:
    """What is left to book in the period holding `on`, in a sentence for the person booking ("" past
    the retainer's end): "6 hours left to book until 31 March (2 booked already)." and, beyond it,
    what the retainer's overage policy does."""
    left = bookable_now(retainer, on=on)
    if left is None:
        return ""
    shown = max(left.bookable, ZERO)
    last = left.end_on - timedelta(days=1)
    text = f"{_n(shown)} {_unit_word(retainer, shown)} left to book until {last.day} {last:%B}"
    if left.booked > 0:
        text += f" ({_n(left.booked)} booked already)"
    one = _unit_word(retainer, Decimal(1))
    if retainer.overage_needs_approval:
        return f"{text}. Beyond that, extra {_unit_word(retainer, Decimal(2))} need your approval first."
    if retainer.overage_policy == RetainerTerms.Overage.BILL:
        price = format_money(left.overage_rate_minor, left.currency, locale)
        return f"{text}. Beyond that, each extra {one} is billed at {price} on your next invoice."
    if retainer.overage_policy == RetainerTerms.Overage.CARRY:
        return f"{text}. Beyond that, what you use is taken from your next period."
    return f"{text}."


def describe_overage(quote: OverageQuote, retainer: Retainer, *, locale: str = "en_US") -> str:
    """The price of a booking's excess, said before booking (the "bill" policy)."""
    price = format_money(quote.amount_minor, quote.currency, locale)
    return (
        f"This session goes beyond what is left in its period: {_n(quote.units)} "
        f"{_unit_word(retainer, quote.units)} will be billed at {price} on your next invoice."
    )


# --- What moving or cancelling does ---------------------------------------------------------------------


@dataclass(frozen=True)
class CancelOutcome:
    """What cancelling a booking now would do, said before the person confirms."""

    late: bool
    keeps_units: bool
    message: str


def cancellation_outcome(booking: Booking, *, now: datetime, policy: BookingPolicy | None = None) -> CancelOutcome:
    """What a contact's cancellation would do now: free before the retainer's window, and inside it
    the policy decides whether the units are used (delivery.booking.cancel does the same)."""
    policy = policy or policy_for(booking.retainer)
    late = inside_window(booking, now=now, policy=policy)
    units = f"{_n(booking.units)} {_unit_word(booking.retainer, booking.units)}"
    if not late:
        return CancelOutcome(False, False, f"Cancelling now is free: the {units} go back to your balance.")
    window = f"less than {policy.cancel_window_hours} hours before the session"
    if policy.late_cancel == BookingPolicy.LateCancel.KEEP:
        return CancelOutcome(
            True,
            True,
            f"It is {window}, so this is a late cancellation: the {units} count as used, as if the session took place.",
        )
    return CancelOutcome(
        True, False, f"It is {window}, so this is a late cancellation, but the {units} go back to your balance."
    )


def move_deadline(booking: Booking, *, policy: BookingPolicy | None = None) -> datetime:
    """Until when a contact may move or cancel the booking freely."""
    policy = policy or policy_for(booking.retainer)
    return booking.starts_at - timedelta(hours=policy.cancel_window_hours)


def cancellation_terms(policy: BookingPolicy, retainer: Retainer) -> str:
    """The retainer's rule for moving and cancelling, in a sentence for the person booking."""
    word = retainer.get_unit_display().lower()
    later = (
        f"a cancellation counts as used {word}"
        if policy.late_cancel == BookingPolicy.LateCancel.KEEP
        else f"a cancellation still returns the {word}"
    )
    return (
        f"You can move or cancel a session until {policy.cancel_window_hours} hours before it starts; "
        f"after that, it can no longer be moved and {later}."
    )


def _unit_word(retainer: Retainer, quantity: Decimal) -> str:
    word = retainer.get_unit_display().lower()
    return word[:-1] if quantity == 1 else word


def _check_units(retainer: Retainer, units: Decimal, *, on: date, exclude: Booking | None = None) -> None:
    if not retainer.limits_overage:
        allowance(retainer, on=on, exclude=exclude)  # still refuses days after the retainer ends
        return
    left = allowance(retainer, on=on, exclude=exclude)
    if units > left.bookable:
        shown = max(left.bookable, ZERO)
        booked = f" ({_n(left.booked)} already booked)" if left.booked > 0 else ""
        raise BookingError(
            f"This session needs {_n(units)} {_unit_word(retainer, units)}; only {_n(shown)} "
            f"{_unit_word(retainer, shown)} can still be booked in that period{booked}.",
            field="starts_at",
        )


def _n(quantity: Decimal) -> str:
    return f"{quantity:.0f}" if quantity == quantity.to_integral_value() else f"{quantity:.2f}"


# --- Checks shared by booking and rescheduling ------------------------------------------------------


REFUSALS = {
    slots.Refusal.PAST: "That time has passed. Choose a later one.",
    slots.Refusal.OUTSIDE: "That time is outside the available hours. Choose one of the times offered.",
    slots.Refusal.FULL: "That day is fully booked. Choose another day.",
    slots.Refusal.TAKEN: "That time was just taken. Choose another one.",
}


def _refusal_message(reason: slots.Refusal, rules: slots.Rules) -> str:
    if reason == slots.Refusal.NOTICE:
        minutes = round(rules.min_notice.total_seconds() / 60)
        count, noun = (round(minutes / 60), "hour") if minutes >= 60 else (minutes, "minute")
        possessive = pluralize(count, "'s,s'")  # 1 hour's notice, 12 hours' notice
        notice = f"{count} {noun}{possessive}"
        return f"Sessions need at least {notice} notice. Choose a later time."
    if reason == slots.Refusal.HORIZON:
        days = f"{rules.horizon_days} day{pluralize(rules.horizon_days)}"
        return f"Sessions can be booked at most {days} ahead. Choose an earlier day."
    return REFUSALS[reason]


def _lock_schedule(workspace: Workspace, member: User) -> Schedule:
    schedule = Schedule.objects.select_for_update().filter(workspace=workspace, member=member).first()
    if schedule is None or not Membership.objects.filter(workspace=workspace, user=member).exists():
        raise BookingError(f"{member.get_full_name()} is not taking bookings.", field="session_type")
    return schedule


def _check_start(
    session_type: SessionType,
    schedule: Schedule,
    starts_at: datetime,
    *,
    now: datetime,
    exclude: Booking | None = None,
) -> slots.Rules:
    workspace = session_type.workspace
    rules = rules_for(session_type, schedule, workspace)
    day = slots.local_day(starts_at, rules.zone)
    busy, per_day = busy_for(
        workspace=workspace, member=session_type.member, rules=rules, first=day, last=day, exclude=exclude
    )
    reason = slots.refusal(rules, starts_at, now=now, busy=busy, booked_per_day=per_day)
    if reason is not None:
        raise BookingError(_refusal_message(reason, rules), field="starts_at")
    return rules


def _check_retainer(retainer: Retainer) -> None:
    if retainer.status == Retainer.Status.PAUSED:
        raise BookingError("This retainer is paused: sessions cannot be booked on it now.", field="retainer")
    if retainer.status == Retainer.Status.ENDED:
        raise BookingError("This retainer has ended.", field="retainer")


def _aware(starts_at: datetime | None) -> datetime:
    if starts_at is None or timezone.is_naive(starts_at):
        raise BookingError("Choose a time.", field="starts_at")
    return starts_at.replace(microsecond=0)


def _save_slot(booking: Booking, *, update_fields: list[str] | None = None) -> None:
    """Write the booking's time; the exclusion constraint may still refuse it (someone else's commit)."""
    try:
        with transaction.atomic():  # a savepoint, so the error can be turned into a message
            booking.save(update_fields=update_fields)
    except IntegrityError as exc:
        if "booking_no_overlap" in str(exc):
            raise BookingError(REFUSALS[slots.Refusal.TAKEN], field="starts_at") from exc
        raise


def _lock(booking: Booking) -> tuple[Retainer, Booking]:
    retainer = Retainer.objects.select_for_update().get(pk=booking.retainer_id)
    booking = (
        Booking.objects.select_for_update(of=("self",))
        .select_related("session_type", "member", "contact", "client", "retainer", "workspace")
        .get(pk=booking.pk)
    )
    return retainer, booking


def _check_active(booking: Booking) -> None:
    if booking.status != ACTIVE:
        raise BookingError(f"This booking is already {booking.get_status_display().lower()}.")


def _check_contact(contact: Contact, client_id: int) -> None:
    if contact.client_id != client_id:
        raise BookingError("That retainer belongs to another client.", field="retainer")


def _workspace_day(moment: datetime, workspace: Workspace) -> date:
    return timezone.localdate(moment, timezone=workspace.tzinfo)


# --- The workflows ----------------------------------------------------------------------------------


@transaction.atomic
def book(
    *,
    session_type: SessionType,
    retainer: Retainer,
    starts_at: datetime | None,
    actor: User,
    contact: Contact | None = None,
    attendee: Contact | None = None,
    now: datetime | None = None,
) -> Booking:
    """Book a session. `contact`: a client contact books for themselves (from the portal); without it,
    `actor` is a member booking on the client's behalf, for `attendee` if given. Writes the booking,
    queues the confirmations and, after commit, the calendar write; or raises BookingError and
    writes nothing."""
    now = now or timezone.now()
    starts_at = _aware(starts_at)
    retainer = Retainer.objects.select_for_update().select_related("workspace").get(pk=retainer.pk)
    session_type = SessionType.objects.select_related("workspace", "member").get(pk=session_type.pk)
    workspace = retainer.workspace
    if contact is not None:
        _check_contact(contact, retainer.client_id)
        attendee = contact
    elif not Membership.objects.filter(workspace=workspace, user=actor).exists():
        raise BookingError("Only the client's contacts and the team can book.")
    if attendee is not None:
        _check_contact(attendee, retainer.client_id)
    if not session_type.active:
        raise BookingError("This kind of session can no longer be booked.", field="session_type")
    if not draws_from(session_type, retainer):
        raise BookingError("This kind of session cannot be booked on that retainer.", field="retainer")
    _check_retainer(retainer)
    schedule = _lock_schedule(workspace, session_type.member)
    rules = _check_start(session_type, schedule, starts_at, now=now)
    units = session_type.units_for(retainer)
    _check_units(retainer, units, on=_workspace_day(starts_at, workspace))
    ends_at = starts_at + rules.duration
    booking = Booking(
        workspace=workspace,
        session_type=session_type,
        retainer=retainer,
        client_id=retainer.client_id,
        contact=attendee,
        member=session_type.member,
        starts_at=starts_at,
        ends_at=ends_at,
        blocked_from=starts_at - rules.buffer_before,
        blocked_until=ends_at + rules.buffer_after,
        units=units,
        unit=retainer.unit,
        uid=f"{uuid.uuid4()}@{_uid_domain()}",
        booked_by=actor,
        booked_at=now,
    )
    _save_slot(booking)
    _notify(booking, kind="confirmed", zone=rules.zone)
    _push_after_commit(booking)
    return booking


@transaction.atomic
def reschedule(
    *,
    booking: Booking,
    starts_at: datetime | None,
    actor: User,
    contact: Contact | None = None,
    now: datetime | None = None,
) -> Booking:
    """Move a booking to another free time: same UID, next SEQUENCE. A contact may do so until the
    retainer's cancellation window; a member at any time."""
    now = now or timezone.now()
    starts_at = _aware(starts_at)
    retainer, booking = _lock(booking)
    _check_active(booking)
    if contact is not None:
        _check_contact(contact, booking.client_id)
        _check_window(booking, now=now, action="reschedule")
    _check_retainer(retainer)
    if starts_at == booking.starts_at:
        return booking
    schedule = _lock_schedule(booking.workspace, booking.member)
    rules = _check_start(booking.session_type, schedule, starts_at, now=now, exclude=booking)
    _check_units(retainer, booking.units, on=_workspace_day(starts_at, booking.workspace), exclude=booking)
    booking.starts_at, booking.ends_at = starts_at, starts_at + rules.duration
    booking.blocked_from, booking.blocked_until = starts_at - rules.buffer_before, booking.ends_at + rules.buffer_after
    booking.sequence += 1
    booking.changed_by, booking.changed_at = actor, now
    _save_slot(
        booking,
        update_fields=["starts_at", "ends_at", "blocked_from", "blocked_until", "sequence", "changed_by", "changed_at"],
    )
    _notify(booking, kind="changed", zone=rules.zone)
    _push_after_commit(booking)
    return booking


def inside_window(booking: Booking, *, now: datetime, policy: BookingPolicy | None = None) -> bool:
    """Whether it is now too late to move or cancel the booking freely (the retainer's window)."""
    policy = policy or policy_for(booking.retainer)
    return now >= booking.starts_at - timedelta(hours=policy.cancel_window_hours)


def _check_window(booking: Booking, *, now: datetime, action: str) -> None:
    if now >= booking.starts_at:
        raise BookingError(f"This session has started: it can no longer {action.replace('reschedule', 'move')}.")
    if action == "reschedule" and inside_window(booking, now=now):
        policy = policy_for(booking.retainer)
        raise BookingError(
            f"Sessions can be moved until {policy.cancel_window_hours} hour{pluralize(policy.cancel_window_hours)} "
            "before they start. "
            f"Write to {booking.workspace.name} to change this one.",
            field="starts_at",
        )


@transaction.atomic
def cancel(
    *,
    booking: Booking,
    actor: User,
    contact: Contact | None = None,
    late: bool = False,
    reason: str = "",
    now: datetime | None = None,
) -> Booking:
    """Cancel a booking. A contact cancelling inside the cancellation window cancels late, and the
    retainer's policy decides whether the units are used (a work item) or returned; a member cancels
    freely, or as a late cancellation when asked (`late`). Emails METHOD:CANCEL."""
    now = now or timezone.now()
    retainer, booking = _lock(booking)
    _check_active(booking)
    policy = policy_for(retainer)
    if contact is not None:
        _check_contact(contact, booking.client_id)
        if now >= booking.starts_at:
            raise BookingError("This session has started: it can no longer be cancelled.")
        late = inside_window(booking, now=now, policy=policy)
    booking.status = Booking.Status.LATE_CANCELLED if late else Booking.Status.CANCELLED
    if late and policy.late_cancel == BookingPolicy.LateCancel.KEEP:
        booking.work_item = _consume(
            booking,
            retainer,
            actor=actor,
            description=f"Late cancellation: {booking.session_type.name}",
            preferred=_workspace_day(now, booking.workspace),
        )
    booking.sequence += 1
    booking.cancelled_by, booking.cancelled_at, booking.cancel_reason = actor, now, reason.strip()[:500]
    booking.save(update_fields=["status", "work_item", "sequence", "cancelled_by", "cancelled_at", "cancel_reason"])
    _notify(
        booking, kind="cancelled", zone=member_zone(booking.workspace, schedule_for(booking.workspace, booking.member))
    )
    _push_after_commit(booking)
    return booking


@transaction.atomic
def mark_held(*, booking: Booking, actor: User, now: datetime | None = None) -> Booking:
    """The session took place: its units become a delivered work item in the ledger, dated on the
    session's day, in this same transaction (so a booking is never held without its entry)."""
    now = now or timezone.now()
    retainer, booking = _lock(booking)
    _check_active(booking)
    _check_started(booking, now=now)
    booking.work_item = _consume(
        booking,
        retainer,
        actor=actor,
        description=booking.session_type.name,
        preferred=_workspace_day(booking.starts_at, booking.workspace),
        strict=True,
    )
    booking.status = Booking.Status.HELD
    booking.settled_by, booking.settled_at = actor, now
    booking.save(update_fields=["status", "work_item", "settled_by", "settled_at"])
    return booking


@transaction.atomic
def mark_no_show(*, booking: Booking, actor: User, now: datetime | None = None) -> Booking:
    """The client did not come: the retainer's policy decides whether the units are used."""
    now = now or timezone.now()
    retainer, booking = _lock(booking)
    _check_active(booking)
    _check_started(booking, now=now)
    if policy_for(retainer).no_show == BookingPolicy.NoShow.CONSUME:
        booking.work_item = _consume(
            booking,
            retainer,
            actor=actor,
            description=f"No-show: {booking.session_type.name}",
            preferred=_workspace_day(booking.starts_at, booking.workspace),
        )
    booking.status = Booking.Status.NO_SHOW
    booking.settled_by, booking.settled_at = actor, now
    booking.save(update_fields=["status", "work_item", "settled_by", "settled_at"])
    return booking


def _check_started(booking: Booking, *, now: datetime) -> None:
    if now < booking.starts_at:
        raise BookingError("This session has not started yet.")


def _consume(
    booking: Booking, retainer: Retainer, *, actor: User, description: str, preferred: date, strict: bool = False
) -> WorkItem:
    """Draw the booking's units through the ledger's own `record_delivery`. Dated `preferred` when it is
    in the open period; otherwise (not `strict`: a late cancellation or no-show settled after the
    period rolled) on the open period's nearest day."""
    period = Period.objects.filter(retainer=retainer, status=Period.Status.OPEN).first()
    day = preferred
    if period is not None and not strict and not period.contains(day):
        day = min(max(day, period.start_on), period.end_on - timedelta(days=1))
    try:
        return services.record_delivery(
            retainer=retainer,
            delivered_on=day,
            quantity=booking.units,
            description=description,
            actor=actor,
            delivered_by=booking.member,
            confirm_large=True,
            reservation=booking,  # it draws on what it reserved itself
        )
    except services.DeliveryError as exc:
        raise BookingError(str(exc)) from exc


# --- Emails and calendars ----------------------------------------------------------------------------


def _uid_domain() -> str:
    return urlsplit(settings.SITE_URL).hostname or "retainers.localhost"


def describe_when(booking: Booking, zone: ZoneInfo) -> str:
    """ "Tuesday 10 March 2026, 14:00–15:00 (Europe/London)": a booking's time for one reader."""
    return describe_span(booking.starts_at, booking.ends_at, zone)


def describe_span(starts_at: datetime, ends_at: datetime, zone: ZoneInfo) -> str:
    start, end = starts_at.astimezone(zone), ends_at.astimezone(zone)
    return f"{start:%A} {start.day} {start:%B %Y, %H:%M}–{end:%H:%M} ({zone.key})"


def _notify(booking: Booking, *, kind: str, zone: ZoneInfo) -> None:
    """Queue the email of a confirmation, change or cancellation, with the invitation, to the contact
    (if any) and the member. Keyed by booking, sequence and recipient: queued once."""
    method = ics.CANCEL if kind == "cancelled" else ics.REQUEST
    invite = calendar_invitation(ics.invitation(booking, zone=zone, method=method), method=method)
    workspace = booking.workspace
    base = {
        "booking": booking,
        "workspace": workspace,
        "session_type": booking.session_type,
        "member_name": booking.member.get_full_name(),
        "client": booking.client,
        "units": _n(booking.units),
        "unit": _unit_word(booking.retainer, booking.units),
        "late": booking.status == Booking.Status.LATE_CANCELLED,
        "kept": booking.work_item_id is not None,
    }
    recipients = []
    if booking.contact is not None:
        contact_zone = ZoneInfo(booking.contact.zone_name(workspace.timezone))
        recipients.append(("contact", booking.contact.email, booking.contact.name, contact_zone, True))
    recipients.append(("member", booking.member.email, booking.member.get_short_name(), zone, False))
    for who, address, name, reader_zone, for_client in recipients:
        queue_email(
            to=address,
            template=f"booking_{kind}",
            context={
                **base,
                "recipient_name": name,
                "for_client": for_client,
                "when": describe_when(booking, reader_zone),
            },
            workspace=workspace,
            key=f"booking-{booking.pk}-{kind}-{booking.sequence}-{who}",
            client_id=booking.client_id if for_client else None,
            reply_to=booking.member.email if for_client else "",  # without a thread address: the host
            attachments=[invite],
        )


def _push_after_commit(booking: Booking) -> None:
    """Write the change to the member's CalDAV calendar in a task, once committed (the beat sync also
    catches any write this loses)."""
    connection_id = (
        CalendarConnection.objects.filter(workspace_id=booking.workspace_id, member_id=booking.member_id)
        .values_list("pk", flat=True)
        .first()
    )
    if connection_id is None:
        return

    def enqueue() -> None:
        from delivery import tasks

        try:
            tasks.push_calendar.delay(connection_id)
        except Exception:  # broker down: the calendar sync on beat writes it later
            log.warning("could not enqueue the calendar write of booking %s", booking.pk, exc_info=True)

    transaction.on_commit(enqueue)
