"""Recording delivery, closing periods, amendments and the retainer lifecycle, on the database."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest
from django.db import IntegrityError, InternalError, connection, transaction
from django.db.models import Sum

from delivery import services
from delivery.models import Deliverable, LedgerEntry, Period, WorkItem
from tests.factories import make_retainer

pytestmark = pytest.mark.django_db


def balance(retainer) -> D:
    return LedgerEntry.objects.filter(retainer=retainer).aggregate(s=Sum("quantity"))["s"]


def log(retainer, day, hours, **kwargs):
    return services.record_delivery(
        retainer=retainer, delivered_on=day, quantity=D(hours), description="Work", actor=None, **kwargs
    )


def test_new_retainer_opens_its_first_period_with_the_allotment(workspace):
    retainer = make_retainer(workspace=workspace, starts_on=date(2026, 1, 31))
    period = Period.objects.get(retainer=retainer)
    assert (period.start_on, period.end_on, period.status) == (date(2026, 1, 31), date(2026, 2, 28), "open")
    assert retainer.balance == D("10") == balance(retainer)
    assert retainer.term_ends_on == date(2027, 1, 31)


def test_delivery_debits_the_balance_and_caches_it_on_the_retainer(workspace):
    retainer = make_retainer(workspace=workspace)
    log(retainer, date(2026, 1, 5), "1.5")
    log(retainer, date(2026, 1, 6), "2", billable=False)
    retainer.refresh_from_db()
    assert (retainer.balance, retainer.period_used, retainer.period_available) == (D("8.5"), D("1.5"), D("10"))
    assert WorkItem.objects.filter(retainer=retainer).count() == 2


@pytest.mark.parametrize(
    ("day", "hours", "field"),
    [
        (date(2026, 1, 5), "0", "quantity"),
        (date(2026, 1, 5), "-1", "quantity"),
        (date(2026, 1, 5), "25", "quantity"),
        (date(2025, 12, 31), "1", "delivered_on"),
        (date(2026, 2, 1), "1", "delivered_on"),
    ],
)
def test_bad_deliveries_are_refused_and_write_nothing(workspace, day, hours, field):
    retainer = make_retainer(workspace=workspace)
    entries = LedgerEntry.objects.count()
    with pytest.raises(services.DeliveryError) as error:
        log(retainer, day, hours)
    assert error.value.field == field
    assert LedgerEntry.objects.count() == entries and not WorkItem.objects.exists()


def test_long_entry_is_accepted_once_confirmed(workspace):
    retainer = make_retainer(workspace=workspace, units_per_period=D("40"))
    log(retainer, date(2026, 1, 5), "30", confirm_large=True)
    retainer.refresh_from_db()
    assert retainer.balance == D("10")


def test_refuse_policy_blocks_going_over(workspace):
    retainer = make_retainer(workspace=workspace, overage_policy="refuse")
    log(retainer, date(2026, 1, 5), "9.5")
    with pytest.raises(services.DeliveryError, match="Only 0.50 hours left"):
        log(retainer, date(2026, 1, 6), "1")


def test_sessions_must_be_whole(workspace):
    retainer = make_retainer(workspace=workspace, unit="sessions", units_per_period=D("4"))
    with pytest.raises(services.DeliveryError, match="whole numbers"):
        log(retainer, date(2026, 1, 5), "1.5")


def test_paused_retainer_refuses_work_and_resume_pushes_the_period_back(workspace):
    retainer = make_retainer(workspace=workspace)
    services.pause_retainer(retainer=retainer, on=date(2026, 1, 10))
    with pytest.raises(services.DeliveryError, match="paused"):
        log(retainer, date(2026, 1, 11), "1")
    assert services.close_and_open_period(retainer=retainer, as_of=date(2026, 3, 1)) == []
    services.resume_retainer(retainer=retainer, on=date(2026, 1, 20))
    period = Period.objects.get(retainer=retainer, status="open")
    assert period.end_on == date(2026, 2, 11)
    closed = services.close_and_open_period(retainer=retainer, as_of=date(2026, 2, 11))
    assert [(c.next_period.start_on, c.next_period.end_on) for c in closed] == [(date(2026, 2, 11), date(2026, 3, 11))]


def test_edit_is_a_reversal_and_a_new_entry_shown_as_one_row(workspace):
    retainer = make_retainer(workspace=workspace)
    item = log(retainer, date(2026, 1, 5), "2")
    new = services.edit_delivery(
        item=item, delivered_on=date(2026, 1, 6), quantity=D("3"), description="Longer", billable=True, actor=None
    )
    retainer.refresh_from_db()
    assert retainer.balance == D("7")
    assert list(WorkItem.objects.filter(retainer=retainer, removed_at=None)) == [new]
    kinds = list(LedgerEntry.objects.filter(retainer=retainer).values_list("kind", "quantity"))
    assert kinds == [("allotment", D("10")), ("delivery", D("-2")), ("delivery", D("-3")), ("reversal", D("2"))]
    with pytest.raises(services.DeliveryError, match="already changed"):
        services.remove_delivery(item=item, actor=None)


def test_edit_under_refuse_policy_counts_the_returned_hours(workspace):
    retainer = make_retainer(workspace=workspace, overage_policy="refuse")
    item = log(retainer, date(2026, 1, 5), "10")
    new = services.edit_delivery(
        item=item, delivered_on=date(2026, 1, 5), quantity=D("9"), description="Less", billable=True, actor=None
    )
    assert new.quantity == D("9")


def test_closing_rolls_over_with_cap_and_opens_the_next_period(workspace):
    retainer = make_retainer(workspace=workspace, rollover_cap=D("5"))
    log(retainer, date(2026, 1, 5), "3")
    closed = services.close_and_open_period(retainer=retainer, as_of=date(2026, 2, 1))
    first, second = closed[0].period, closed[0].next_period
    assert (first.used, first.rolled_out, first.expired, first.overage) == (D("3"), D("5"), D("2"), D("0"))
    assert second.rolled_in == D("5") and second.start_on == date(2026, 2, 1)
    assert LedgerEntry.objects.filter(period=first).aggregate(s=Sum("quantity"))["s"] == 0
    retainer.refresh_from_db()
    assert retainer.balance == D("15")


def test_close_is_idempotent_and_catches_up_one_period_at_a_time(workspace):
    retainer = make_retainer(workspace=workspace, model="fixed")
    closed = services.close_and_open_period(retainer=retainer, as_of=date(2026, 4, 2))
    assert [(c.period.start_on, c.period.end_on) for c in closed] == [
        (date(2026, 1, 1), date(2026, 2, 1)),
        (date(2026, 2, 1), date(2026, 3, 1)),
        (date(2026, 3, 1), date(2026, 4, 1)),
    ]
    entries = LedgerEntry.objects.count()
    assert services.close_and_open_period(retainer=retainer, as_of=date(2026, 4, 2)) == []
    assert LedgerEntry.objects.count() == entries
    assert Period.objects.filter(retainer=retainer, status="open").count() == 1


def test_overage_is_recorded_for_billing(workspace):
    retainer = make_retainer(workspace=workspace, model="fixed")
    log(retainer, date(2026, 1, 5), "12.25")
    [closed] = services.close_and_open_period(retainer=retainer, as_of=date(2026, 2, 1))
    assert closed.period.overage == D("2.25")


def test_amendment_takes_effect_at_the_next_period(workspace):
    retainer = make_retainer(workspace=workspace, model="fixed")
    amendment = services.amend_retainer(
        retainer=retainer, terms={"units_per_period": D("20")}, reason="More", actor=None
    )
    assert amendment.effective_on == date(2026, 2, 1)
    retainer.refresh_from_db()
    assert retainer.units_per_period == D("10")
    [closed] = services.close_and_open_period(retainer=retainer, as_of=date(2026, 2, 1))
    assert closed.next_period.allotted == D("20")
    amendment.refresh_from_db()
    assert amendment.applied_at is not None


def test_cancel_at_period_end_ends_the_retainer_at_the_next_close(workspace):
    retainer = make_retainer(workspace=workspace)
    services.cancel_at_period_end(retainer=retainer)
    [closed] = services.close_and_open_period(retainer=retainer, as_of=date(2026, 3, 1))
    retainer.refresh_from_db()
    assert closed.next_period is None and retainer.status == "ended" and retainer.ended_on == date(2026, 2, 1)
    assert closed.period.expired == D("10")  # nothing rolls out of a retainer that ends


def test_term_end_without_auto_renew_ends_and_with_auto_renew_continues(workspace):
    ending = make_retainer(workspace=workspace, term_periods=2)
    renewing = make_retainer(workspace=workspace, term_periods=2, auto_renew=True)
    services.close_and_open_period(retainer=ending, as_of=date(2026, 6, 1))
    services.close_and_open_period(retainer=renewing, as_of=date(2026, 6, 1))
    ending.refresh_from_db()
    renewing.refresh_from_db()
    assert ending.status == "ended" and ending.ended_on == date(2026, 3, 1)
    assert renewing.status == "active" and renewing.term_ends_on == date(2026, 7, 1)


def test_deliverables_carry_or_lapse_by_the_plan_rule(workspace):
    carrying = make_retainer(
        workspace=workspace,
        model="deliverables",
        units_per_period=D("0"),
        deliverables=["Report", "Review"],
        deliverables_carry=True,
    )
    lapsing = make_retainer(
        workspace=workspace,
        model="deliverables",
        units_per_period=D("0"),
        deliverables=["Report"],
    )
    Deliverable.objects.filter(retainer=carrying, name="Review").update(status="delivered")
    services.close_and_open_period(retainer=carrying, as_of=date(2026, 2, 1))
    services.close_and_open_period(retainer=lapsing, as_of=date(2026, 2, 1))
    rows = Deliverable.objects.filter(retainer=carrying, period__seq=2).values_list("name", "carried_from__status")
    assert sorted(rows, key=str) == sorted([("Report", None), ("Report", "carried"), ("Review", None)], key=str)
    assert Deliverable.objects.get(retainer=lapsing, period__seq=1).status == "lapsed"


def test_adjustment_needs_a_reason(workspace):
    retainer = make_retainer(workspace=workspace)
    with pytest.raises(services.DeliveryError, match="Say why"):
        services.adjust_balance(retainer=retainer, quantity=D("2"), reason=" ", actor=None)
    services.adjust_balance(retainer=retainer, quantity=D("2"), reason="Goodwill", actor=None)
    retainer.refresh_from_db()
    assert retainer.balance == D("12")


def test_ledger_rows_cannot_be_updated_or_deleted(workspace):
    retainer = make_retainer(workspace=workspace)
    entry = LedgerEntry.objects.get(retainer=retainer)
    for statement in (
        "UPDATE delivery_ledgerentry SET quantity = 99 WHERE id = %s",
        "DELETE FROM delivery_ledgerentry WHERE id = %s",
    ):
        with pytest.raises((InternalError, IntegrityError), match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(statement, [entry.pk])
    with pytest.raises((InternalError, IntegrityError)), transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).update(quantity=D("1"))
    entry.refresh_from_db()
    assert entry.quantity == D("10")


# --- Closing many retainers at once -------------------------------------------------------------


def _books(workspace, *, batched: bool) -> list[tuple]:
    """A mix of retainers whose periods end by 1 May (catch-up of four months, a term that ends,
    a cancellation, an amendment, overage, rollover with cap and expiry, deliverables carried
    and lapsed), closed one retainer at a time or all in one call. Returns the resulting
    periods and ledger of each retainer, in a form that compares across workspaces."""
    retainers = [
        make_retainer(workspace=workspace, model="rollover", rollover_cap=D("6"), rollover_expiry_periods=2),
        make_retainer(workspace=workspace, model="fixed", overage_policy="carry"),
        make_retainer(workspace=workspace, model="fixed", term_periods=2, auto_renew=False),
        make_retainer(workspace=workspace, model="rollover", term_periods=3, auto_renew=True),
        make_retainer(
            workspace=workspace,
            model="deliverables",
            units_per_period=D("0"),
            deliverables=["Report", "Review"],
            deliverables_carry=True,
            extra_deliverable_price_minor=50000,
        ),
        make_retainer(
            workspace=workspace,
            model="deliverables",
            units_per_period=D("0"),
            deliverables=["Board pack"],
            deliverables_carry=False,
        ),
        make_retainer(workspace=workspace, model="fixed"),
    ]
    rollover, carry, ending, renewing, carried, lapsing, cancelled = retainers
    log(rollover, date(2026, 1, 5), "1.5")
    log(carry, date(2026, 1, 7), "13")
    log(ending, date(2026, 1, 9), "12.25")
    log(renewing, date(2026, 1, 9), "4")
    services.amend_retainer(retainer=rollover, terms={"units_per_period": D("8")}, reason="Fewer", actor=None)
    first = Deliverable.objects.get(retainer=carried, name="Report")
    services.set_deliverable_status(deliverable=first, status="in_progress", actor=None)
    services.cancel_at_period_end(retainer=cancelled)

    as_of = date(2026, 5, 1)
    if batched:
        services.close_and_open_periods(retainer_ids=[r.pk for r in retainers], as_of=as_of)
    else:
        for retainer in retainers:
            services.close_and_open_period(retainer=retainer, as_of=as_of)

    books = []
    for index, retainer in enumerate(retainers):
        retainer.refresh_from_db()
        books.append((
            index, retainer.status, retainer.ended_on, retainer.term_ends_on, retainer.units_per_period,
            retainer.balance, retainer.period_used, retainer.period_available,
            [tuple(p) for p in Period.objects.filter(retainer=retainer).order_by("seq").values_list(
                "seq", "start_on", "end_on", "status", "allotted", "rolled_in", "used", "expired", "rolled_out",
                "overage", "price_minor",
            )],
            sorted(LedgerEntry.objects.filter(retainer=retainer).values_list(
                "period__seq", "kind", "quantity", "origin_seq", "reason",
            )),
            sorted(Deliverable.objects.filter(retainer=retainer).values_list("period__seq", "name", "status", "extra")),
        ))  # fmt: skip
    return books


def test_closing_many_retainers_at_once_writes_what_closing_each_alone_writes(workspace, other_workspace):
    one_by_one = _books(workspace, batched=False)
    together = _books(other_workspace, batched=True)
    assert together == one_by_one
    # The mix really exercised each rule: catch-up, an end, a renewal, carry and lapse.
    statuses = {row[0]: row[1] for row in together}
    assert statuses[2] == "ended" and statuses[6] == "ended" and statuses[3] == "active"
    assert len(together[0][8]) == 5  # four closed periods and the open one
    assert {d[2] for d in together[4][10]} >= {"carried", "planned", "in_progress"}
    assert "lapsed" in {d[2] for d in together[5][10]}


def test_closing_many_retainers_takes_the_same_queries_for_3_or_30(workspace):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries_to_close(count: int) -> int:
        retainers = [make_retainer(workspace=workspace, model="rollover") for _ in range(count)]
        for retainer in retainers:
            log(retainer, date(2026, 1, 5), "2")
        with CaptureQueriesContext(connection) as captured:
            services.close_and_open_periods(retainer_ids=[r.pk for r in retainers], as_of=date(2026, 2, 1))
        return len(captured.captured_queries)

    assert queries_to_close(3) == queries_to_close(30)
