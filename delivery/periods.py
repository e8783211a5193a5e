"""Period arithmetic: the one function that says where a retainer's n-th period starts and ends."""

from __future__ import annotations

import calendar
from datetime import date

from clients.models import RetainerTerms

Cadence = RetainerTerms.Cadence


def add_months(anchor: date, months: int) -> date:
    """`anchor` moved by whole months, clamped to the month's last day (Jan 31 + 1 month = Feb 28/29)."""
    month_index = anchor.year * 12 + (anchor.month - 1) + months
    year, month = divmod(month_index, 12)
    last_day = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(anchor.day, last_day))


def period_bounds(anchor: date, cadence: str, index: int) -> tuple[date, date]:
    """The half-open range [start, end) of period `index` (0-based) counted from `anchor`.

    Each bound is computed from the anchor, never from the previous period, so a
    retainer anchored on the 31st gets Jan 31, Feb 28 (29 in leap years), Mar 31…
    rather than drifting to the 28th for ever.
    """
    step = Cadence(cadence).months
    return add_months(anchor, index * step), add_months(anchor, (index + 1) * step)


def index_containing(anchor: date, cadence: str, day: date) -> int:
    """The index of the period that contains `day` (negative before the anchor)."""
    step = Cadence(cadence).months
    index = ((day.year - anchor.year) * 12 + day.month - anchor.month) // step
    while period_bounds(anchor, cadence, index)[0] > day:
        index -= 1
    while period_bounds(anchor, cadence, index)[1] <= day:
        index += 1
    return index
