"""The figures of a period, from its ledger entries: the read-model the retainer page, the client
portal and the statement show, so both sides read the same numbers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from clients.models import Retainer, RetainerTerms
from delivery import ledger
from delivery.models import LedgerEntry, Period, WorkItem
from retainers.units import utilisation, utilisation_percent

Kind = LedgerEntry.Kind
ZERO = ledger.ZERO
CLOSING_KINDS = {Kind.EXPIRY, Kind.OVERAGE, Kind.ROLLOVER_OUT}


@dataclass
class PeriodFigures:
    """What the retainer page shows of one period, all from its ledger entries."""

    period: Period
    is_open: bool
    allotted: Decimal
    rolled_in: Decimal
    adjusted: Decimal
    available: Decimal
    used: Decimal
    remaining: Decimal
    expiring: Decimal
    overage: Decimal
    days_left: int | None
    used_by_day: dict[date, Decimal]

    @property
    def utilisation(self) -> Decimal | None:
        return utilisation(self.used, self.available)

    @property
    def utilisation_percent(self) -> int | None:
        return utilisation_percent(self.used, self.available)


def period_figures(
    retainer: Retainer, period: Period, rows: Iterable[tuple[str, Decimal, int, int | None, date | None]], today: date
) -> PeriodFigures:
    """Sum a period's entries (kind, quantity, origin_seq, work_item_id, delivered_on).

    Closing entries (expiry, overage, rolled out) are left out, so a closed period
    shows how it stood at its end rather than zero.
    """
    allotted = rolled_in = adjusted = used = ZERO
    used_by_day: dict[date, Decimal] = {}
    lot_rows = []
    for kind, quantity, origin, work_item_id, delivered_on in rows:
        if kind in CLOSING_KINDS:
            continue
        lot_rows.append((kind, quantity, origin, work_item_id is not None))
        if work_item_id is not None:  # deliveries and their reversals are usage, dated by the work
            used -= quantity
            assert delivered_on is not None  # joined through work_item_id: every work item has its date
            used_by_day[delivered_on] = used_by_day.get(delivered_on, ZERO) - quantity
        elif kind == Kind.ALLOTMENT:
            allotted += quantity
        elif kind == Kind.ROLLOVER_IN:
            rolled_in += quantity
        else:
            adjusted += quantity
    available = allotted + rolled_in + adjusted
    remaining = available - used
    is_open = period.status == Period.Status.OPEN
    expiring = ZERO
    if is_open and remaining > 0:
        ends_here = retainer.cancel_at_period_end or (
            period.end_on >= retainer.term_ends_on and not retainer.auto_renew
        )
        if retainer.model == RetainerTerms.Model.FIXED or ends_here:
            expiring = remaining  # nothing rolls: every unused unit lapses at the close
        elif retainer.model == RetainerTerms.Model.ROLLOVER:
            lots, lot_used = ledger.lots_of(lot_rows, period.seq)
            expiring = ledger.expiring_at_close(
                seq=period.seq, lots=lots, used=lot_used, rollover_expiry_periods=retainer.rollover_expiry_periods
            )
    return PeriodFigures(
        period=period,
        is_open=is_open,
        allotted=allotted,
        rolled_in=rolled_in,
        adjusted=adjusted,
        available=available,
        used=used,
        remaining=remaining,
        expiring=expiring,
        overage=max(-remaining, ZERO),
        days_left=max((period.end_on - today).days, 0) if is_open else None,
        used_by_day=used_by_day,
    )


def time_logged(items: Iterable[WorkItem]) -> Decimal:
    """The time logged in a period: every work item not removed, billable or not. A deliverables
    retainer's time is tracked this way, never drawn from a balance, so its ledger says nothing."""
    return sum((item.quantity for item in items if item.removed_at is None), ZERO)


def last_day(period: Period) -> date:
    """The last day in a period: periods are half-open, people read inclusive ranges."""
    return period.end_on - timedelta(days=1)
