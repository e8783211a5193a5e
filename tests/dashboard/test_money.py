"""Money: monthly recurring revenue, collected this month, and the 12-month chart."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from clients.models import Retainer
from dashboard import charts
from delivery import services as delivery
from tests import factories
from tests.dashboard.helpers import NOW, TODAY, dashboard_url, local, make_invoice, make_payment

pytestmark = pytest.mark.django_db
UTC = ZoneInfo("UTC")


def money(owner_client, workspace) -> dict:
    response = owner_client.get(dashboard_url(workspace))
    assert response.status_code == 200
    return {m.currency: m for m in response.context["money"]}


def sign(workspace, *, cadence: str = "monthly", price: int = 100000, currency: str | None = None) -> Retainer:
    terms = {"cadence": cadence, "price_minor": price, "currency": currency or workspace.currency}
    return factories.make_retainer(workspace=workspace, starts_on=date(2026, 3, 1), **terms)


# --- Monthly recurring revenue -------------------------------------------------------------------


def test_mrr_normalises_each_cadence_to_a_month(workspace, owner_client):
    sign(workspace, cadence="monthly", price=150000)  # £1,500.00 a month
    sign(workspace, cadence="quarterly", price=300000)  # £3,000.00 a quarter: £1,000.00 a month
    sign(workspace, cadence="yearly", price=1200000)  # £12,000.00 a year: £1,000.00 a month

    gbp = money(owner_client, workspace)["GBP"]

    assert gbp.mrr == "£3,500.00"
    assert (gbp.live, gbp.paused) == (3, 0)


def test_mrr_rounds_once_over_the_sum_not_per_retainer(workspace, owner_client):
    for _ in range(3):
        sign(workspace, cadence="quarterly", price=100000)  # £333.333… each
    sign(workspace, cadence="yearly", price=100)  # £0.0833…

    assert money(owner_client, workspace)["GBP"].mrr == "£1,000.08"


def test_mrr_counts_live_retainers_only_paused_included(workspace, owner_client):
    sign(workspace, price=100000)
    paused = sign(workspace, price=20000)
    delivery.pause_retainer(retainer=paused, on=TODAY)
    ended = sign(workspace, price=999900)
    delivery.end_retainer(retainer=ended, on=TODAY)
    factories.make_retainer(workspace=factories.WorkspaceFactory(currency="GBP"), price_minor=500000)

    gbp = money(owner_client, workspace)["GBP"]

    assert gbp.mrr == "£1,200.00"
    assert (gbp.live, gbp.paused) == (2, 1)


def test_mrr_is_per_currency_never_added_across(workspace, owner_client):
    sign(workspace, price=100000)
    sign(workspace, price=50000, currency="EUR")
    sign(workspace, cadence="yearly", price=1200000, currency="JPY")  # JPY has no minor unit

    by_currency = money(owner_client, workspace)

    assert list(by_currency) == ["GBP", "EUR", "JPY"]  # the workspace's own currency first
    assert by_currency["GBP"].mrr == "£1,000.00"
    assert by_currency["EUR"].mrr == "€500.00"
    assert by_currency["JPY"].mrr == "¥100,000"


def test_amounts_follow_the_workspace_locale(workspace, owner_client):
    workspace.locale = "de_DE"
    workspace.save()
    sign(workspace, price=150000, currency="EUR")
    assert money(owner_client, workspace)["EUR"].mrr == "1.500,00\xa0€"


# --- Collected this month ----------------------------------------------------------------------


def test_collected_this_month_is_payments_less_refunds(workspace, owner_client):
    client = factories.ClientFactory(workspace=workspace)
    invoice = make_invoice(client, status="paid", due_on=TODAY)
    make_payment(invoice, at=NOW - timedelta(days=3), amount=150000)
    make_payment(invoice, at=NOW - timedelta(days=2), amount=20000, kind="refund")
    make_payment(invoice, at=NOW - timedelta(days=1), amount=99900, status="failed")
    make_payment(invoice, at=NOW - timedelta(hours=1), amount=55500, status="pending")
    make_payment(invoice, at=datetime(2026, 2, 27, 12, tzinfo=UTC), amount=70000)  # last month

    assert money(owner_client, workspace)["GBP"].collected == "£1,300.00"


@pytest.mark.parametrize(
    ("zone", "last_of_february", "first_of_march"),
    [
        # 1 March 00:30 in Auckland is still 28 February in UTC; 23:30 on the 28th in New York is 1 March in UTC.
        ("Pacific/Auckland", datetime(2026, 2, 28, 10, 30, tzinfo=UTC), datetime(2026, 2, 28, 11, 30, tzinfo=UTC)),
        ("America/New_York", datetime(2026, 3, 1, 4, 30, tzinfo=UTC), datetime(2026, 3, 1, 5, 30, tzinfo=UTC)),
    ],
)
def test_this_month_starts_at_local_midnight(zone, last_of_february, first_of_march, workspace, owner_client):
    workspace.timezone = zone
    workspace.save()
    invoice = make_invoice(factories.ClientFactory(workspace=workspace), status="paid", due_on=TODAY)
    make_payment(invoice, at=last_of_february, amount=10000)
    make_payment(invoice, at=first_of_march, amount=25000)

    gbp = money(owner_client, workspace)["GBP"]

    assert gbp.collected == "£250.00"
    february, march = gbp.chart.bars[-2:]
    assert (february.month, february.net_minor) == (date(2026, 2, 1), 10000)
    assert (march.month, march.net_minor) == (date(2026, 3, 1), 25000)


# --- The 12-month chart ----------------------------------------------------------------------------


def test_chart_has_twelve_local_months_ending_with_this_one(workspace, owner_client):
    invoice = make_invoice(factories.ClientFactory(workspace=workspace), status="paid", due_on=TODAY)
    make_payment(invoice, at=local(workspace, date(2025, 3, 31), 23, 0), amount=77700)  # 13 months ago: not shown
    make_payment(invoice, at=local(workspace, date(2025, 4, 1), 0, 30), amount=10000)
    make_payment(invoice, at=local(workspace, date(2025, 4, 30), 23, 30), amount=5000)  # BST: 22:30 UTC
    make_payment(invoice, at=local(workspace, date(2026, 1, 15)), amount=40000)
    make_payment(invoice, at=local(workspace, date(2026, 1, 20)), amount=15000, kind="refund")
    make_payment(invoice, at=local(workspace, date(2026, 3, 14), 11), amount=30000)

    chart = money(owner_client, workspace)["GBP"].chart

    assert [bar.month for bar in chart.bars] == [date(2025, 4 + n, 1) for n in range(9)] + [
        date(2026, 1, 1),
        date(2026, 2, 1),
        date(2026, 3, 1),
    ]
    by_month = {bar.month: bar.net_minor for bar in chart.bars}
    assert by_month[date(2025, 4, 1)] == 15000
    assert by_month[date(2026, 1, 1)] == 25000
    assert by_month[date(2026, 2, 1)] == 0
    assert by_month[date(2026, 3, 1)] == 30000
    assert chart.bars[-1].current and not chart.bars[-2].current
    assert chart.total == "£700.00"
    assert chart.bars[0].amount == "£150.00" and chart.bars[0].long_label == "April 2025"


def test_chart_is_accessible_and_drawn_without_inline_styles(workspace, owner_client):
    invoice = make_invoice(factories.ClientFactory(workspace=workspace), status="paid", due_on=TODAY)
    make_payment(invoice, at=NOW - timedelta(days=40), amount=123400)
    page = owner_client.get(dashboard_url(workspace)).content.decode()

    assert '<svg role="img" aria-labelledby="revenue-title-GBP revenue-desc-GBP"' in page
    assert '<title id="revenue-title-GBP">Revenue collected per month, GBP</title>' in page
    assert "<title>February 2026: £1,234.00</title>" in page  # each bar says its figure
    assert '<th scope="row">February 2026</th><td class="num">£1,234.00</td>' in page  # the table alternative
    assert "style=" not in page


def test_a_chart_per_currency(workspace, owner_client):
    client = factories.ClientFactory(workspace=workspace)
    make_payment(make_invoice(client, status="paid", due_on=TODAY), at=NOW, amount=10000)
    make_payment(make_invoice(client, status="paid", due_on=TODAY, currency="USD"), at=NOW, amount=20000)

    by_currency = money(owner_client, workspace)

    assert by_currency["GBP"].collected == "£100.00" and by_currency["USD"].collected == "$200.00"
    assert by_currency["USD"].mrr == "$0.00"  # money came in, but no live retainer bills in dollars


def test_an_empty_workspace_shows_its_currency_at_zero(workspace, owner_client):
    response = owner_client.get(dashboard_url(workspace))
    [gbp] = response.context["money"]
    assert (gbp.currency, gbp.mrr, gbp.collected) == ("GBP", "£0.00", "£0.00")
    assert "No GBP collected in the last 12 months yet" in response.content.decode()


def test_chart_geometry_scales_to_a_round_top_and_hangs_refunds_below():
    months = [date(2025, 4 + n, 1) if n < 9 else date(2026, n - 8, 1) for n in range(12)]
    chart = charts.revenue_chart(
        currency="GBP", months=months, net_by_month={months[0]: 184000, months[1]: -20000}, locale="en_GB"
    )
    assert [line.label for line in chart.gridlines] == ["£2k", "£1k", "£0", "-£200"]
    first, second = chart.bars[:2]
    assert float(first.height) > 0 and float(second.height) > 0
    assert float(second.y) == float(chart.baseline_y)  # a negative month starts at the baseline and goes down
    assert charts.nice_ceiling(Decimal("0.3")) == Decimal("0.5")
    assert charts.nice_ceiling(Decimal("2300")) == Decimal("2500")
