from datetime import date

from django import template

from retainers import dates

register = template.Library()


@register.filter
def last_day(end_on: date | None) -> date | None:
    """`{{ renewal.term_ends_on|last_day|date:"j F Y" }}`: the last day of a half-open range."""
    return dates.last_day(end_on) if end_on else None


@register.filter
def period_range(start_on: date | None, end_on: date | None) -> str:
    """`{{ period.start_on|period_range:period.end_on }}`: "1–31 Dec 2026" (retainers.dates)."""
    if not start_on or not end_on:
        return ""
    return dates.period_range(start_on, end_on)


@register.filter
def period_range_long(start_on: date | None, end_on: date | None) -> str:
    """As `period_range`, with month names in full: "1–31 December 2026"."""
    if not start_on or not end_on:
        return ""
    return dates.period_range(start_on, end_on, long=True)
