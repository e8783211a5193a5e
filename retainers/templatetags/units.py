from decimal import Decimal

from django import template

from retainers.units import format_units

register = template.Library()


@register.filter
def units(quantity: Decimal | None, unit: str | None = None) -> str:
    """`{{ figures.remaining|units:retainer.unit }}`: hours with two decimals, sessions whole
    (retainers.units.format_units); without a unit, whole numbers lose their decimals."""
    if quantity is None or quantity == "":
        return ""
    return format_units(Decimal(quantity), unit or None)
