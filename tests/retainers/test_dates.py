"""Periods are stored half-open; people read the inclusive last day (retainers.dates)."""

from datetime import date

import pytest

from retainers.dates import last_day, period_range


@pytest.mark.parametrize(
    ("start", "end", "text"),
    [
        (date(2026, 12, 1), date(2027, 1, 1), "1–31 Dec 2026"),
        (date(2026, 11, 1), date(2027, 1, 1), "1 Nov – 31 Dec 2026"),
        (date(2026, 12, 15), date(2027, 1, 15), "15 Dec 2026 – 14 Jan 2027"),
        (date(2026, 12, 1), date(2026, 12, 2), "1 Dec 2026"),
        (date(2026, 1, 1), date(2027, 1, 1), "1 Jan – 31 Dec 2026"),
    ],
)
def test_period_range_shows_the_last_day(start, end, text):
    assert period_range(start, end) == text


def test_long_month_names_and_the_last_day():
    assert period_range(date(2026, 12, 1), date(2027, 1, 1), long=True) == "1–31 December 2026"
    assert last_day(date(2027, 2, 1)) == date(2027, 1, 31)


def test_no_page_email_or_pdf_prints_an_exclusive_end():
    """ "(end exclusive)", "1 Dec 2026 to 1 Jan 2027", "ends on <the first day of the next term>":
    every period end and term end in a template goes through the dates filters."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "templates"
    found = []
    for path in root.rglob("*.*"):
        text = path.read_text()
        if "end exclusive" in text:
            found.append(f"{path}: end exclusive")
        # An exclusive end printed as a date is only right as the next thing's first day ("starting").
        for match in re.finditer(r"(?<![\w.])[\w.]*end_on\|date", text):
            if not text[: match.start()].endswith("starting {{ "):
                found.append(f"{path}: {match.group(0)}")
        for match in re.finditer(r"(?:ends|ended|ends on|until|by|term end,) \{\{ [\w.]*term_ends_on\|date", text):
            found.append(f"{path}: {match.group(0)}")
    assert found == []
