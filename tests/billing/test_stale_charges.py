"""A charge whose outcome is unknown is never made twice: its PaymentIntent is written on the
attempt as soon as Stripe answers and retrieved on retry; a lost answer is found by our metadata
once Stripe may have forgotten the idempotency key; only a new attempt gets a new key."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from billing import charges, dunning, stripe_api
from billing.models import Invoice, Payment
from tests.billing.conftest import open_invoice, save_card

pytestmark = pytest.mark.django_db


@pytest.fixture
def card(fake_stripe, use_stripe, acme) -> str:
    use_stripe(fake_stripe.url, timeout=0.5)
    pm = fake_stripe.add_card()
    save_card(acme, customer_id="cus_acme", payment_method_id=pm)
    return pm


def test_a_charge_whose_answer_was_lost_is_found_a_day_later_not_made_again(
    fake_stripe, card, acme, settings, django_capture_on_commit_callbacks
):
    settings.DAILY_JOBS_LOCAL_HOUR = 0  # the next day's run, whatever the hour the test runs at
    invoice = open_invoice(acme, amount_minor=108000, auto_charge=True)
    fake_stripe.script("POST", "/v1/payment_intents", "timeout", delay=2)  # Stripe charged; the answer is lost
    with pytest.raises(stripe_api.StripeUnavailable):
        charges.charge_invoice(invoice)
    [pending] = Payment.objects.filter(invoice=invoice)
    assert (pending.status, pending.stripe_id) == ("pending", "")

    # A day later Stripe no longer remembers the key: sending the request again would charge twice.
    fake_stripe.forget_idempotency_keys()
    with (
        time_machine.travel(timezone.now() + timedelta(days=1)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        summary = dunning.run_dunning(inline=True)
    assert summary.charges == 1

    assert len(fake_stripe.of_type("payment_intent")) == 1  # Stripe saw one PaymentIntent
    assert len(fake_stripe.requests_to("POST", "/v1/payment_intents")) == 1
    [listing] = fake_stripe.requests_to("GET", "/v1/payment_intents")
    assert listing.params["customer"] == "cus_acme"
    invoice.refresh_from_db()
    [payment] = Payment.objects.filter(invoice=invoice)
    assert (payment.status, payment.amount_minor, payment.stripe_id) == (
        "succeeded",
        108000,
        fake_stripe.of_type("payment_intent")[0]["id"],
    )
    assert (invoice.status, invoice.paid_minor, invoice.charge_attempts) == ("paid", 108000, 1)


def test_a_lost_request_that_never_reached_stripe_is_sent_once_a_day_later(fake_stripe, card, acme):
    invoice = open_invoice(acme, amount_minor=50000, auto_charge=True)
    fake_stripe.script("POST", "/v1/payment_intents", "timeout_before", delay=2)  # nothing made
    with pytest.raises(stripe_api.StripeUnavailable):
        charges.charge_invoice(invoice)
    fake_stripe.forget_idempotency_keys()
    with time_machine.travel(timezone.now() + timedelta(days=1)):
        assert charges.charge_invoice(invoice) is True
    first, second = fake_stripe.requests_to("POST", "/v1/payment_intents")
    assert first.idempotency_key == second.idempotency_key == f"invoice-{invoice.pk}-charge-1"
    assert len(fake_stripe.of_type("payment_intent")) == 1
    assert Invoice.objects.get(pk=invoice.pk).status == "paid"


def test_the_payment_intent_is_written_on_the_attempt_and_a_retry_retrieves_it(fake_stripe, card, acme):
    fake_stripe.processing.add(card)  # e.g. a bank debit: Stripe answers "processing"
    invoice = open_invoice(acme, amount_minor=50000, auto_charge=True)
    assert charges.charge_invoice(invoice) is True
    [pending] = Payment.objects.filter(invoice=invoice)
    [intent] = fake_stripe.of_type("payment_intent")
    assert (pending.status, pending.stripe_id) == ("pending", intent["id"])

    intent.update(status="succeeded", amount_received=50000)  # settled while no webhook reached us
    with time_machine.travel(timezone.now() + charges.STALE_PENDING_AFTER + timedelta(minutes=1)):
        assert dunning.retry_due_charges().charges == 1
    assert len(fake_stripe.requests_to("POST", "/v1/payment_intents")) == 1
    [retrieved] = fake_stripe.requests_to("GET", f"/v1/payment_intents/{intent['id']}")
    assert retrieved.idempotency_key is None
    pending.refresh_from_db()
    assert pending.status == "succeeded"
    assert Invoice.objects.get(pk=invoice.pk).status == "paid"


def test_only_a_new_attempt_after_a_definite_failure_gets_a_new_key(fake_stripe, card, acme):
    fake_stripe.declining.add(card)
    invoice = open_invoice(acme, auto_charge=True)
    charges.charge_invoice(invoice)
    [failed] = Payment.objects.filter(invoice=invoice)
    assert failed.status == "failed" and failed.stripe_id.startswith("pi_")  # the attempt's PaymentIntent
    charges.charge_invoice(invoice, retry_now=True)
    keys = [r.idempotency_key for r in fake_stripe.requests_to("POST", "/v1/payment_intents")]
    assert keys == [f"invoice-{invoice.pk}-charge-1", f"invoice-{invoice.pk}-charge-2"]
