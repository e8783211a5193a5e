"""Dunning: failed charges retried on the workspace's schedule, overdue notices and reminders
sent once each, retainers paused on unpaid invoices; run twice or late, the same outcome."""

from __future__ import annotations

from datetime import date, timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError

from billing import charges, dunning, services, tasks
from billing.models import Invoice, Payment
from clients.models import Retainer
from delivery import services as delivery
from retainers.models import Email
from tests import factories
from tests.billing.conftest import open_invoice, save_card

pytestmark = pytest.mark.django_db


def run(as_of: date, capture) -> dunning.DunningSummary:
    with capture(execute=True):
        return dunning.run_dunning(as_of=as_of, inline=True)


def subjects(to: str) -> list[str]:
    return [m.subject for m in mail.outbox if m.to == [to]]


@pytest.fixture
def declining(use_stripe, fake_stripe, acme):
    use_stripe(fake_stripe.url)
    pm = fake_stripe.add_card()
    fake_stripe.declining.add(pm)
    save_card(acme, customer_id="cus_acme", payment_method_id=pm)
    return fake_stripe


def test_failed_charge_is_retried_on_the_schedule_then_both_sides_are_told_once(
    declining, acme, alice, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    invoice = open_invoice(acme, auto_charge=True)
    day0 = invoice.workspace.today()
    with capture(execute=True):
        charges.charge_invoice(invoice, as_of=day0)  # attempt 1, at issue

    charged_on = []
    for offset in range(0, 20):
        for _ in range(2):  # every run twice: the second does nothing
            before = len(declining.requests_to("POST", "/v1/payment_intents"))
            run(day0 + timedelta(days=offset), capture)
            if len(declining.requests_to("POST", "/v1/payment_intents")) > before:
                charged_on.append(offset)

    # Retry 1, 3 and 7 days after each failure: days 1, 4 and 11.
    assert charged_on == [1, 4, 11]
    keys = [r.idempotency_key for r in declining.requests_to("POST", "/v1/payment_intents")]
    assert keys == [f"invoice-{invoice.pk}-charge-{n}" for n in (1, 2, 3, 4)]
    invoice.refresh_from_db()
    assert (invoice.charge_attempts, invoice.next_charge_on, invoice.status) == (4, None, "open")
    assert Payment.objects.filter(invoice=invoice, status="failed").count() == 4
    client_subjects = subjects("ap@acme.example")
    assert client_subjects.count(f"Payment for invoice {invoice.number} failed; we will try again") == 3
    assert client_subjects.count(f"Action needed: payment for invoice {invoice.number} failed") == 1
    # Overdue and told once (the due date, 14 days out, had not even come), whoever ran when.
    assert len([s for s in client_subjects if s.startswith(f"Invoice {invoice.number} is unpaid")]) == 1
    assert len([s for s in subjects(alice.email) if s.startswith("Unpaid: Acme Corp")]) == 1
    assert len(subjects(alice.email)) == 5  # four failures and the notice


def test_retry_that_succeeds_pays_the_invoice_and_stops_the_dunning(
    declining, acme, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    invoice = open_invoice(acme, auto_charge=True)
    day0 = invoice.workspace.today()
    with capture(execute=True):
        charges.charge_invoice(invoice, as_of=day0)
    declining.declining.clear()  # the client topped up their account
    run(day0 + timedelta(days=1), capture)
    run(day0 + timedelta(days=1), capture)
    invoice.refresh_from_db()
    assert invoice.status == "paid" and invoice.next_charge_on is None
    assert sorted(Payment.objects.filter(invoice=invoice).values_list("status", flat=True)) == ["failed", "succeeded"]
    assert subjects("ap@acme.example")[-1].startswith("Receipt:")
    run(day0 + timedelta(days=30), capture)
    assert len(declining.requests_to("POST", "/v1/payment_intents")) == 2


def test_charge_in_flight_whose_task_died_is_retried_by_dunning_with_the_same_key(
    use_stripe, fake_stripe, acme, django_capture_on_commit_callbacks
):
    use_stripe(fake_stripe.url, timeout=0.5)
    save_card(acme, customer_id="cus_acme", payment_method_id=fake_stripe.add_card())
    invoice = open_invoice(acme, auto_charge=True)
    fake_stripe.script("POST", "/v1/payment_intents", "timeout", delay=2)
    with pytest.raises(OSError):
        charges.charge_invoice(invoice)
    Payment.objects.filter(status="pending").update(created_at=Payment.objects.get().created_at - timedelta(hours=1))
    run(invoice.workspace.today(), django_capture_on_commit_callbacks)
    first, retry = fake_stripe.requests_to("POST", "/v1/payment_intents")
    assert first.idempotency_key == retry.idempotency_key
    invoice.refresh_from_db()
    assert invoice.status == "paid" and len(fake_stripe.of_type("payment_intent")) == 1


def test_overdue_reminders_go_out_on_the_offsets_once_each(acme, alice, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    invoice = open_invoice(acme, due_on=date(2026, 3, 1))
    for day in range(0, 45):
        run(date(2026, 3, 1) + timedelta(days=day), capture)
        run(date(2026, 3, 1) + timedelta(days=day), capture)
    number = invoice.number
    assert subjects("ap@acme.example") == [
        f"Invoice {number} is overdue (£1,200.00)",  # the day after the due date
        f"Reminder: invoice {number} is 3 days overdue (£1,200.00)",
        f"Reminder: invoice {number} is 10 days overdue (£1,200.00)",
        f"Reminder: invoice {number} is 30 days overdue (£1,200.00)",
    ]
    assert subjects(alice.email) == [f"Overdue: Acme Corp, invoice {number} (£1,200.00)"]
    assert set(
        Email.objects.filter(key__startswith=f"invoice-{invoice.pk}-reminder-").values_list("key", flat=True)
    ) == {f"invoice-{invoice.pk}-reminder-{days}" for days in (3, 10, 30)}


def test_after_downtime_only_the_latest_reminder_that_came_due_is_sent(acme, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    invoice = open_invoice(acme, due_on=date(2026, 3, 1))
    run(date(2026, 3, 15), capture)  # 14 days late: the 3- and 10-day reminders came due while down
    run(date(2026, 3, 15), capture)
    assert subjects("ap@acme.example") == [
        f"Invoice {invoice.number} is overdue (£1,200.00)",
        f"Reminder: invoice {invoice.number} is 14 days overdue (£1,200.00)",
    ]
    invoice.refresh_from_db()
    assert invoice.reminders_sent == 2
    run(date(2026, 3, 31), capture)
    assert len(subjects("ap@acme.example")) == 3


def test_paid_or_void_invoices_get_no_reminders(acme, django_capture_on_commit_callbacks):
    paid = open_invoice(acme, due_on=date(2026, 3, 1))
    services.record_payment(invoice=paid, amount_minor=paid.total_minor, method="bank_transfer")
    void = open_invoice(acme, due_on=date(2026, 3, 1))
    services.void_invoice(invoice=void, actor=None)
    run(date(2026, 4, 15), django_capture_on_commit_callbacks)
    assert mail.outbox == []


def test_reminder_offsets_are_the_workspaces_own(acme, django_capture_on_commit_callbacks):
    profile = services.profile_for(acme.workspace)
    profile.reminder_offsets = [7]
    profile.save()
    invoice = open_invoice(acme, due_on=date(2026, 3, 1))
    run(date(2026, 3, 4), django_capture_on_commit_callbacks)
    run(date(2026, 3, 8), django_capture_on_commit_callbacks)
    assert subjects("ap@acme.example")[1:] == [f"Reminder: invoice {invoice.number} is 7 days overdue (£1,200.00)"]


def test_retainer_is_paused_once_when_its_invoice_is_that_many_days_overdue(
    workspace, acme, alice, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    retainer = factories.make_retainer(workspace=workspace, client=acme, starts_on=date(2026, 1, 1))
    Retainer.objects.filter(pk=retainer.pk).update(pause_after_unpaid_days=10)
    services.bill_workspace(workspace_id=workspace.pk, as_of=date(2026, 1, 1))
    invoice = Invoice.objects.get(retainer=retainer)
    assert invoice.due_on == date(2026, 1, 15)

    run(date(2026, 1, 24), capture)
    retainer.refresh_from_db()
    assert retainer.status == "active"
    run(date(2026, 1, 25), capture)
    retainer.refresh_from_db()
    assert (retainer.status, retainer.paused_on) == ("paused", date(2026, 1, 25))
    assert subjects(alice.email)[-1] == f"Paused: Advisory retainer for Acme Corp (invoice {invoice.number} unpaid)"

    # The consultant resumes it by hand; later runs do not pause it again for this invoice.
    delivery.resume_retainer(retainer=retainer, on=date(2026, 1, 26))
    run(date(2026, 1, 27), capture)
    retainer.refresh_from_db()
    assert retainer.status == "active"


def test_run_dunning_command_runs_once_per_day_and_rejects_bad_dates(acme, django_capture_on_commit_callbacks):
    open_invoice(acme, due_on=date(2026, 3, 1))
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("run_dunning", "--as-of", "2026-03-05", stdout=out)
    assert "1 overdue notice(s), 1 reminder(s)" in out.getvalue()
    out = StringIO()
    call_command("run_dunning", "--as-of", "2026-03-05", stdout=out)
    assert "0 overdue notice(s), 0 reminder(s)" in out.getvalue()
    with pytest.raises(CommandError, match="--as-of must be a date"):
        call_command("run_dunning", "--as-of", "2026-02-30")


def test_beat_runs_dunning_daily_through_the_task(acme, settings, django_capture_on_commit_callbacks):
    settings.DAILY_JOBS_LOCAL_HOUR = 0  # whatever the hour the test runs at (tests/billing/test_daily_hour.py)
    entry = settings.CELERY_BEAT_SCHEDULE["dunning"]
    assert entry["task"] == "billing.tasks.run_dunning"
    assert tasks.run_dunning.name == "billing.tasks.run_dunning"
    open_invoice(acme, due_on=date(2000, 1, 1))
    with django_capture_on_commit_callbacks(execute=True):
        tasks.run_dunning.delay()
    assert len(subjects("ap@acme.example")) == 2  # overdue notice and the latest reminder


def test_beat_task_fans_out_one_retry_task_per_due_charge(
    declining, acme, settings, django_capture_on_commit_callbacks
):
    settings.DAILY_JOBS_LOCAL_HOUR = 0
    invoice = open_invoice(acme, auto_charge=True)
    Invoice.objects.filter(pk=invoice.pk).update(charge_attempts=1, next_charge_on=date(2000, 1, 1))
    with django_capture_on_commit_callbacks(execute=True):
        tasks.run_dunning.delay()
    [request] = declining.requests_to("POST", "/v1/payment_intents")
    assert request.idempotency_key == f"invoice-{invoice.pk}-charge-2"
