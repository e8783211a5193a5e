"""Refunds: partial or full, through Stripe for card payments (once per key), recorded for transfers."""

from __future__ import annotations

import pytest

from billing import charges, refunds, services
from billing.models import Payment
from billing.services import BillingError
from tests.billing.conftest import ACCOUNT, localstripe_card, open_invoice, save_card

pytestmark = pytest.mark.django_db


def card_payment(acme, *, amount_minor: int = 50000) -> Payment:
    invoice = open_invoice(acme, amount_minor=amount_minor, auto_charge=True)
    assert charges.charge_invoice(invoice) is True
    return Payment.objects.get(invoice=invoice, status="succeeded")


def test_partial_then_full_refund_through_localstripe(localstripe, use_stripe, acme, alice):
    use_stripe(localstripe)
    customer_id, pm_id = localstripe_card(localstripe)
    save_card(acme, customer_id=customer_id, payment_method_id=pm_id)
    payment = card_payment(acme)
    invoice = payment.invoice

    first = refunds.refund_payment(payment=payment, amount_minor=20000, actor=alice, reason="Two hours not used")
    invoice.refresh_from_db()
    assert (first.kind, first.status, first.amount_minor, first.recorded_by) == ("refund", "succeeded", 20000, alice)
    assert first.stripe_id.startswith("re_") and first.note == "Two hours not used" and first.refund_of == payment
    # Refunded money is not asked back: the invoice stays settled, its state says "refunded".
    assert (invoice.status, invoice.paid_minor, invoice.refunded_minor) == ("paid", 30000, 20000)
    assert invoice.state(on=invoice.workspace.today()) == "refunded" and invoice.owed_minor == 0
    assert refunds.refundable_minor(payment) == 30000

    rest = refunds.refund_payment(payment=payment, amount_minor=30000, actor=alice)
    invoice.refresh_from_db()
    assert rest.stripe_id != first.stripe_id
    assert (invoice.status, invoice.paid_minor, invoice.refunded_minor) == ("paid", 0, 50000)
    assert refunds.refundable_minor(payment) == 0
    with pytest.raises(BillingError):
        refunds.refund_payment(payment=payment, amount_minor=1, actor=alice)


@pytest.mark.parametrize("amount", [0, -5, 50001])
def test_refund_of_a_bad_amount_is_refused_without_calling_stripe(amount, fake_stripe, use_stripe, acme, alice):
    use_stripe(fake_stripe.url)
    save_card(acme, customer_id="cus_acme", payment_method_id=fake_stripe.add_card())
    payment = card_payment(acme)
    with pytest.raises(BillingError) as error:
        refunds.refund_payment(payment=payment, amount_minor=amount, actor=alice)
    assert error.value.field == "amount"
    assert fake_stripe.requests_to("POST", "/v1/refunds") == []


def test_refund_keys_name_the_payment_and_the_refund_number(fake_stripe, use_stripe, acme, alice):
    use_stripe(fake_stripe.url)
    save_card(acme, customer_id="cus_acme", payment_method_id=fake_stripe.add_card())
    payment = card_payment(acme)
    refunds.refund_payment(payment=payment, amount_minor=1000, actor=alice)
    refunds.refund_payment(payment=payment, amount_minor=2000, actor=alice)
    first, second = fake_stripe.requests_to("POST", "/v1/refunds")
    assert (first.idempotency_key, second.idempotency_key) == (
        f"payment-{payment.pk}-refund-1",
        f"payment-{payment.pk}-refund-2",
    )
    assert first.account == second.account == ACCOUNT
    assert first.params["payment_intent"] == payment.stripe_id and first.params["amount"] == "1000"
    assert first.params["metadata"]["invoice_id"] == str(payment.invoice_id)


def test_refund_whose_answer_was_lost_is_refunded_once_when_tried_again(fake_stripe, use_stripe, acme, alice):
    use_stripe(fake_stripe.url, timeout=0.5)
    save_card(acme, customer_id="cus_acme", payment_method_id=fake_stripe.add_card())
    payment = card_payment(acme)
    fake_stripe.script("POST", "/v1/refunds", "timeout", delay=2)
    with pytest.raises(BillingError, match="try again"):
        refunds.refund_payment(payment=payment, amount_minor=5000, actor=alice)
    assert not Payment.objects.filter(kind="refund").exists()
    refund = refunds.refund_payment(payment=payment, amount_minor=5000, actor=alice)
    assert len(fake_stripe.of_type("refund")) == 1 and refund.stripe_id == fake_stripe.of_type("refund")[0]["id"]
    payment.invoice.refresh_from_db()
    assert payment.invoice.paid_minor == 45000


def test_refund_stripe_refuses_is_a_billing_error_and_records_nothing(fake_stripe, use_stripe, acme, alice):
    use_stripe(fake_stripe.url)
    save_card(acme, customer_id="cus_acme", payment_method_id=fake_stripe.add_card())
    payment = card_payment(acme)
    fake_stripe.script(
        "POST",
        "/v1/refunds",
        "status",
        status=400,
        body={"error": {"type": "invalid_request_error", "message": "Charge ch_1 has been disputed."}},
    )
    with pytest.raises(BillingError, match="disputed"):
        refunds.refund_payment(payment=payment, amount_minor=5000, actor=alice)
    assert not Payment.objects.filter(kind="refund").exists()


def test_bank_transfer_refund_is_recorded_only(fake_stripe, use_stripe, acme, alice):
    use_stripe(fake_stripe.url)
    invoice = open_invoice(acme, amount_minor=80000)
    payment = services.record_payment(invoice=invoice, amount_minor=80000, method="bank_transfer", actor=alice)
    invoice.refresh_from_db()
    assert invoice.status == "paid"
    refund = refunds.refund_payment(payment=payment, amount_minor=80000, actor=alice, reason="Paid twice")
    invoice.refresh_from_db()
    assert (refund.method, refund.stripe_id, refund.amount_minor) == ("bank_transfer", "", 80000)
    assert (invoice.status, invoice.paid_minor, invoice.owed_minor) == ("paid", 0, 0)  # refunded, not owed
    assert fake_stripe.requests == []


def test_only_received_payments_can_be_refunded(acme, alice):
    invoice = open_invoice(acme)
    failed = Payment.objects.create(
        workspace=acme.workspace,
        invoice=invoice,
        client=acme,
        status="failed",
        method="card",
        amount_minor=100,
        currency="GBP",
    )
    with pytest.raises(BillingError):
        refunds.refund_payment(payment=failed, amount_minor=100, actor=alice)


def test_card_refund_without_stripe_is_refused(settings, acme, alice):
    invoice = open_invoice(acme)
    payment = services.record_payment(invoice=invoice, amount_minor=1000, method="card", stripe_id="pi_old")
    with pytest.raises(BillingError, match="Stripe is not connected"):
        refunds.refund_payment(payment=payment, amount_minor=1000, actor=alice)
