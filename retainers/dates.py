"""Dates as people read them. Periods and terms are stored half-open, `[start_on, end_on)`;
people read the last day, so every page, email and PDF shows a period or a term end through here:
"1–31 Dec 2026", never "1 Dec 2026 to 1 Jan 2027" or "(end exclusive)".

Templates use the filters of the same names (`{% load dates %}`):
`{{ period.start_on|period_range:period.end_on }}`, `{{ renewal.term_ends_on|last_day|date:"j F Y" }}`.
"""

from __future__ import annotations

from datetime import date, timedelta


def last_day(end_on: date) -> date:
    """The last day inside a half-open range ending (exclusive) on `end_on`."""
    return end_on - timedelta(days=1)


def period_range(start_on: date, end_on: date, *, long: bool = False) -> str:
    """A half-open range `[start_on, end_on)` with its inclusive last day, shortest first:
    "1–31 Dec 2026", "1 Nov – 31 Dec 2026", "15 Dec 2026 – 14 Jan 2027", "1 Dec 2026" (one day).
    `long`: month names in full ("1–31 December 2026")."""
    last = last_day(end_on)
    month = "%B" if long else "%b"
    if last <= start_on:
        return f"{start_on.day} {start_on.strftime(month)} {start_on.year}"
    if (start_on.year, start_on.month) == (last.year, last.month):
        return f"{start_on.day}–{last.day} {last.strftime(month)} {last.year}"
    if start_on.year == last.year:
        return f"{start_on.day} {start_on.strftime(month)} – {last.day} {last.strftime(month)} {last.year}"
    return f"{start_on.day} {start_on.strftime(month)} {start_on.year} – {last.day} {last.strftime(month)} {last.year}"
