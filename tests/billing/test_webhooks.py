"""Stripe's webhook: verified on the raw body, each event applied once, in any order."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.test import Client as Browser

from billing import charges, stripe_api
from billing.models import Invoice, Payment, StripeCustomer, StripeEvent
from retainers.models import Email
from tests import factories
from tests.billing.conftest import ACCOUNT, event, open_invoice, post_event, save_card, sign

pytestmark = pytest.mark.django_db


def intent(invoice: Invoice, *, pi_id: str = "pi_1", amount: int | None = None, status: str = "succeeded", **extra):
    return {
        "id": pi_id,
        "object": "payment_intent",
        "status": status,
        "amount": amount or invoice.total_minor,
        "amount_received": (amount or invoice.total_minor) if status == "succeeded" else 0,
        "currency": invoice.currency.lower(),
        "metadata": {
            "invoice_id": str(invoice.pk),
            "workspace_id": str(invoice.workspace_id),
            **extra.pop("metadata", {}),
        },
        **extra,
    }


def failed_intent(invoice: Invoice, *, pi_id: str = "pi_1", charge: str = "ch_1", **extra):
    return intent(
        invoice,
        pi_id=pi_id,
        status="requires_payment_method",
        last_payment_error={"charge": charge, "code": "card_declined", "message": "Your card was declined."},
        **extra,
    )


@pytest.fixture
def connected(use_stripe, fake_stripe):
    use_stripe(fake_stripe.url)
    return fake_stripe


# --- Verification ------------------------------------------------------------------------


def test_bad_signature_is_rejected_and_nothing_is_stored(connected, acme, client):
    invoice = open_invoice(acme)
    response = post_event(client, event("payment_intent.succeeded", intent(invoice)), secret="whsec_wrong")
    assert response.status_code == 400
    assert not StripeEvent.objects.exists() and not Payment.objects.exists()
    invoice.refresh_from_db()
    assert invoice.status == "open"


def test_body_changed_after_signing_is_rejected(connected, acme, client):
    invoice = open_invoice(acme)
    body = json.dumps(event("payment_intent.succeeded", intent(invoice))).encode()
    header = sign(body)
    tampered = body.replace(b'"amount_received": 120000', b'"amount_received": 999999')
    response = client.post("/stripe/webhook/", tampered, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)
    assert response.status_code == 400 and not StripeEvent.objects.exists()


def test_stale_timestamp_is_rejected(connected, acme, client):
    invoice = open_invoice(acme)
    response = post_event(client, event("payment_intent.succeeded", intent(invoice)), timestamp=int(time.time()) - 301)
    assert response.status_code == 400
    assert not StripeEvent.objects.exists() and not Payment.objects.exists()


def test_missing_signature_is_rejected(client):
    response = client.post("/stripe/webhook/", b"{}", content_type="application/json")
    assert response.status_code == 400


def test_only_post_is_allowed(client):
    assert client.get("/stripe/webhook/").status_code == 405
    assert client.put("/stripe/webhook/", b"{}").status_code == 405


def test_oversized_body_is_refused_before_it_is_read(client):
    body = b"{" + b" " * (256 * 1024) + b"}"
    response = client.post("/stripe/webhook/", body, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(body))
    assert response.status_code == 413 and not StripeEvent.objects.exists()


def test_webhook_needs_no_csrf_token(connected, acme):
    invoice = open_invoice(acme)
    browser = Browser(enforce_csrf_checks=True)
    assert post_event(browser, event("payment_intent.succeeded", intent(invoice))).status_code == 200


# --- Effects, once ---------------------------------------------------------------------------


def test_payment_succeeded_marks_the_invoice_paid_once(connected, acme, client, django_capture_on_commit_callbacks):
    invoice = open_invoice(acme)
    evt = event("payment_intent.succeeded", intent(invoice))
    with django_capture_on_commit_callbacks(execute=True):
        assert post_event(client, evt).content == b"processed"
        assert post_event(client, evt).content == b"duplicate"
    invoice.refresh_from_db()
    assert invoice.status == "paid" and invoice.paid_minor == invoice.total_minor
    [payment] = Payment.objects.all()
    assert (payment.stripe_id, payment.method, payment.amount_minor) == ("pi_1", "card", invoice.total_minor)
    assert StripeEvent.objects.get().account == ACCOUNT
    assert [m.subject for m in mail.outbox] == [f"Receipt: £1,200.00 received for invoice {invoice.number}"]


def test_same_payment_in_two_events_records_one_payment(connected, acme, client, django_capture_on_commit_callbacks):
    """checkout.session.completed and payment_intent.succeeded both announce a pay-link payment."""
    invoice = open_invoice(acme)
    session = {
        "id": "cs_1",
        "object": "checkout.session",
        "mode": "payment",
        "payment_status": "paid",
        "payment_intent": "pi_9",
        "amount_total": invoice.total_minor,
        "metadata": {"invoice_id": str(invoice.pk), "workspace_id": str(invoice.workspace_id)},
    }
    with django_capture_on_commit_callbacks(execute=True):  # the receipt goes once the PDF says PAID
        assert post_event(client, event("checkout.session.completed", session)).status_code == 200
        assert post_event(client, event("payment_intent.succeeded", intent(invoice, pi_id="pi_9"))).status_code == 200
    assert Payment.objects.count() == 1 and StripeEvent.objects.count() == 2
    invoice.refresh_from_db()
    assert invoice.status == "paid"
    assert Email.objects.filter(key__endswith="-receipt").count() == 1


@pytest.mark.django_db(transaction=True)
def test_same_event_delivered_twice_at_once_has_one_effect(use_stripe, fake_stripe, workspace):
    use_stripe(fake_stripe.url)
    acme = factories.ClientFactory(workspace=workspace, name="Acme Corp", billing_email="ap@acme.example")
    invoice = open_invoice(acme)
    evt = event("payment_intent.succeeded", intent(invoice))
    barrier = threading.Barrier(2)
    answers: list[bytes] = []

    def deliver() -> None:
        try:
            barrier.wait()
            answers.append(post_event(Browser(), evt).content)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [b"duplicate", b"processed"]
    assert StripeEvent.objects.count() == 1
    assert Payment.objects.count() == 1
    invoice.refresh_from_db()
    assert invoice.paid_minor == invoice.total_minor and invoice.status == "paid"
    assert Email.objects.filter(key__endswith="-receipt").count() == 1


# --- Out of order -----------------------------------------------------------------------------


def test_failure_after_success_leaves_the_invoice_paid(connected, acme, client, django_capture_on_commit_callbacks):
    invoice = open_invoice(acme)
    with django_capture_on_commit_callbacks(execute=True):
        post_event(client, event("payment_intent.succeeded", intent(invoice)))
        post_event(client, event("payment_intent.payment_failed", failed_intent(invoice)))
    invoice.refresh_from_db()
    assert invoice.status == "paid" and invoice.paid_minor == invoice.total_minor
    assert invoice.next_charge_on is None
    assert [m.subject.split(":")[0] for m in mail.outbox] == ["Receipt"]


def test_success_after_failure_marks_the_invoice_paid(connected, acme, client):
    invoice = open_invoice(acme)
    post_event(client, event("payment_intent.payment_failed", failed_intent(invoice)))
    invoice.refresh_from_db()
    assert invoice.status == "open"
    assert list(Payment.objects.values_list("status", "stripe_id")) == [("failed", "ch_1")]
    post_event(client, event("payment_intent.succeeded", intent(invoice)))
    invoice.refresh_from_db()
    assert invoice.status == "paid"
    assert sorted(Payment.objects.values_list("status", "stripe_id")) == [("failed", "ch_1"), ("succeeded", "pi_1")]


def test_success_of_an_off_session_charge_before_the_task_hears_back_settles_it(
    connected, acme, client, django_capture_on_commit_callbacks
):
    """The task's answer was lost (a timeout); the webhook brings the outcome of the attempt."""
    save_card(acme, customer_id="cus_acme", payment_method_id=connected.add_card())
    invoice = open_invoice(acme, auto_charge=True)
    connected.script("POST", "/v1/payment_intents", "timeout", delay=2)
    with pytest.raises(stripe_api.StripeUnavailable):
        charges.charge_invoice(invoice)
    [pi] = connected.of_type("payment_intent")
    assert Payment.objects.get().status == "pending"
    with django_capture_on_commit_callbacks(execute=True):
        post_event(client, event("payment_intent.succeeded", pi))
    assert list(Payment.objects.values_list("status", "stripe_id")) == [("succeeded", pi["id"])]
    # The retry then learns the same outcome and records nothing more.
    assert charges.charge_invoice(invoice) is True
    assert Payment.objects.count() == 1 and len(mail.outbox) == 1


def test_failure_of_an_off_session_attempt_by_webhook_schedules_the_retry_once(
    connected, acme, client, alice, django_capture_on_commit_callbacks
):
    pm = connected.add_card()
    connected.declining.add(pm)
    save_card(acme, customer_id="cus_acme", payment_method_id=pm)
    invoice = open_invoice(acme, auto_charge=True)
    connected.script("POST", "/v1/payment_intents", "timeout", delay=2)
    with pytest.raises(stripe_api.StripeUnavailable):
        charges.charge_invoice(invoice)
    [pi] = connected.of_type("payment_intent")
    with django_capture_on_commit_callbacks(execute=True):
        post_event(client, event("payment_intent.payment_failed", pi))
        charges.charge_invoice(invoice)  # the retried task: the replayed decline is already recorded
    invoice.refresh_from_db()
    [failed] = Payment.objects.all()
    assert failed.status == "failed" and failed.stripe_id == pi["id"]  # the attempt keeps its PaymentIntent
    assert invoice.next_charge_on == invoice.workspace.today() + timedelta(days=1)
    assert sorted(m.to[0] for m in mail.outbox) == ["alice@example.com", "ap@acme.example"]


# --- Refunds, disputes, saved cards -------------------------------------------------------------


def test_refund_made_in_stripe_is_recorded_once_and_not_asked_back(connected, acme, client):
    invoice = open_invoice(acme, amount_minor=50000)
    post_event(client, event("payment_intent.succeeded", intent(invoice, pi_id="pi_r")))
    charge = {
        "id": "ch_r",
        "object": "charge",
        "payment_intent": "pi_r",
        "amount": 50000,
        "amount_refunded": 20000,
        "refunds": {
            "object": "list",
            "has_more": False,
            "data": [{"id": "re_1", "amount": 20000, "status": "succeeded", "payment_intent": "pi_r"}],
        },
    }
    post_event(client, event("charge.refunded", charge))
    post_event(client, event("charge.refunded", charge))  # a second delivery, another event id
    invoice.refresh_from_db()
    # The balance reopens for display; the refund is not owed again, so the invoice stays settled.
    assert (invoice.status, invoice.paid_minor, invoice.refunded_minor) == ("paid", 30000, 20000)
    [refund] = Payment.objects.filter(kind="refund")
    assert (refund.stripe_id, refund.amount_minor, refund.status) == ("re_1", 20000, "succeeded")
    assert refund.refund_of == Payment.objects.get(stripe_id="pi_r")


def test_refund_event_without_the_refund_list_asks_stripe_for_it(connected, acme, client):
    invoice = open_invoice(acme, amount_minor=50000)
    connected.objects["pi_r"] = {
        "id": "pi_r",
        "object": "payment_intent",
        "status": "succeeded",
        "amount_received": 50000,
        "currency": "gbp",
        "latest_charge": "ch_r",
    }
    post_event(client, event("payment_intent.succeeded", intent(invoice, pi_id="pi_r")))
    connected.objects["re_9"] = {
        "id": "re_9",
        "object": "refund",
        "amount": 50000,
        "status": "succeeded",
        "payment_intent": "pi_r",
    }
    response = post_event(
        client, event("charge.refunded", {"id": "ch_r", "object": "charge", "payment_intent": "pi_r"})
    )
    assert response.status_code == 200
    [listing] = connected.requests_to("GET", "/v1/refunds")
    assert listing.account == ACCOUNT and listing.params["payment_intent"] == "pi_r"
    invoice.refresh_from_db()
    assert (invoice.status, invoice.paid_minor, invoice.refunded_minor) == ("paid", 0, 50000)  # refunded, not owed


def test_refund_event_when_stripe_is_down_is_not_stored_so_stripe_sends_it_again(connected, acme, client):
    invoice = open_invoice(acme, amount_minor=50000)
    post_event(client, event("payment_intent.succeeded", intent(invoice, pi_id="pi_r")))
    connected.script("GET", "/v1/refunds", "status", status=500)
    evt = event("charge.refunded", {"id": "ch_r", "object": "charge", "payment_intent": "pi_r"})
    assert post_event(client, evt).status_code == 503
    assert not StripeEvent.objects.filter(event_id=evt["id"]).exists()


def test_dispute_tells_the_consultant(connected, acme, client, alice, django_capture_on_commit_callbacks):
    invoice = open_invoice(acme, amount_minor=50000)
    post_event(client, event("payment_intent.succeeded", intent(invoice, pi_id="pi_d")))
    dispute = {
        "id": "dp_1",
        "object": "dispute",
        "amount": 50000,
        "currency": "gbp",
        "charge": "ch_d",
        "payment_intent": "pi_d",
        "reason": "fraudulent",
        "evidence_details": {"due_by": int(time.time()) + 86400 * 7},
    }
    with django_capture_on_commit_callbacks(execute=True):
        post_event(client, event("charge.dispute.created", dispute))
        post_event(client, event("charge.dispute.created", dispute))
    [message] = [m for m in mail.outbox if m.to == [alice.email]]
    assert message.subject == f"Payment disputed: £500.00 by Acme Corp, invoice {invoice.number}"
    assert "fraudulent" in message.body and "dp_1" in message.body


def test_setup_session_completed_saves_the_card(connected, acme, client):
    StripeCustomer.objects.create(workspace=acme.workspace, client=acme, customer_id="cus_acme")
    pm = connected.objects[connected.add_card(last4="1881", exp_month=4, exp_year=2031)]
    connected.objects["seti_1"] = {"id": "seti_1", "object": "setup_intent", "payment_method": pm["id"]}
    session = {
        "id": "cs_s",
        "object": "checkout.session",
        "mode": "setup",
        "status": "complete",
        "customer": "cus_acme",
        "setup_intent": "seti_1",
        "metadata": {"client_id": str(acme.pk), "workspace_id": str(acme.workspace_id)},
    }
    assert post_event(client, event("checkout.session.completed", session)).status_code == 200
    saved = StripeCustomer.objects.get(client=acme)
    assert (saved.payment_method_id, saved.card_last4, saved.card_exp) == (pm["id"], "1881", "04/2031")


# --- Whose event --------------------------------------------------------------------------------


def test_event_of_an_unknown_account_is_stored_and_ignored(connected, acme, client):
    invoice = open_invoice(acme)
    response = post_event(client, event("payment_intent.succeeded", intent(invoice), account="acct_someone_else"))
    assert response.content == b"ignored"
    assert StripeEvent.objects.count() == 1 and not Payment.objects.exists()


def test_metadata_naming_another_workspaces_invoice_has_no_effect(connected, acme, client, other_workspace):
    theirs = open_invoice(factories.ClientFactory(workspace=other_workspace))
    response = post_event(client, event("payment_intent.succeeded", intent(theirs)))  # from our account
    assert response.status_code == 200
    theirs.refresh_from_db()
    assert theirs.status == "open" and not Payment.objects.exists()


def test_unhandled_event_types_are_acknowledged(connected, client):
    response = post_event(client, event("customer.created", {"id": "cus_x", "object": "customer"}))
    assert response.status_code == 200 and response.content == b"ignored"
