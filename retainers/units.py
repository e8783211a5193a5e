"""Hours and sessions as people read them: the one formatting of quantities of units.

Python callers (emails, sentences built in code) use `format_units`; templates use the
`units` filter (`{% load units %}{{ figures.remaining|units:retainer.unit }}`).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

HOURS = "hours"  # clients.RetainerTerms.Unit.HOURS (the core sits left of clients)


def format_units(quantity: Decimal, unit: str | None = None) -> str:
    """Whole numbers without decimals (“10”), others with two (“6.50”); with `unit="hours"`,
    always two decimals (“3.50”, “10.00”), as hours are shown wherever a unit is named."""
    if unit == HOURS or quantity != quantity.to_integral_value():
        return f"{quantity:.2f}"
    return f"{quantity:.0f}"


def utilisation(used: Decimal, available: Decimal) -> Decimal | None:
    """The one definition of utilisation: units used ÷ what the period made available (allotted,
    rolled in and adjusted), 0–1 or more when over; None when nothing was available. Every page,
    email, chart and the renewal evidence show it, as `utilisation_percent`."""
    return used / available if available > 0 else None


def utilisation_percent(used: Decimal, available: Decimal) -> int | None:
    """Utilisation as a whole percentage, rounded half up (16 of 14 → 114)."""
    ratio = utilisation(used, available)
    return None if ratio is None else int((ratio * 100).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


def went_over(used: Decimal, available: Decimal) -> bool:
    """Whether a period used more than it made available (utilisation over 100%): the periods charts
    mark red and the renewal's "went over in N of M" counts."""
    return available > 0 and used > available
