"""Overpayment: two successful charges for one invoice leave a credit balance that is shown and
told to the consultant (no second receipt), who refunds the excess in one click or applies it to
the client's next invoice, with totals that add up."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from billing import charges, dunning, refunds, services, stripe_api
from billing.models import Invoice, Payment
from retainers.models import Email
from tests import factories
from tests.billing.conftest import open_invoice, save_card

pytestmark = pytest.mark.django_db


def succeeded(invoice: Invoice, pi_id: str, amount: int) -> dict:
    return {
        "id": pi_id,
        "status": "succeeded",
        "amount": amount,
        "amount_received": amount,
        "metadata": {"invoice_id": str(invoice.pk), "workspace_id": str(invoice.workspace_id)},
    }


@pytest.fixture
def overpaid(fake_stripe, use_stripe, acme, django_capture_on_commit_callbacks) -> Invoice:
    """108,000 invoiced; the saved card charged, and the pay link paid too: 216,000 received."""
    use_stripe(fake_stripe.url)
    save_card(acme, customer_id="cus_acme", payment_method_id=fake_stripe.add_card())
    invoice = open_invoice(acme, amount_minor=108000, auto_charge=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert charges.charge_invoice(invoice) is True
        # The client also paid through the pay link before the charge settled (a real PaymentIntent).
        link = fake_stripe._new(
            "pi",
            "payment_intent",
            status="succeeded",
            amount=108000,
            amount_received=108000,
            currency="gbp",
            latest_charge="ch_link",
        )
        charges.record_charge_success(invoice.pk, intent=succeeded(invoice, link["id"], 108000), attempt=None)
    return Invoice.objects.select_related("workspace", "client").get(pk=invoice.pk)


def test_a_second_payment_leaves_a_credit_balance_tells_the_consultant_and_sends_no_second_receipt(
    overpaid, workspace, alice, bob, owner_client
):
    assert (overpaid.paid_minor, overpaid.balance_minor, overpaid.credit_balance_minor) == (216000, -108000, 108000)
    assert overpaid.state(on=workspace.today()) == "overpaid"
    receipts = [m for m in mail.outbox if m.to == ["ap@acme.example"]]
    assert [m.subject.split(":")[0] for m in receipts] == ["Receipt"]  # one receipt, for the payment that paid it
    [alert] = [m for m in mail.outbox if m.to == [alice.email]]
    assert alert.subject == f"Overpaid: Acme Corp, invoice {overpaid.number} has a credit balance of £1,080.00"
    assert "No receipt was sent" in alert.body
    assert not [m for m in mail.outbox if m.to == [bob.email]]  # members are not told about money

    page = owner_client.get(reverse("billing:invoice_detail", args=[workspace.slug, overpaid.pk])).content.decode()
    assert ">Overpaid</span>" in page and "Credit balance" in page and "paid £1,080.00 more" in page
    dashboard = owner_client.get(reverse("dashboard", args=[workspace.slug])).content.decode()
    assert "Credit balances" in dashboard and "Overpaid: £1,080.00 to refund or apply" in dashboard


def test_the_excess_is_refunded_in_one_click_from_the_payment_that_overpaid(
    overpaid, fake_stripe, workspace, owner_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            reverse("billing:invoice_refund_excess", args=[workspace.slug, overpaid.pk]), follow=True
        )
    assert "The overpayment of £1,080.00 is being refunded." in response.content.decode()
    [refund] = Payment.objects.filter(kind="refund")
    newest = Payment.objects.filter(kind="payment").order_by("-created_at", "-pk").first()
    assert (refund.amount_minor, refund.status, refund.refund_of) == (108000, "succeeded", newest)
    [stripe_refund] = fake_stripe.of_type("refund")
    assert stripe_refund["payment_intent"] == newest.stripe_id and stripe_refund["amount"] == 108000
    overpaid.refresh_from_db()
    assert (overpaid.paid_minor, overpaid.balance_minor, overpaid.status) == (108000, 0, "paid")
    assert overpaid.state(on=workspace.today()) == "paid"
    # A second click has nothing to refund.
    response = owner_client.post(
        reverse("billing:invoice_refund_excess", args=[workspace.slug, overpaid.pk]), follow=True
    )
    assert "no credit balance left to refund" in response.content.decode()
    assert len(fake_stripe.of_type("refund")) == 1


def test_refund_excess_returns_what_it_refunded(overpaid, fake_stripe, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        done = refunds.refund_excess(invoice=overpaid, actor=None)
    [refund] = Payment.objects.filter(kind="refund")
    assert (done.refunds, done.refunded_minor, done.failed_minor, done.currency) == ([refund], 108000, 0, "GBP")


def test_a_refund_of_the_excess_that_partly_fails_says_what_went_back_and_what_did_not(
    overpaid, fake_stripe, workspace, owner_client, django_capture_on_commit_callbacks
):
    """Paid three times: the excess (£1,580) comes back from the newest payment (£500, refunded)
    and the one before it (£1,080, which Stripe fails). The message names each part, not the sum."""
    third = fake_stripe._new(
        "pi", "payment_intent", status="succeeded", amount=50000, amount_received=50000, currency="gbp"
    )
    third["latest_charge"] = "ch_third"
    with django_capture_on_commit_callbacks(execute=True):
        charges.record_charge_success(overpaid.pk, intent=succeeded(overpaid, third["id"], 50000), attempt=None)
    before = Payment.objects.filter(kind="payment", status="succeeded").order_by("-created_at", "-pk")
    newest, middle = before[0], before[1]
    assert newest.stripe_id == third["id"]
    fake_stripe.refund_statuses[middle.stripe_id] = "failed"
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            reverse("billing:invoice_refund_excess", args=[workspace.slug, overpaid.pk]), follow=True
        )
    page = response.content.decode()
    assert "£500.00 is being refunded, but the refund of £1,080.00 failed: see the payments below." in page
    assert "The refund of £1,580.00 failed" not in page
    refunds_made = {r.refund_of_id: (r.amount_minor, r.status) for r in Payment.objects.filter(kind="refund")}
    assert refunds_made == {newest.pk: (50000, "succeeded"), middle.pk: (108000, "failed")}
    overpaid.refresh_from_db()
    assert overpaid.credit_balance_minor == 108000  # the failed part is still a credit balance


def test_the_credit_goes_on_the_clients_open_invoice_and_totals_add_up(
    overpaid, acme, workspace, owner_client, django_capture_on_commit_callbacks
):
    later = open_invoice(acme, amount_minor=150000)
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("billing:invoice_apply_credit", args=[workspace.slug, overpaid.pk]))
    overpaid.refresh_from_db()
    later.refresh_from_db()
    assert (overpaid.paid_minor, overpaid.balance_minor, overpaid.carry_credit_minor) == (108000, 0, 0)
    assert (later.paid_minor, later.owed_minor, later.state(on=workspace.today())) == (108000, 42000, "part_paid")
    moved_out = Payment.objects.get(invoice=overpaid, method="credit")
    moved_in = Payment.objects.get(invoice=later, method="credit")
    assert (moved_out.kind, moved_out.amount_minor, moved_in.kind, moved_in.credit_from) == (
        "refund",
        108000,
        "payment",
        moved_out,
    )
    # No money moved: what the two invoices were paid still adds up to what the client paid.
    assert overpaid.paid_minor + later.paid_minor == 216000
    # The money moved on is no longer refundable from the payment that overpaid.
    assert sum(refunds.refundable_minor(p) for p in Payment.objects.filter(invoice=overpaid, kind="payment")) == 108000


def test_with_no_open_invoice_the_credit_is_taken_off_the_next_invoice_issued(
    overpaid, acme, workspace, owner_client, django_capture_on_commit_callbacks
):
    response = owner_client.post(
        reverse("billing:invoice_apply_credit", args=[workspace.slug, overpaid.pk]), follow=True
    )
    assert "£1,080.00 of credit will be taken off Acme Corp&#x27;s next invoice." in response.content.decode()
    overpaid.refresh_from_db()
    assert overpaid.carry_credit_minor == 108000
    dashboard = owner_client.get(reverse("dashboard", args=[workspace.slug])).content.decode()
    assert "Credit balances" not in dashboard  # decided: no longer waiting on the consultant

    factories.make_retainer(workspace=workspace, client=acme, starts_on=date(2026, 3, 1), price_minor=80000)
    [next_id] = services.bill_workspace(workspace_id=workspace.pk, as_of=date(2026, 3, 1), deliver=False).invoices
    following = Invoice.objects.get(pk=next_id)
    overpaid.refresh_from_db()
    # 80,000 of the credit pays the new invoice; 28,000 waits for the one after.
    assert (following.paid_minor, following.status) == (80000, "paid")
    assert (overpaid.paid_minor, overpaid.carry_credit_minor, overpaid.credit_balance_minor) == (136000, 28000, 28000)

    manual = services.create_invoice(client=acme, lines=[("Workshop", Decimal("1"), 50000)])
    manual = services.issue_invoice(invoice=manual, actor=None)
    overpaid.refresh_from_db()
    assert (manual.paid_minor, manual.owed_minor, manual.status) == (28000, 22000, "open")
    assert (overpaid.paid_minor, overpaid.carry_credit_minor, overpaid.balance_minor) == (108000, 0, 0)
    assert overpaid.paid_minor + following.paid_minor + manual.paid_minor == 216000
    assert Email.objects.filter(key__contains="overpaid").count() == 1  # the alert was sent once


def test_a_charge_in_flight_when_the_invoice_is_paid_by_hand_is_still_settled_and_flagged(
    fake_stripe, use_stripe, acme, alice, django_capture_on_commit_callbacks
):
    use_stripe(fake_stripe.url, timeout=0.5)
    save_card(acme, customer_id="cus_acme", payment_method_id=fake_stripe.add_card())
    invoice = open_invoice(acme, amount_minor=108000, auto_charge=True)
    fake_stripe.script("POST", "/v1/payment_intents", "timeout", delay=2)  # charged; the answer is lost
    with pytest.raises(stripe_api.StripeUnavailable):
        charges.charge_invoice(invoice)
    services.record_payment(invoice=invoice, amount_minor=108000, method="bank_transfer", actor=alice)
    with (
        time_machine.travel(timezone.now() + charges.STALE_PENDING_AFTER + timedelta(minutes=1)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert dunning.retry_due_charges().charges == 1
    invoice.refresh_from_db()
    assert (invoice.paid_minor, invoice.credit_balance_minor) == (216000, 108000)
    assert not Payment.objects.filter(invoice=invoice, status="pending").exists()
    assert [m.subject.split(":")[0] for m in mail.outbox if m.to == [alice.email]] == ["Overpaid"]
    assert not [m for m in mail.outbox if m.to == ["ap@acme.example"]]  # no receipt for money not owed
