"""Copy people read counts one thing in the singular: "1 deliverable", "1 hour's notice", never
"1 deliverables". (The dashboard's counts are in tests/dashboard/test_attention.py.)"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from django.template.loader import render_to_string

from delivery import slots
from delivery.booking import _refusal_message
from delivery.forecast import forecast
from renewals.evidence import PeriodFigures, suggest

APRIL = {"start_on": date(2026, 4, 1), "end_on": date(2026, 5, 1)}


@pytest.mark.parametrize(
    ("done", "total", "message"),
    [
        (0, 1, "0 of 1 deliverable done; 1 to come, with 21 days left."),
        (1, 3, "1 of 3 deliverables done; 2 to come, with 21 days left."),
        (1, 1, "The deliverable of this period is done."),
        (2, 2, "All 2 deliverables of this period are done."),
    ],
)
def test_the_forecast_of_deliverables_counts_one_in_the_singular(done, total, message):
    outlook = forecast(
        **APRIL, today=date(2026, 4, 10), available=None, deliverables_done=done, deliverables_total=total
    )
    assert outlook.message == message


@pytest.mark.parametrize(
    ("notice", "horizon", "notice_message", "horizon_message"),
    [
        (timedelta(hours=1), 1, "at least 1 hour's notice.", "at most 1 day ahead."),
        (timedelta(hours=12), 60, "at least 12 hours' notice.", "at most 60 days ahead."),
        (timedelta(minutes=1), 2, "at least 1 minute's notice.", "at most 2 days ahead."),
        (timedelta(minutes=30), 2, "at least 30 minutes' notice.", "at most 2 days ahead."),
    ],
)
def test_booking_refusals_count_hours_minutes_and_days(notice, horizon, notice_message, horizon_message):
    rules = slots.Rules(zone=ZoneInfo("UTC"), weekly={}, min_notice=notice, horizon_days=horizon)
    assert notice_message in _refusal_message(slots.Refusal.NOTICE, rules)
    assert horizon_message in _refusal_message(slots.Refusal.HORIZON, rules)


def _deliverables_period(planned: int, delivered: int) -> PeriodFigures:
    return PeriodFigures(
        seq=1,
        start_on=date(2026, 1, 1),
        end_on=date(2026, 2, 1),
        open=False,
        deliverables_planned=planned,
        deliverables_delivered=delivered,
    )


@pytest.mark.parametrize(
    ("planned", "delivered", "reason"),
    [
        (1, 1, "1 of 1 planned deliverable was delivered this term."),
        (1, 0, "0 of 1 planned deliverable was delivered this term."),
        (2, 1, "1 of 2 planned deliverables were delivered this term."),
    ],
)
def test_the_renewal_suggestion_counts_deliverables_in_the_right_number(planned, delivered, reason):
    result = suggest(
        periods=[_deliverables_period(planned, delivered)],
        model="deliverables",
        unit="hours",
        cadence="monthly",
        units_per_period=D("0"),
        price_minor=50000,
    )
    assert result.reason == reason


def test_the_booking_nudge_counts_days():
    context = {"recipient_name": "Carol", "retainer": {"name": "Advisory"}, "url": "https://x.example/"}
    assert "for 1 day." in render_to_string("emails/booking_nudge/body.txt", {**context, "days": 1})
    assert "for 14 days." in render_to_string("emails/booking_nudge/body.txt", {**context, "days": 14})
