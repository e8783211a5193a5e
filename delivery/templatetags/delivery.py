"""Display helpers of delivery's figures: `{% load delivery %}`.

<div class="bar {{ figures.utilization|bar_tone }}"><span class="{{ figures.utilization|bar_class }}"></span></div>
"""

from __future__ import annotations

from decimal import Decimal

from django import template

register = template.Library()

ZERO = Decimal("0")


def _ratio(utilization: Decimal | int | str | None) -> Decimal | None:
    """A utilization (used / available, 0–1 or more) as a Decimal; None (or "" from a missing
    template variable) when there is nothing to measure."""
    if utilization is None or utilization == "":
        return None
    return Decimal(utilization)


@register.filter
def bar_class(utilization: Decimal | int | str | None) -> str:
    """The `.bar > span.w-N` width class, in steps of 5 (CSP: no inline widths)."""
    ratio = _ratio(utilization)
    if ratio is None:
        return "w-0"
    step = int(min(max(ratio, ZERO), Decimal(1)) * 20 + Decimal("0.5"))
    return f"w-{step * 5}"


@register.filter
def bar_tone(utilization: Decimal | int | str | None) -> str:
    """Amber from 80% used, red once over."""
    ratio = _ratio(utilization)
    if ratio is None or ratio < Decimal("0.8"):
        return ""
    return "bar-danger" if ratio > 1 else "bar-warning"
