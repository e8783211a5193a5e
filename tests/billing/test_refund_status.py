"""Refunds point at their payment, carry Stripe's status (pending, succeeded, failed, canceled)
kept up to date by webhooks; a failed refund is shown and told; and dunning never chases money
the consultant refunded, unless they ask for it again."""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.urls import reverse

from billing import charges, dunning, refunds, services
from billing.models import Invoice, Payment
from retainers.models import Email
from tests.billing.conftest import event, open_invoice, post_event, save_card

pytestmark = pytest.mark.django_db

money_path = importlib.import_module("billing.migrations.0004_money_path")


@pytest.fixture
def card_payment(fake_stripe, use_stripe, acme) -> Payment:
    use_stripe(fake_stripe.url)
    save_card(acme, customer_id="cus_acme", payment_method_id=fake_stripe.add_card())
    invoice = open_invoice(acme, amount_minor=50000, auto_charge=True)
    charges.charge_invoice(invoice)
    return Payment.objects.get(invoice=invoice, status="succeeded")


def refund_object(refund: Payment, payment: Payment, status: str, **extra) -> dict:
    return {
        "id": refund.stripe_id,
        "object": "refund",
        "amount": refund.amount_minor,
        "payment_intent": payment.stripe_id,
        "status": status,
        **extra,
    }


def test_a_pending_refund_counts_and_webhooks_bring_its_status_up_to_date(
    fake_stripe, card_payment, alice, client, django_capture_on_commit_callbacks
):
    fake_stripe.refund_status = "pending"
    refund = refunds.refund_payment(payment=card_payment, amount_minor=20000, actor=alice)
    invoice = Invoice.objects.get(pk=card_payment.invoice_id)
    assert (refund.status, refund.refund_of, invoice.paid_minor, invoice.refunded_minor) == (
        "pending",
        card_payment,
        30000,
        20000,
    )
    assert refunds.refundable_minor(card_payment) == 30000

    post_event(client, event("refund.updated", refund_object(refund, card_payment, "succeeded")))
    refund.refresh_from_db()
    invoice.refresh_from_db()
    assert (refund.status, invoice.paid_minor) == ("succeeded", 30000)  # counted once

    with django_capture_on_commit_callbacks(execute=True):
        post_event(
            client,
            event("refund.failed", refund_object(refund, card_payment, "failed", failure_reason="lost_or_stolen_card")),
        )
    refund.refresh_from_db()
    invoice.refresh_from_db()
    assert (refund.status, refund.failure_message) == ("failed", "lost or stolen card")
    # The money did not go back: paid again, nothing refunded, and it can be refunded again.
    assert (invoice.paid_minor, invoice.refunded_minor, invoice.status) == (50000, 0, "paid")
    assert refunds.refundable_minor(card_payment) == 50000
    [alert] = [m for m in mail.outbox if m.to == [alice.email] and m.subject.startswith("Refund failed")]
    assert "lost or stolen card" in alert.body
    # A second delivery of the same news changes nothing and tells no one again.
    post_event(client, event("refund.failed", refund_object(refund, card_payment, "failed")))
    assert Email.objects.filter(key__startswith=f"refund-{refund.pk}-failed").count() == 1


def test_a_failed_refund_is_shown_on_the_invoice_and_the_dashboard(
    fake_stripe, card_payment, alice, client, owner_client, workspace
):
    fake_stripe.refund_status = "pending"
    refund = refunds.refund_payment(payment=card_payment, amount_minor=5000, actor=alice)
    post_event(client, event("refund.failed", refund_object(refund, card_payment, "failed", failure_reason="unknown")))
    page = owner_client.get(
        reverse("billing:invoice_detail", args=[workspace.slug, card_payment.invoice_id])
    ).content.decode()
    assert "Refund failed" in page and "unknown" in page
    dashboard = owner_client.get(reverse("dashboard", args=[workspace.slug])).content.decode()
    assert "Failed refunds" in dashboard and "Refund of £50.00 failed" in dashboard


def test_a_canceled_refund_no_longer_counts(fake_stripe, card_payment, alice, client):
    fake_stripe.refund_status = "pending"
    refund = refunds.refund_payment(payment=card_payment, amount_minor=5000, actor=alice)
    post_event(client, event("charge.refund.updated", refund_object(refund, card_payment, "canceled")))
    refund.refresh_from_db()
    assert refund.status == "canceled"
    assert Invoice.objects.get(pk=card_payment.invoice_id).paid_minor == 50000
    assert not [m for m in mail.outbox if m.subject.startswith("Refund failed")]


def test_a_refund_made_in_stripes_dashboard_is_recorded_from_refund_created(card_payment, client):
    obj = {"id": "re_dash", "object": "refund", "amount": 1000, "payment_intent": card_payment.stripe_id}
    post_event(client, event("refund.created", {**obj, "status": "succeeded"}))
    post_event(client, event("refund.updated", {**obj, "status": "succeeded"}))
    [refund] = Payment.objects.filter(kind="refund")
    assert (refund.stripe_id, refund.refund_of, refund.status) == ("re_dash", card_payment, "succeeded")
    assert Invoice.objects.get(pk=card_payment.invoice_id).paid_minor == 49000


def test_dunning_never_chases_a_refunded_amount(acme, alice, workspace, django_capture_on_commit_callbacks):
    invoice = open_invoice(acme, amount_minor=100000, auto_charge=True)
    payment = services.record_payment(invoice=invoice, amount_minor=100000, method="bank_transfer", actor=alice)
    refunds.refund_payment(payment=payment, amount_minor=30000, actor=alice, reason="Goodwill")
    invoice.refresh_from_db()
    late = invoice.due_on + timedelta(days=40)
    with django_capture_on_commit_callbacks(execute=True):
        summary = dunning.run_dunning(as_of=late, inline=True)
    assert (summary.charges, summary.overdue_notices, summary.reminders) == (0, 0, 0)
    assert not [m for m in mail.outbox if "unpaid" in m.subject or "overdue" in m.subject.lower()]
    assert invoice.state(on=late) == "refunded" and invoice.balance_minor == 30000 and invoice.owed_minor == 0


def test_a_part_paid_invoice_is_chased_only_for_what_was_never_paid(acme, alice, django_capture_on_commit_callbacks):
    invoice = open_invoice(acme, amount_minor=100000)
    payment = services.record_payment(invoice=invoice, amount_minor=60000, method="bank_transfer", actor=alice)
    refunds.refund_payment(payment=payment, amount_minor=20000, actor=alice)
    invoice.refresh_from_db()
    assert (invoice.balance_minor, invoice.owed_minor) == (60000, 40000)
    with django_capture_on_commit_callbacks(execute=True):
        dunning.run_dunning(as_of=invoice.due_on + timedelta(days=1), inline=True)
    [notice] = [m for m in mail.outbox if m.to == ["ap@acme.example"]]
    assert "(£400.00)" in notice.subject  # not the £600 balance: £200 of it was refunded


def test_the_consultant_can_ask_for_a_refund_back_and_dunning_then_chases_it(
    acme, alice, workspace, owner_client, django_capture_on_commit_callbacks
):
    invoice = open_invoice(acme, amount_minor=100000)
    payment = services.record_payment(invoice=invoice, amount_minor=100000, method="bank_transfer", actor=alice)
    refunds.refund_payment(payment=payment, amount_minor=30000, actor=alice)
    owner_client.post(reverse("billing:invoice_ask_refund_back", args=[workspace.slug, invoice.pk]))
    invoice.refresh_from_db()
    assert (invoice.status, invoice.owed_minor, invoice.refunded_minor) == ("open", 30000, 0)
    with django_capture_on_commit_callbacks(execute=True):
        dunning.run_dunning(as_of=invoice.due_on + timedelta(days=1), inline=True)
    assert [m.subject for m in mail.outbox if m.to == ["ap@acme.example"]] == [
        f"Invoice {invoice.number} is overdue (£300.00)"
    ]


def test_the_migration_links_refunds_recorded_with_a_note_and_stops_chasing_them(acme):
    invoice = open_invoice(acme, amount_minor=100000)
    payment = services.record_payment(invoice=invoice, amount_minor=100000, method="bank_transfer")
    # As the code before this migration left it: linked by text, the invoice open again.
    old = Payment.objects.create(
        workspace=acme.workspace,
        invoice=invoice,
        client=acme,
        kind="refund",
        status="succeeded",
        method="bank_transfer",
        amount_minor=40000,
        currency="GBP",
        note=f"Refund of payment #{payment.pk}: Goodwill",
    )
    Invoice.objects.filter(pk=invoice.pk).update(paid_minor=60000, refunded_minor=0, status="open", paid_at=None)
    with connection.cursor() as cursor:
        cursor.execute(money_path.LINK_REFUNDS)
        cursor.execute(money_path.COUNT_REFUNDS)
    old.refresh_from_db()
    invoice.refresh_from_db()
    assert old.refund_of == payment
    assert (invoice.refunded_minor, invoice.status, invoice.owed_minor) == (40000, "paid", 0)
    assert invoice.paid_at is not None
