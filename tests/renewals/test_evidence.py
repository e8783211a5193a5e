"""The proposal: its figures come from the ledger, and the suggestion follows the stated rules."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest
import time_machine
from django.db.models import Sum

from billing import services as billing
from billing.models import Invoice, Payment
from communication.models import Note
from delivery import services as delivery
from delivery.models import LedgerEntry, Period, WorkItem
from renewals import evidence
from renewals.evidence import InvoiceRow, PeriodFigures, punctuality, round_up_units, sparkline, suggest, trend
from renewals.models import Renewal
from tests import factories
from tests.renewals.conftest import run, seed

# --- The rules, without a database -----------------------------------------------------------


def months(*used: str, allotted: str = "10", open_last: bool = False, overage: dict[int, str] | None = None):
    """Closed monthly periods with these uses (and, optionally, the last one still open)."""
    overage = overage or {}
    periods = []
    for index, hours in enumerate(used):
        periods.append(
            PeriodFigures(
                seq=index + 1,
                start_on=date(2026, index + 1, 1),
                end_on=date(2026, index + 2, 1),
                open=open_last and index == len(used) - 1,
                allotted=D(allotted),
                used=D(hours),
                overage=D(overage.get(index, max(D(hours) - D(allotted), D(0)))),
            )
        )
    return periods


def hours_suggestion(periods, units="10", price=200000):
    return suggest(
        periods=periods, model="fixed", unit="hours", cadence="monthly", units_per_period=D(units), price_minor=price
    )


def test_upgrade_when_the_recent_average_runs_over_with_the_reason_in_words():
    result = hours_suggestion(months("8", "9", "12", "13", "13.4"))
    assert result.kind == "upgrade"
    assert (result.units_per_period, result.price_minor) == (D("13.00"), 260000)  # 12.8 used on average → 13
    assert result.reason.startswith("You used 128% of your hours on average over the last 3 months")
    assert "went over in 3 of 5 months" in result.reason
    assert "13 hours a month (from 10) would cover it" in result.reason


def test_upgrade_when_overage_happened_in_two_periods_even_if_the_average_is_under():
    result = hours_suggestion(months("12", "11", "6", "7", "7"))
    assert result.kind == "upgrade"
    # The average of the last three (67%) would not; the two overage months (11.5 on average) do.
    assert result.units_per_period == D("12.00") and result.price_minor == 240000
    assert (
        "You used 67% of your hours on average over the last 3 months, and went over in 2 of 5 months" in result.reason
    )


def test_downgrade_when_use_runs_under_sixty_percent():
    result = hours_suggestion(months("9", "4", "5", "5"))
    assert result.kind == "downgrade"
    assert (result.units_per_period, result.price_minor) == (D("5.00"), 100000)
    assert result.reason == (
        "You used 47% of your hours on average over the last 3 months: 5 hours a month (from 10) would still cover it."
    )


def test_keep_in_between():
    result = hours_suggestion(months("8", "9", "7"))
    assert (result.kind, result.units_per_period, result.price_minor) == ("keep", D("10"), 200000)
    assert result.reason == "You used 80% of your hours on average over the last 3 months: 10 hours a month fit."


def test_an_open_period_alone_can_show_an_upgrade_but_never_a_downgrade():
    assert hours_suggestion(months("14", open_last=True)).kind == "upgrade"
    low = hours_suggestion(months("2", open_last=True))
    assert low.kind == "keep" and "this month so far" in low.reason


def test_quarterly_sessions_speak_of_quarters_and_sessions():
    result = suggest(
        periods=months("30", allotted="20"),
        model="fixed",
        unit="sessions",
        cadence="quarterly",
        units_per_period=D("20"),
        price_minor=90000,
    )
    assert result.reason.startswith("You used 150% of your sessions on average over the last quarter")
    assert result.units_per_period == D("30.00") and result.price_minor == 135000


def test_deliverables_keep_with_what_was_delivered():
    periods = [
        PeriodFigures(
            seq=1,
            start_on=date(2026, 1, 1),
            end_on=date(2026, 2, 1),
            open=False,
            deliverables_planned=2,
            deliverables_delivered=2,
            deliverables_extra=1,
        ),
        PeriodFigures(
            seq=2,
            start_on=date(2026, 2, 1),
            end_on=date(2026, 3, 1),
            open=False,
            deliverables_planned=2,
            deliverables_delivered=1,
        ),
    ]
    result = suggest(
        periods=periods,
        model="deliverables",
        unit="hours",
        cadence="monthly",
        units_per_period=D("0"),
        price_minor=50000,
    )
    assert result.kind == "keep"
    assert result.reason == "3 of 4 planned deliverables were delivered this term, and 1 extra."


@pytest.mark.parametrize(
    ("used", "units"),
    [("0.4", "1"), ("12.8", "13"), ("20", "20"), ("20.01", "25"), ("99", "100"), ("101", "110")],
)
def test_units_round_up_to_numbers_people_sign_for(used, units):
    assert round_up_units(D(used)) == D(units)


def test_trend_compares_the_last_three_with_the_term():
    assert trend(months("5", "5", "5", "9", "9", "9")).direction == "rising"
    assert trend(months("9", "9", "9", "5", "5", "5")).direction == "falling"
    steady = trend(months("8", "8", "8", "8"))
    assert (steady.direction, steady.recent_utilization, steady.term_utilization) == ("steady", 80, 80)


def test_punctuality_counts_on_time_late_and_unpaid():
    today = date(2026, 6, 1)
    rows = [
        InvoiceRow("paid", date(2026, 1, 15), date(2026, 1, 15), 1),  # on the due date: on time
        InvoiceRow("paid", date(2026, 2, 15), date(2026, 2, 20), 1),
        InvoiceRow("paid", date(2026, 3, 15), date(2026, 3, 25), 1),
        InvoiceRow("open", date(2026, 5, 15), None, 1),
        InvoiceRow("uncollectible", date(2026, 4, 15), None, 1),
        InvoiceRow("open", date(2026, 6, 15), None, 1),
    ]
    result = punctuality(rows, today=today)
    assert (result.invoices, result.on_time, result.late, result.unpaid, result.not_due) == (6, 1, 2, 2, 1)
    assert result.average_days_late == "7.5"


def test_sparkline_marks_periods_over_the_allotment():
    line = sparkline([(80, False), (None, False), (128, True)])
    assert [over for _, _, over in line.dots] == [False, True]
    assert line.summary == "Utilisation by period: 80%, 128%."
    assert sparkline([(None, False), (None, False)]) is None


# --- On a seeded history ----------------------------------------------------------------------------


def ledger_sums(period: Period) -> dict[str, D]:
    entries = LedgerEntry.objects.filter(period=period)

    def total(**filters) -> D:
        return entries.filter(**filters).aggregate(s=Sum("quantity", default=D("0")))["s"]

    return {
        "allotted": total(kind="allotment"),
        "rolled_in": total(kind="rollover_in"),
        "adjusted": total(kind="adjustment"),
        "used": -total(work_item__isnull=False),
        "rolled_out": -total(kind="rollover_out"),
        "expired": -total(kind="expiry"),
        "overage": total(kind="overage"),
        "balance": total(),
    }


def assert_matches_ledger(renewal: Renewal) -> None:
    """Every figure of every period, and the term's totals, equal the ledger's own sums."""
    rows = renewal.evidence["periods"]
    periods = list(Period.objects.filter(retainer=renewal.retainer).order_by("seq"))
    assert [row["seq"] for row in rows] == [p.seq for p in periods]
    totals = dict.fromkeys(evidence.FIGURES, D("0"))
    for row, period in zip(rows, periods, strict=True):
        sums = ledger_sums(period)
        for name, value in sums.items():
            assert D(row[name]) == value, (period.seq, name)
            totals[name] += value
        if period.status == "closed":  # and what delivery wrote on the period when it closed it
            assert (D(row["used"]), D(row["expired"]), D(row["rolled_out"]), D(row["overage"])) == (
                period.used,
                period.expired,
                period.rolled_out,
                period.overage,
            )
            assert D(row["balance"]) == 0
        assert row["open"] == (period.status == "open")
    for name, value in totals.items():
        assert D(renewal.evidence["totals"][name]) == value, name


@pytest.mark.django_db
def test_proposal_on_a_seeded_history_matches_the_ledger_and_suggests_an_upgrade(workspace, six_month_retainer):
    retainer = six_month_retainer
    # February: an entry logged then removed (a reversal), another logged, two hours added by hand.
    seed(retainer, ["9"])
    delivery.close_and_open_period(retainer=retainer, as_of=date(2026, 2, 1))
    wrong = delivery.record_delivery(
        retainer=retainer, delivered_on=date(2026, 2, 3), quantity=D("4"), description="Oops", actor=None
    )
    delivery.remove_delivery(item=wrong, actor=None)
    delivery.record_delivery(
        retainer=retainer, delivered_on=date(2026, 2, 5), quantity=D("10"), description="Work", actor=None
    )
    delivery.adjust_balance(retainer=retainer, quantity=D("2"), reason="Goodwill", actor=None)
    delivery.close_and_open_period(retainer=retainer, as_of=date(2026, 3, 1))
    seed(retainer, ["12", "13", "13.4", "3"], first=date(2026, 3, 1))  # Mar–May closed, June open

    # Invoices of the term, paid on time, late, not at all, and one not yet due.
    billing.bill_workspace(workspace_id=workspace.pk, as_of=date(2026, 6, 1))
    invoices = {i.period_start_on.month: i for i in Invoice.objects.filter(retainer=retainer)}
    assert sorted(invoices) == [1, 2, 3, 4, 5, 6]
    for month, paid_on in [
        (1, date(2026, 1, 10)),
        (2, date(2026, 2, 20)),
        (3, date(2026, 3, 25)),
        (4, date(2026, 4, 15)),
    ]:
        with time_machine.travel(datetime(paid_on.year, paid_on.month, paid_on.day, 11, tzinfo=UTC)):
            invoice = invoices[month]
            billing.record_payment(
                invoice=invoice, amount_minor=invoice.total_minor, method=Payment.Method.BANK_TRANSFER
            )

    # Shared notes of the term are highlights; private ones and those before the term are not.
    for body, visibility, at in [
        ("Launched the <b>new</b> pricing page", "shared", datetime(2026, 3, 3, 9, tzinfo=UTC)),
        ("Board pack delivered early", "shared", datetime(2026, 5, 20, 9, tzinfo=UTC)),
        ("Client seems unhappy about fees", "private", datetime(2026, 5, 21, 9, tzinfo=UTC)),
        ("Kick-off", "shared", datetime(2025, 12, 15, 9, tzinfo=UTC)),
    ]:
        Note.objects.create(
            workspace=workspace, client=retainer.client, body=body, visibility=visibility, created_at=at
        )

    result = run(workspace, date(2026, 6, 1))
    renewal = Renewal.objects.get(retainer=retainer)
    assert result.opened == [renewal.pk]
    assert (renewal.term_ends_on, renewal.opened_on, renewal.status) == (date(2026, 7, 1), date(2026, 6, 1), "upcoming")

    assert_matches_ledger(renewal)
    february = renewal.evidence["periods"][1]
    assert (february["allotted"], february["adjusted"], february["used"], february["expired"]) == (
        "10.00",
        "2.00",
        "10.00",
        "2.00",
    )
    # Utilisation is used ÷ what the period made available: February's goodwill hours count.
    assert (february["utilisation"], february["went_over"]) == (83, False)
    assert [p["utilisation"] for p in renewal.evidence["periods"]] == [90, 83, 120, 130, 134, 30]
    assert renewal.evidence["overage"]["periods"] == 3
    assert renewal.evidence["overage"]["units"] == "8.40"
    assert renewal.evidence["trend"] == {
        "recent_periods": 3,
        "recent_utilization": 128,
        "term_utilization": 110,  # 57.4 used of 52 available
        "direction": "rising",
    }
    assert renewal.evidence["payments"] == {
        "invoices": 6,
        "on_time": 2,
        "late": 2,
        "unpaid": 1,
        "not_due": 1,
        "average_days_late": "7.5",
    }
    assert [h["text"] for h in renewal.evidence["highlights"]] == [
        "Board pack delivered early",
        "Launched the <b>new</b> pricing page",
    ]
    assert renewal.evidence["totals"]["used"] == str(
        sum(w.quantity for w in WorkItem.objects.filter(retainer=retainer, removed_at=None))
    )

    # The suggestion fills the proposed terms: the retainer's, with the units and price it suggests.
    assert renewal.suggestion == "upgrade"
    assert renewal.suggestion_reason == (
        "You used 128% of your hours on average over the last 3 months, and went over in 3 of 5 months: "
        "13 hours a month (from 10) would cover it."
    )
    assert (renewal.units_per_period, renewal.price_minor) == (D("13.00"), 260000)
    kept = {
        name: getattr(renewal, name)
        for name in ("model", "unit", "cadence", "currency", "overage_rate_minor", "term_periods")
    }
    assert kept == {
        "model": "fixed",
        "unit": "hours",
        "cadence": "monthly",
        "currency": "GBP",
        "overage_rate_minor": 15000,
        "term_periods": 6,
    }


@pytest.mark.django_db
def test_rollover_history_matches_the_ledger_too(workspace, acme, carol):
    retainer = factories.make_retainer(
        client=acme,
        model="rollover",
        rollover_cap=D("5"),
        rollover_expiry_periods=1,
        term_periods=4,
        overage_policy="carry",
    )
    seed(retainer, ["6", "16", "2", "4"])  # rolls 4, goes 2 into debt (carried), rolls 5 capped…
    run(workspace, date(2026, 4, 1))
    renewal = Renewal.objects.get(retainer=retainer)
    assert_matches_ledger(renewal)
    rows = renewal.evidence["periods"]
    assert rows[0]["rolled_out"] == "4.00" and rows[1]["rolled_in"] == "4.00"
    assert rows[1]["rolled_out"] == "-2.00" and rows[2]["rolled_in"] == "-2.00"  # a carried negative balance


@pytest.mark.django_db
def test_deliverables_history_counts_delivered_against_planned(workspace, acme, carol):
    from delivery.models import Deliverable

    retainer = factories.make_retainer(
        client=acme,
        model="deliverables",
        units_per_period=D("0"),
        deliverables=["Report", "Review"],
        deliverables_carry=True,
        term_periods=3,
    )
    report = Deliverable.objects.get(retainer=retainer, name="Report")
    delivery.set_deliverable_status(deliverable=report, status="delivered", actor=None, on=date(2026, 1, 20))
    delivery.add_deliverable(retainer=retainer, name="Extra workshop", actor=None)
    delivery.set_deliverable_status(
        deliverable=Deliverable.objects.get(retainer=retainer, name="Extra workshop"), status="delivered", actor=None
    )
    delivery.close_and_open_period(retainer=retainer, as_of=date(2026, 2, 1))  # Review carries into February
    carried = Deliverable.objects.get(retainer=retainer, period__seq=2, carried_from__isnull=False)
    delivery.set_deliverable_status(deliverable=carried, status="delivered", actor=None, on=date(2026, 2, 9))
    run(workspace, date(2026, 3, 2))  # the term ends 1 Apr: the renewal opens 30 days before
    renewal = Renewal.objects.get(retainer=retainer)
    totals = renewal.evidence["totals"]
    # January: Report delivered, Review carried (counted where it ends up); February: its own two and Review.
    assert (totals["deliverables_planned"], totals["deliverables_delivered"], totals["deliverables_extra"]) == (4, 2, 1)
    assert renewal.suggestion_reason == "2 of 4 planned deliverables were delivered this term, and 1 extra."
