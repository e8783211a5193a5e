"""Charging saved cards off-session: once per attempt, whatever fails, with the same idempotency key on retry."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail

from billing import charges, paylinks, stripe_api, tasks
from billing.models import Invoice, Payment
from retainers.models import Email
from tests.billing.conftest import ACCOUNT, localstripe_card, open_invoice, save_card

pytestmark = pytest.mark.django_db


def deliver_twice(invoice: Invoice, capture) -> None:
    """The delivery task, run twice as Celery may (and as every task is assumed to be)."""
    with capture(execute=True):
        tasks.deliver_invoice.delay(invoice.pk)
    with capture(execute=True):
        tasks.deliver_invoice.delay(invoice.pk)


def emails_to(address: str) -> list[str]:
    return [m.subject for m in mail.outbox if m.to == [address]]


# --- Against localstripe -----------------------------------------------------------------


def test_auto_charge_succeeds_once_with_receipt_even_when_the_task_runs_twice(
    localstripe, use_stripe, acme, django_capture_on_commit_callbacks
):
    use_stripe(localstripe)
    customer_id, pm_id = localstripe_card(localstripe)
    save_card(acme, customer_id=customer_id, payment_method_id=pm_id)
    invoice = open_invoice(acme, amount_minor=120000, auto_charge=True)

    deliver_twice(invoice, django_capture_on_commit_callbacks)

    invoice.refresh_from_db()
    [payment] = Payment.objects.filter(invoice=invoice)
    assert (payment.status, payment.method, payment.amount_minor) == ("succeeded", "card", 120000)
    assert payment.stripe_id.startswith("pi_")
    assert (invoice.status, invoice.paid_minor, invoice.charge_attempts) == ("paid", 120000, 1)
    # The receipt is the email (with the PDF); the invoice email is not sent as well.
    [receipt] = [m for m in mail.outbox if m.to == ["ap@acme.example"]]
    assert receipt.subject.startswith("Receipt: £1,200.00 received for invoice")
    assert [a[0] for a in receipt.attachments] == [f"{invoice.number}.pdf"]


def test_declined_card_records_a_failed_payment_and_tells_both_sides_once(
    localstripe, use_stripe, acme, alice, bob, django_capture_on_commit_callbacks
):
    use_stripe(localstripe)
    customer_id, pm_id = localstripe_card(localstripe, number="4000000000000341")  # attaches, then declines
    save_card(acme, customer_id=customer_id, payment_method_id=pm_id, last4="0341")
    invoice = open_invoice(acme, auto_charge=True)

    deliver_twice(invoice, django_capture_on_commit_callbacks)

    invoice.refresh_from_db()
    [failed] = Payment.objects.filter(invoice=invoice)
    assert (failed.status, failed.method) == ("failed", "card")
    assert failed.failure_message == "Your card was declined."
    assert invoice.status == "open" and invoice.charge_attempts == 1
    assert invoice.next_charge_on == invoice.workspace.today() + timedelta(days=1)  # retry_days[0]
    assert emails_to("ap@acme.example") == [f"Payment for invoice {invoice.number} failed; we will try again"]
    assert len(emails_to(alice.email)) == 1  # the owner
    assert emails_to(bob.email) == []  # plain members are not told about money
    assert "Your card was declined." in mail.outbox[0].body


def test_client_without_a_saved_card_gets_the_invoice_by_email(
    localstripe, use_stripe, acme, django_capture_on_commit_callbacks
):
    use_stripe(localstripe)
    invoice = open_invoice(acme, auto_charge=True)
    deliver_twice(invoice, django_capture_on_commit_callbacks)
    assert emails_to("ap@acme.example") == [
        f"Invoice {invoice.number} from Northwind Advisory: £1,200.00, due {invoice.due_on:%-d %b %Y}"
    ]
    assert not Payment.objects.exists()


def test_workspace_without_stripe_emails_the_invoice_and_never_calls_stripe(
    fake_stripe, settings, acme, django_capture_on_commit_callbacks
):
    settings.STRIPE_API_BASE = fake_stripe.url  # a secret key but no connected account
    settings.STRIPE_SECRET_KEY = "sk_test_x"
    save_card(acme, customer_id="cus_1", payment_method_id="pm_1")
    invoice = open_invoice(acme, auto_charge=True)
    assert stripe_api.is_configured(invoice.workspace) is False
    deliver_twice(invoice, django_capture_on_commit_callbacks)
    assert len(emails_to("ap@acme.example")) == 1
    assert "invoice" in emails_to("ap@acme.example")[0].lower()
    assert fake_stripe.requests == []
    assert charges.charge_invoice(invoice) is False


# --- Against the fake: retries, idempotency keys, the connected account --------------------


@pytest.mark.parametrize("failure", ["timeout", "server_error"])
def test_charge_retried_by_celery_sends_the_same_idempotency_key_and_charges_once(
    failure, fake_stripe, use_stripe, acme, django_capture_on_commit_callbacks
):
    use_stripe(fake_stripe.url, timeout=0.5)
    save_card(acme, customer_id="cus_acme", payment_method_id=fake_stripe.add_card())
    invoice = open_invoice(acme, amount_minor=50000, auto_charge=True)
    if failure == "timeout":
        fake_stripe.script("POST", "/v1/payment_intents", "timeout", delay=2)  # charged, but the answer is lost
    else:
        fake_stripe.script("POST", "/v1/payment_intents", "status", status=503)

    with django_capture_on_commit_callbacks(execute=True):
        tasks.deliver_invoice.delay(invoice.pk)  # fails, Celery retries (eagerly here), succeeds

    first, retry = fake_stripe.requests_to("POST", "/v1/payment_intents")
    assert first.idempotency_key == retry.idempotency_key == f"invoice-{invoice.pk}-charge-1"
    assert first.params == retry.params
    assert len(fake_stripe.of_type("payment_intent")) == 1
    invoice.refresh_from_db()
    assert invoice.status == "paid" and invoice.charge_attempts == 1
    [payment] = Payment.objects.filter(invoice=invoice)
    assert payment.status == "succeeded" and payment.stripe_id == fake_stripe.of_type("payment_intent")[0]["id"]
    assert Email.objects.filter(key=f"payment-{payment.pk}-receipt").count() == 1


def test_charge_whose_answer_is_lost_stays_pending_and_the_next_try_reuses_the_key(fake_stripe, use_stripe, acme):
    use_stripe(fake_stripe.url, timeout=0.5)
    save_card(acme, customer_id="cus_acme", payment_method_id=fake_stripe.add_card())
    invoice = open_invoice(acme, amount_minor=50000, auto_charge=True)
    fake_stripe.script("POST", "/v1/payment_intents", "timeout", delay=2)

    with pytest.raises(stripe_api.StripeUnavailable):
        charges.charge_invoice(invoice)
    [pending] = Payment.objects.filter(invoice=invoice)
    assert pending.status == "pending" and pending.amount_minor == 50000

    # The balance changes meanwhile (a partial bank transfer): the retry still sends the first request.
    Invoice.objects.filter(pk=invoice.pk).update(paid_minor=10000)
    assert charges.charge_invoice(invoice) is True
    first, retry = fake_stripe.requests_to("POST", "/v1/payment_intents")
    assert first.idempotency_key == retry.idempotency_key and retry.params["amount"] == "50000"
    assert list(Payment.objects.filter(invoice=invoice).values_list("status", flat=True)) == ["succeeded"]


def test_every_call_is_made_on_the_connected_account_with_our_metadata(fake_stripe, use_stripe, acme):
    use_stripe(fake_stripe.url)
    save_card(acme, customer_id="cus_acme", payment_method_id=fake_stripe.add_card())
    invoice = open_invoice(acme, auto_charge=True)
    charges.charge_invoice(invoice)
    [request] = fake_stripe.requests
    assert request.account == ACCOUNT
    assert request.params["metadata"] == {
        "invoice_id": str(invoice.pk),
        "workspace_id": str(invoice.workspace_id),
        "attempt": "1",
    }
    assert request.params["off_session"] == "true" and request.params["confirm"] == "true"
    assert request.params["currency"] == "gbp" and request.params["customer"] == "cus_acme"


def test_card_needing_authentication_asks_the_client_to_pay_by_link_and_stops_retrying(
    fake_stripe, use_stripe, acme, alice, django_capture_on_commit_callbacks
):
    use_stripe(fake_stripe.url)
    pm = fake_stripe.add_card()
    fake_stripe.requiring_action.add(pm)
    save_card(acme, customer_id="cus_acme", payment_method_id=pm)
    invoice = open_invoice(acme, auto_charge=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert charges.charge_invoice(invoice) is True
    invoice.refresh_from_db()
    [failed] = Payment.objects.filter(invoice=invoice)
    assert failed.status == "failed" and "pay with the link" in failed.failure_message
    assert invoice.next_charge_on is None and invoice.overdue_notified_at is not None
    client_mail = [m for m in mail.outbox if m.to == ["ap@acme.example"]]
    assert [m.subject for m in client_mail] == [
        f"Action needed: payment for invoice {invoice.number} failed",
        f"Invoice {invoice.number} is unpaid (£1,200.00)",
    ]
    assert paylinks.pay_url(invoice) in client_mail[0].body


def test_an_invoice_paid_by_hand_is_not_charged_but_emailed(fake_stripe, use_stripe, acme):
    use_stripe(fake_stripe.url)
    save_card(acme, customer_id="cus_acme", payment_method_id=fake_stripe.add_card())
    invoice = open_invoice(acme, auto_charge=True)
    Invoice.objects.filter(pk=invoice.pk).update(status="paid", paid_minor=invoice.total_minor)
    assert charges.charge_invoice(invoice) is False  # the caller emails it ("already paid")
    assert fake_stripe.requests == []
