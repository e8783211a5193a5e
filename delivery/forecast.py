"""Where a period is heading, as the client portal tells it: the forecast at the pace so far, its
dotted line on the burn-down, and the rolled-in units with when they expire.

A delivery read-model (over periods, the ledger and delivery's burn-down chart); the portal
shows it, the statement names periods with it. The sentences are built here, in words for
people: hours with two decimals, sessions whole (retainers.units), days as “the 18th”.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TypedDict

from django.db.models import OuterRef, Subquery
from django.template.defaultfilters import pluralize

from clients.models import Retainer, RetainerTerms
from delivery import charts, ledger
from delivery.models import LedgerEntry, Period
from delivery.periods import period_bounds
from retainers.units import format_units

ZERO = ledger.ZERO
Kind = LedgerEntry.Kind


# --- Words for people ----------------------------------------------------------------------


def ordinal(day: int) -> str:
    """1st, 2nd, 3rd, 4th … 11th, 12th, 13th … 21st, 22nd, 23rd … 31st."""
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def day_name(day: date) -> str:
    return f"{day.day} {day:%B}"


def period_name(start_on: date, end_on: date, cadence: str, *, this_year: int) -> str:
    """“March” (or “March 2025”) for a calendar month, else “the period from 15 Jan”."""
    last = end_on - timedelta(days=1)
    if cadence == RetainerTerms.Cadence.MONTHLY and start_on.day == 1 and last.month == start_on.month:
        return f"{start_on:%B}" + (f" {start_on.year}" if start_on.year != this_year else "")
    return f"the period from {start_on.day} {start_on:%b}" + (f" {start_on.year}" if start_on.year != this_year else "")


# --- The forecast ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Forecast:
    """Where the period is heading at the pace so far.

    `kind` is one of: not_started, ended, over, used_up, no_units, no_usage, runout (the
    units run out before the period ends, on `runout_on`), share (at the period end
    `share` per cent of them will have been used), deliverables.
    """

    kind: str
    message: str
    runout_on: date | None = None
    share: int | None = None
    elapsed_days: int = 0
    days: int = 0
    days_to_zero: Decimal | None = None  # from the period start, at the pace so far (fractional)


class _Elapsed(TypedDict):
    elapsed_days: int
    days: int


def forecast(
    *,
    start_on: date,
    end_on: date,
    today: date,
    available: Decimal | None,
    used: Decimal = ZERO,
    unit: str = "hours",
    deliverables_done: int = 0,
    deliverables_total: int = 0,
) -> Forecast:
    """The forecast of the period [start_on, end_on) as of `today` (the workspace's date).

    The pace is what was used per day over the days so far, today included (the burn-down
    counts today's work in too). `available=None` is a deliverables retainer: its forecast
    is what is still to come. Pure: no database, no clock.
    """
    days = max((end_on - start_on).days, 1)
    elapsed = min(max((today - start_on).days + 1, 0), days)
    your = f"your {unit}"
    base: _Elapsed = {"elapsed_days": elapsed, "days": days}
    days_left = max((end_on - today).days, 0)
    left = f"{days_left} day{'s' if days_left != 1 else ''} left"

    if today < start_on:
        return Forecast("not_started", f"The period starts on {day_name(start_on)}.", **base)
    if available is None:
        if deliverables_total == 0:
            return Forecast("deliverables", "No deliverables are planned this period.", **base)
        if deliverables_done >= deliverables_total:
            done = "The deliverable" if deliverables_total == 1 else f"All {deliverables_total} deliverables"
            return Forecast(
                "deliverables", f"{done} of this period {pluralize(deliverables_total, 'is,are')} done.", **base
            )
        to_come = deliverables_total - deliverables_done
        total = f"{deliverables_total} deliverable{pluralize(deliverables_total)}"
        message = f"{deliverables_done} of {total} done; {to_come} to come" + (
            f", with {left}." if today < end_on else "."
        )
        return Forecast("deliverables", message, **base)

    remaining = available - used
    if remaining < 0:
        return Forecast("over", f"You are {format_units(-remaining, unit)} {unit} over this period's balance.", **base)
    if remaining == 0:
        if used <= 0:
            return Forecast("no_units", f"There are no {unit} to use this period.", **base)
        return Forecast("used_up", f"You have used all {format_units(available, unit)} {unit} of this period.", **base)
    if today >= end_on:
        return Forecast("ended", f"This period has ended with {format_units(remaining, unit)} {unit} unused.", **base)
    if used <= 0:
        return Forecast(
            "no_usage", f"No {unit} used yet this period: all {format_units(available, unit)} are left.", **base
        )

    # At `used / elapsed` a day, the balance reaches zero `available * elapsed / used` days in.
    days_to_zero = available * elapsed / used
    if days_to_zero < days:
        runout_on = start_on + timedelta(days=math.ceil(days_to_zero) - 1)
        last = end_on - timedelta(days=1)
        when = f"the {ordinal(runout_on.day)}" if start_on.month == last.month else day_name(runout_on)
        return Forecast(
            "runout",
            f"At this pace {your} run out on {when}.",
            runout_on=runout_on,
            days_to_zero=days_to_zero,
            **base,
        )
    share = int((used * days * 100 / elapsed / available).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return Forecast(
        "share",
        f"At this pace you will use {share}% of {your} this period.",
        share=share,
        days_to_zero=days_to_zero,
        **base,
    )


@dataclass(frozen=True)
class Projection:
    """The dotted line from today's point on the burn-down to where the pace leads."""

    x1: str
    y1: str
    x2: str
    y2: str
    marker_x: str | None  # the run-out day, when it falls inside the period
    # "Run out" is written right of the marker in the chart's left half, clear of the y axis labels.
    label_after_marker: bool = False


def projection(
    chart: charts.Burndown, outlook: Forecast, *, remaining: Decimal, available: Decimal
) -> Projection | None:
    """Extend the chart's actual line at the pace so far, in the chart's own coordinates.

    Uses only what `charts.burndown` exposes: the plot's left/right edges, the zero line and
    today's point (remaining `remaining`), so the y scale is taken from those two points.
    """
    if outlook.kind not in {"runout", "share"} or remaining <= 0 or outlook.days_to_zero is None:
        return None
    left, right = float(chart.left), float(chart.right)
    zero_y, last_x, last_y = float(chart.zero_y), float(chart.last_x), float(chart.last_y)

    def x(day: float) -> float:
        return left + (right - left) * day / outlook.days

    if outlook.kind == "runout":
        end_x = x(float(outlook.days_to_zero))
        return Projection(
            chart.last_x,
            chart.last_y,
            f"{end_x:.1f}",
            chart.zero_y,
            f"{end_x:.1f}",
            label_after_marker=end_x < (left + right) / 2,
        )
    # At the period end: available less the pace times the whole period.
    end_remaining = available - available * outlook.days / outlook.days_to_zero
    end_y = zero_y + (last_y - zero_y) * float(end_remaining / remaining)
    return Projection(f"{last_x:.1f}", f"{last_y:.1f}", f"{right:.1f}", f"{end_y:.1f}", None)


# --- Rolled-in units ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RolledLot:
    origin_seq: int
    origin: str  # “March”
    rolled_in: Decimal
    left: Decimal
    expires_on: date | None  # last day the units can be used; None: they keep rolling over
    unit: str = RetainerTerms.Unit.HOURS

    @property
    def text(self) -> str:
        """“3.50 hours roll in from March and expire on 30 June.”"""
        amount = f"{format_units(self.rolled_in, self.unit)} {self.unit}"
        if self.left <= 0:
            return f"{amount} rolled in from {self.origin}, all used."
        expiry = f"expire on {day_name(self.expires_on)}" if self.expires_on else "keep rolling over"
        if self.left == self.rolled_in:
            return f"{amount} roll in from {self.origin} and {expiry}."
        return f"{amount} roll in from {self.origin}; {format_units(self.left, self.unit)} are left and {expiry}."


def ends_with(retainer: Retainer, period: Period) -> bool:
    """Whether the retainer ends when this period closes (cancelled, or its term ends without renewal)."""
    return retainer.cancel_at_period_end or (period.end_on >= retainer.term_ends_on and not retainer.auto_renew)


def period_end(retainer: Retainer, period: Period, seq: int) -> date:
    """The end (exclusive) of the retainer's period `seq`, this one or one to come."""
    if seq <= period.seq:
        return period.end_on
    # Later periods are counted from the anchor (which a pause moves to this period's end).
    return period_bounds(retainer.anchor_on, retainer.cadence, period.anchor_index + seq - period.seq)[1]


def origin_name(retainer: Retainer, period: Period, origin: int, origins: dict[int, tuple[date, date]]) -> str:
    """The period units came from, for people: “March”."""
    if origin not in origins:
        return f"period {origin}"
    start_on, end_on = origins[origin]
    return period_name(start_on, end_on, retainer.cadence, this_year=period.start_on.year)


def origin_periods(workspace, ledger_entries):
    """Annotate ledger entries with the bounds of their origin period (the period units came from)."""
    origin = Period.objects.for_workspace(workspace).filter(retainer=OuterRef("retainer"), seq=OuterRef("origin_seq"))
    return ledger_entries.annotate(
        origin_start=Subquery(origin.values("start_on")[:1]), origin_end=Subquery(origin.values("end_on")[:1])
    )


def rolled_lots(
    retainer: Retainer,
    period: Period,
    rows: list[tuple[str, Decimal, int, int | None]],
    origins: dict[int, tuple[date, date]],
) -> list[RolledLot]:
    """The rolled-in lots of the open period: how much each brought, what is left, when it expires.

    What is left is `ledger.consume` of the period's usage, oldest lot first, as the close
    will take it; a lot expires at the close of the period `rollover_expiry_periods` after
    its origin (or at this period's close when the retainer ends with it).
    """
    lot_rows = [(kind, quantity, origin, work_item_id is not None) for kind, quantity, origin, work_item_id in rows]
    lots, used = ledger.lots_of(lot_rows, period.seq)
    left, _ = ledger.consume(lots, used)
    rolled: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for kind, quantity, origin, work_item_id in rows:
        if kind == Kind.ROLLOVER_IN and work_item_id is None and origin < period.seq:
            rolled[origin] += quantity
    ends_here = ends_with(retainer, period)
    expiry_periods = retainer.rollover_expiry_periods
    result = []
    for origin in sorted(rolled):
        if rolled[origin] <= 0:
            continue
        if ends_here or retainer.model != RetainerTerms.Model.ROLLOVER:
            expires_on = period.end_on - timedelta(days=1)
        elif expiry_periods is not None:
            expires_on = period_end(retainer, period, max(origin + expiry_periods, period.seq)) - timedelta(days=1)
        else:
            expires_on = None
        name = origin_name(retainer, period, origin, origins)
        result.append(RolledLot(origin, name, rolled[origin], left.get(origin, ZERO), expires_on, retainer.unit))
    return result
