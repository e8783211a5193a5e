"""Display helpers of delivery's figures: `{% load delivery %}`.

<div class="bar {{ figures.utilisation|bar_tone }}"><span class="{{ figures.utilisation|bar_class }}"></span></div>
"""

from __future__ import annotations

from decimal import Decimal

from django import template

register = template.Library()

ZERO = Decimal("0")


def _ratio(utilisation: Decimal | int | str | None) -> Decimal | None:
    """A utilisation (used / available, 0–1 or more) as a Decimal; None (or "" from a missing
    template variable) when there is nothing to measure."""
    if utilisation is None or utilisation == "":
        return None
    return Decimal(utilisation)


@register.filter
def bar_class(utilisation: Decimal | int | str | None) -> str:
    """The `.bar > span.w-N` width class, in steps of 5 (CSP: no inline widths)."""
    ratio = _ratio(utilisation)
    if ratio is None:
        return "w-0"
    step = int(min(max(ratio, ZERO), Decimal(1)) * 20 + Decimal("0.5"))
    return f"w-{step * 5}"


@register.filter
def bar_tone(utilisation: Decimal | int | str | None) -> str:
    """Amber from 80% used, red once over."""
    ratio = _ratio(utilisation)
    if ratio is None or ratio < Decimal("0.8"):
        return ""
    return "bar-danger" if ratio > 1 else "bar-warning"
