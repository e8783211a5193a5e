"""Period bounds over month ends, leap years, quarters, years, and time zones around DST."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from hypothesis import given
from hypothesis import strategies as st

from delivery.periods import add_months, index_containing, period_bounds
from retainers.models import Workspace


@pytest.mark.parametrize(
    ("anchor", "months", "expected"),
    [
        (date(2026, 1, 31), 1, date(2026, 2, 28)),
        (date(2028, 1, 31), 1, date(2028, 2, 29)),  # leap year
        (date(2026, 1, 31), 2, date(2026, 3, 31)),  # back to the 31st, no drift
        (date(2026, 3, 31), 1, date(2026, 4, 30)),
        (date(2026, 12, 15), 1, date(2027, 1, 15)),
        (date(2028, 2, 29), 12, date(2029, 2, 28)),
        (date(2026, 5, 10), -5, date(2025, 12, 10)),
    ],
)
def test_add_months_clamps_to_month_end(anchor, months, expected):
    assert add_months(anchor, months) == expected


def test_monthly_periods_anchored_on_the_31st_keep_the_31st_where_it_exists():
    anchor = date(2026, 1, 31)
    starts = [period_bounds(anchor, "monthly", i)[0] for i in range(5)]
    assert starts == [date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30), date(2026, 5, 31)]


def test_february_in_a_leap_year():
    assert period_bounds(date(2028, 1, 30), "monthly", 1) == (date(2028, 2, 29), date(2028, 3, 30))


def test_quarterly_and_yearly():
    assert period_bounds(date(2026, 11, 30), "quarterly", 0) == (date(2026, 11, 30), date(2027, 2, 28))
    assert period_bounds(date(2026, 11, 30), "quarterly", 1) == (date(2027, 2, 28), date(2027, 5, 30))
    assert period_bounds(date(2028, 2, 29), "yearly", 1) == (date(2029, 2, 28), date(2030, 2, 28))
    assert period_bounds(date(2028, 2, 29), "yearly", 4) == (date(2032, 2, 29), date(2033, 2, 28))


@given(
    anchor=st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31)),
    cadence=st.sampled_from(["monthly", "quarterly", "yearly"]),
    index=st.integers(min_value=0, max_value=100),
)
def test_periods_tile_time_with_no_gap_or_overlap(anchor, cadence, index):
    start, end = period_bounds(anchor, cadence, index)
    next_start, _ = period_bounds(anchor, cadence, index + 1)
    assert start < end == next_start
    assert index_containing(anchor, cadence, start) == index
    assert index_containing(anchor, cadence, end) == index + 1


@pytest.mark.parametrize(
    ("zone", "instant_utc", "local_day"),
    [
        # 2026 DST changes: US 8 Mar / 1 Nov, Europe 29 Mar / 25 Oct. Late evening in New York
        # is already tomorrow in UTC; early morning in Tokyo is still yesterday in UTC.
        ("America/New_York", datetime(2026, 3, 9, 3, 30), date(2026, 3, 8)),
        ("America/New_York", datetime(2026, 11, 1, 4, 30), date(2026, 11, 1)),
        ("Europe/London", datetime(2026, 3, 28, 23, 30), date(2026, 3, 28)),
        ("Europe/London", datetime(2026, 3, 29, 23, 30), date(2026, 3, 30)),
        ("Europe/London", datetime(2026, 10, 24, 23, 30), date(2026, 10, 25)),
        ("Asia/Tokyo", datetime(2026, 3, 31, 15, 30), date(2026, 4, 1)),
    ],
)
def test_workspace_today_follows_its_time_zone_across_dst(zone, instant_utc, local_day):
    with time_machine.travel(instant_utc.replace(tzinfo=ZoneInfo("UTC")), tick=False):
        assert Workspace(timezone=zone).today() == local_day
