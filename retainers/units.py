"""Hours and sessions as people read them: the one formatting of quantities of units.

Python callers (emails, sentences built in code) use `format_units`; templates use the
`units` filter (`{% load units %}{{ figures.remaining|units:retainer.unit }}`).
"""

from __future__ import annotations

from decimal import Decimal

HOURS = "hours"  # clients.RetainerTerms.Unit.HOURS (the core sits left of clients)


def format_units(quantity: Decimal, unit: str | None = None) -> str:
    """Whole numbers without decimals (“10”), others with two (“6.50”); with `unit="hours"`,
    always two decimals (“3.50”, “10.00”), as hours are shown wherever a unit is named."""
    if unit == HOURS or quantity != quantity.to_integral_value():
        return f"{quantity:.2f}"
    return f"{quantity:.0f}"
