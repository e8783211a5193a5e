"""The billing run: every period billed exactly once, with its own dates, whatever happens."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from decimal import Decimal as D
from pathlib import Path

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from billing import services
from billing.models import Invoice, InvoiceLine, InvoiceSequence
from delivery import services as delivery
from delivery.models import Period
from retainers.models import Email
from tests import factories

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def snapshot() -> tuple[int, int, int, int]:
    return (Invoice.objects.count(), InvoiceLine.objects.count(), Period.objects.count(), Email.objects.count())


def bill(workspace, as_of):
    return services.bill_workspace(workspace_id=workspace.pk, as_of=as_of)


def test_in_advance_bills_the_fee_at_period_start_once(workspace):
    retainer = factories.make_retainer(workspace=workspace, starts_on=date(2026, 1, 1), price_minor=150000)
    result = bill(workspace, date(2026, 1, 1))
    [invoice] = Invoice.objects.filter(retainer=retainer)
    assert result.invoices == [invoice.pk]
    assert (invoice.number, invoice.issued_on, invoice.due_on) == ("2026-0001", date(2026, 1, 1), date(2026, 1, 15))
    assert (invoice.period_start_on, invoice.period_end_on, invoice.total_minor) == (
        date(2026, 1, 1),
        date(2026, 2, 1),
        150000,
    )
    before = snapshot()
    assert bill(workspace, date(2026, 1, 1)).invoices == []
    assert snapshot() == before


def test_billing_without_delivery_issues_but_schedules_no_pdf_email_or_charge(
    workspace, django_capture_on_commit_callbacks
):
    factories.make_retainer(workspace=workspace, starts_on=date(2026, 1, 1))
    with django_capture_on_commit_callbacks() as delivered:
        bill(workspace, date(2026, 1, 1))
    with django_capture_on_commit_callbacks() as quiet:
        services.bill_workspace(workspace_id=workspace.pk, as_of=date(2026, 2, 1), deliver=False)
    assert len(delivered) == 1 and quiet == []  # one callback enqueues the delivery of a run's invoices
    assert Invoice.objects.filter(workspace=workspace).count() == 2


def test_in_arrears_bills_fee_and_overage_at_period_end(workspace):
    retainer = factories.make_retainer(
        workspace=workspace, billing_timing="arrears", model="fixed", price_minor=100000, overage_rate_minor=12000
    )
    delivery.record_delivery(
        retainer=retainer, delivered_on=date(2026, 1, 9), quantity=D("12.5"), description="x", actor=None
    )
    assert bill(workspace, date(2026, 1, 31)).invoices == []
    [invoice_id] = bill(workspace, date(2026, 2, 1)).invoices
    invoice = Invoice.objects.get(pk=invoice_id)
    lines = list(invoice.lines.values_list("kind", "quantity", "amount_minor"))
    assert lines == [("fee", D("1.00"), 100000), ("overage", D("2.50"), 30000)]
    assert invoice.issued_on == date(2026, 2, 1) and invoice.total_minor == 130000


def test_in_advance_puts_last_periods_overage_on_the_next_invoice(workspace):
    retainer = factories.make_retainer(workspace=workspace, model="fixed", price_minor=100000, overage_rate_minor=10000)
    bill(workspace, date(2026, 1, 1))
    delivery.record_delivery(
        retainer=retainer, delivered_on=date(2026, 1, 20), quantity=D("11"), description="x", actor=None
    )
    [february] = bill(workspace, date(2026, 2, 1)).invoices
    assert list(Invoice.objects.get(pk=february).lines.values_list("kind", "amount_minor")) == [
        ("fee", 100000),
        ("overage", 10000),
    ]


def test_tax_is_computed_on_the_subtotal_and_rounded_once(workspace):
    profile = services.profile_for(workspace)
    profile.tax_rate_bp, profile.tax_label = 2000, "VAT"
    profile.save()
    factories.make_retainer(workspace=workspace, price_minor=33333)
    invoice = Invoice.objects.get(pk=bill(workspace, date(2026, 1, 1)).invoices[0])
    assert (invoice.subtotal_minor, invoice.tax_minor, invoice.total_minor, invoice.tax_label) == (
        33333,
        6667,
        40000,
        "VAT",
    )


def test_catch_up_after_downtime_bills_each_missed_period_once_with_its_own_dates(workspace):
    retainer = factories.make_retainer(workspace=workspace, starts_on=date(2026, 1, 30), rollover_cap=D("5"))
    bill(workspace, date(2026, 1, 30))
    delivery.record_delivery(
        retainer=retainer, delivered_on=date(2026, 2, 2), quantity=D("4"), description="x", actor=None
    )
    # Down from 27 Feb to 2 Apr: two month ends missed.
    result = bill(workspace, date(2026, 4, 2))
    invoices = list(Invoice.objects.filter(retainer=retainer).order_by("issued_on"))
    assert [(i.issued_on, i.period_end_on, i.number) for i in invoices] == [
        (date(2026, 1, 30), date(2026, 2, 28), "2026-0001"),
        (date(2026, 2, 28), date(2026, 3, 30), "2026-0002"),
        (date(2026, 3, 30), date(2026, 4, 30), "2026-0003"),
    ]
    assert result.periods_closed == 2
    second = Period.objects.get(retainer=retainer, seq=2)
    assert second.rolled_in == D("5")  # 6 left, capped at 5
    before = snapshot()
    assert bill(workspace, date(2026, 4, 2)).invoices == []
    assert snapshot() == before


def test_a_catch_up_numbers_invoices_in_the_order_of_their_issue_dates(workspace):
    # In advance: dated at each period's start (1 Jan, 1 Feb, 1 Mar); in arrears from 10 Jan:
    # dated at each period's end (10 Feb). One run on 2 March issues all four.
    factories.make_retainer(workspace=workspace, starts_on=date(2026, 1, 1))
    factories.make_retainer(workspace=workspace, starts_on=date(2026, 1, 10), billing_timing="arrears")
    bill(workspace, date(2026, 3, 2))
    invoices = Invoice.objects.filter(workspace=workspace).order_by("number")
    assert [(i.number, i.issued_on) for i in invoices] == [
        ("2026-0001", date(2026, 1, 1)),
        ("2026-0002", date(2026, 2, 1)),
        ("2026-0003", date(2026, 2, 10)),
        ("2026-0004", date(2026, 3, 1)),
    ]


def test_numbers_are_gapless_and_sequential_per_workspace_and_year(workspace, other_workspace):
    for _ in range(3):
        factories.make_retainer(workspace=workspace, starts_on=date(2026, 12, 1))
    factories.make_retainer(workspace=other_workspace, starts_on=date(2026, 12, 1))
    bill(workspace, date(2027, 1, 1))
    bill(other_workspace, date(2026, 12, 1))
    ours = sorted(Invoice.objects.filter(workspace=workspace).values_list("number", flat=True))
    assert ours == ["2026-0001", "2026-0002", "2026-0003", "2027-0001", "2027-0002", "2027-0003"]
    assert list(Invoice.objects.filter(workspace=other_workspace).values_list("number", flat=True)) == ["2026-0001"]
    assert InvoiceSequence.objects.get(workspace=workspace, year=2027).last_number == 3


@pytest.mark.parametrize(
    ("zone", "instant_utc", "billed"),
    [
        # 1 Mar local has begun in Tokyo but not in New York.
        ("Asia/Tokyo", "2026-02-28T16:30:00+00:00", True),
        ("America/New_York", "2026-03-01T04:30:00+00:00", False),
        ("America/New_York", "2026-03-01T05:30:00+00:00", True),
        # Around the DST changes: Europe 29 Mar, US 8 Mar 2026.
        ("Europe/London", "2026-03-31T23:30:00+00:00", True),
        ("Europe/London", "2026-03-31T22:30:00+00:00", False),
        ("America/New_York", "2026-03-31T23:30:00+00:00", False),
        ("America/New_York", "2026-04-01T04:30:00+00:00", True),
    ],
)
def test_each_workspace_bills_on_its_own_local_date(zone, instant_utc, billed):
    workspace = factories.WorkspaceFactory(timezone=zone)
    starts = date(2026, 3, 1) if instant_utc < "2026-03-15" else date(2026, 4, 1)
    factories.make_retainer(workspace=workspace, starts_on=starts)
    with time_machine.travel(instant_utc, tick=False):
        for _ in range(2):  # hourly beat: the second run in the same hour finds nothing new
            services.run_billing(inline=True)
    assert Invoice.objects.filter(workspace=workspace).count() == (1 if billed else 0)


def test_second_run_exits_at_once_while_one_holds_the_lock(workspace, django_db_blocker):
    factories.make_retainer(workspace=workspace)
    import psycopg
    from django.conf import settings

    db = settings.DATABASES["default"]
    other = psycopg.connect(
        host=db["HOST"] or None, port=db["PORT"] or None, user=db["USER"], dbname=connection.settings_dict["NAME"]
    )
    try:
        other.execute("SELECT pg_advisory_lock(%s)", [services.BILLING_RUN_LOCK])
        assert services.run_billing(inline=True, as_of=date(2026, 1, 1)).started is False
        with pytest.raises(CommandError, match="in progress"):
            call_command("run_billing", "--as-of", "2026-01-01")
        # Released here, synchronously: a closed connection's lock goes only when the server has
        # noticed the disconnect, which under load can be after the next line's run.
        other.execute("SELECT pg_advisory_unlock(%s)", [services.BILLING_RUN_LOCK])
    finally:
        # Unlock before closing: a closed connection's backend releases its locks when it exits,
        # which a loaded server may do after the next line has already tried the lock.
        other.execute("SELECT pg_advisory_unlock(%s)", [services.BILLING_RUN_LOCK])
        other.close()
    assert Invoice.objects.count() == 0
    assert services.run_billing(inline=True, as_of=date(2026, 1, 1)).invoices == 1


@pytest.mark.parametrize("bad", ["2026-02-30", ""])
def test_command_refuses_a_bad_date(bad):
    # An empty --as-of is a mistake in a script, not "today": refused like any bad date.
    with pytest.raises(CommandError, match=r"^--as-of must be a date like 2026-01-31, not '"):
        call_command("run_billing", "--as-of", bad)


def test_paused_and_ended_retainers_are_not_billed_again(workspace):
    paused = factories.make_retainer(workspace=workspace)
    bill(workspace, date(2026, 1, 1))
    delivery.pause_retainer(retainer=paused, on=date(2026, 1, 15))
    assert bill(workspace, date(2026, 3, 1)).invoices == []


@pytest.mark.django_db(transaction=True)
def test_two_billing_processes_at_once_bill_each_period_exactly_once():
    workspaces = [factories.WorkspaceFactory() for _ in range(3)]
    for workspace in workspaces:
        for _ in range(4):
            factories.make_retainer(workspace=workspace, starts_on=date(2026, 1, 1))
    db = connection.settings_dict
    env = {"DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"}
    script = (
        "import django, os, sys; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'retainers.settings'); django.setup();"
        "from datetime import date; from billing import services;"
        "[services.bill_workspace(workspace_id=w, as_of=date(2026, 3, 2)) for w in map(int, sys.argv[1:])]"
    )
    ids = [str(w.pk) for w in workspaces]
    import os

    processes = [
        subprocess.Popen([sys.executable, "-c", script, *order], cwd=ROOT, env={**os.environ, **env})
        for order in (ids, ids[::-1])
    ]
    assert [p.wait(timeout=120) for p in processes] == [0, 0]
    assert Invoice.objects.count() == 3 * 4 * 3  # 3 workspaces × 4 retainers × Jan, Feb, Mar
    assert InvoiceLine.objects.filter(invoice__isnull=True).count() == 0
    for workspace in workspaces:
        numbers = sorted(Invoice.objects.filter(workspace=workspace).values_list("number", flat=True))
        assert numbers == [f"2026-{n:04d}" for n in range(1, 13)]
        assert Invoice.objects.filter(workspace=workspace).values("period").distinct().count() == 12


def test_overage_of_the_last_period_of_an_ending_retainer_is_billed_once(workspace):
    retainer = factories.make_retainer(workspace=workspace, model="fixed", price_minor=100000, overage_rate_minor=10000)
    bill(workspace, date(2026, 1, 1))
    delivery.cancel_at_period_end(retainer=retainer)
    delivery.record_delivery(
        retainer=retainer, delivered_on=date(2026, 1, 20), quantity=D("12"), description="x", actor=None
    )
    [closing] = bill(workspace, date(2026, 2, 1)).invoices
    invoice = Invoice.objects.get(pk=closing)
    assert invoice.kind == "closing" and invoice.issued_on == date(2026, 2, 1)
    assert list(invoice.lines.values_list("kind", "quantity", "amount_minor")) == [("overage", D("2.00"), 20000)]
    before = snapshot()
    assert bill(workspace, date(2026, 3, 1)).invoices == []
    assert snapshot() == before


def test_billing_a_workspace_takes_as_many_queries_for_five_retainers_as_for_two(workspace, other_workspace):
    # Set-based: closing, opening and issuing read and write each table in a fixed number of
    # statements per batch, never one per retainer or per invoice.
    from django.test.utils import CaptureQueriesContext

    def queries(ws, count: int) -> int:
        retainers = [factories.make_retainer(workspace=ws, starts_on=date(2026, 1, 1)) for _ in range(count)]
        delivery.record_delivery(  # one runs over its balance: an overage line on its next invoice
            retainer=retainers[0], delivered_on=date(2026, 1, 5), quantity=D("12"), description="x", actor=None
        )
        bill(ws, date(2026, 1, 1))
        with CaptureQueriesContext(connection) as captured:
            result = bill(ws, date(2026, 2, 1))
        assert (result.periods_closed, len(result.invoices)) == (count, count)
        return len(captured.captured_queries)

    assert queries(workspace, 2) == queries(other_workspace, 5)


def test_the_same_day_rerun_writes_nothing_in_a_handful_of_queries(workspace, django_assert_max_num_queries):
    for _ in range(3):
        factories.make_retainer(workspace=workspace, starts_on=date(2026, 1, 1))
    bill(workspace, date(2026, 2, 1))
    before = snapshot()
    with django_assert_max_num_queries(5):  # the workspace, replaced terms, ending periods, two "due?"
        assert bill(workspace, date(2026, 2, 1)).invoices == []
    assert snapshot() == before
