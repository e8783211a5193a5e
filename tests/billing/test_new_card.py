"""After the final failed attempt, a newly saved card is charged for the client's open auto-charge
invoices, once; and the consultant's "charge now" makes one attempt however often it is clicked."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse

from billing import charges, dunning
from billing.models import Invoice, Payment
from clients.services import add_contact
from tests.billing.conftest import event, open_invoice, post_event, save_card

pytestmark = pytest.mark.django_db


@pytest.fixture
def collection_stopped(fake_stripe, use_stripe, acme, django_capture_on_commit_callbacks) -> Invoice:
    """An auto-charge invoice whose card was declined on every attempt: retries are over."""
    use_stripe(fake_stripe.url)
    declining = fake_stripe.add_card()
    fake_stripe.declining.add(declining)
    save_card(acme, customer_id="cus_acme", payment_method_id=declining)
    invoice = open_invoice(acme, amount_minor=108000, auto_charge=True)
    today = invoice.workspace.today()
    with django_capture_on_commit_callbacks(execute=True):
        charges.charge_invoice(invoice, as_of=today)
        for offset in (1, 4, 11):  # retry_days 1, 3, 7
            dunning.run_dunning(as_of=today + timedelta(days=offset), inline=True)
    invoice.refresh_from_db()
    assert (invoice.charge_attempts, invoice.next_charge_on, invoice.status) == (4, None, "open")
    mail.outbox.clear()
    return invoice


@pytest.fixture
def browser(acme, login, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        carol = add_contact(client=acme, name="Carol Chen", email="carol@acme.example", portal_access=True)
    mail.outbox.clear()
    return login(carol.user)


def save_a_new_card(fake_stripe, browser, workspace, client, capture) -> dict:
    """The portal's card page, Stripe's page, the return to the success URL, and the webhook."""
    browser.post(f"/portal/w/{workspace.slug}/card/")
    session = fake_stripe.of_type("checkout.session")[-1]
    completed = fake_stripe.complete_setup_session(session["id"], last4="1881")
    with capture(execute=True):
        browser.get(f"/portal/w/{workspace.slug}/card/done/?session_id={session['id']}")
        post_event(client, event("checkout.session.completed", completed))  # the same card, again
    return completed


def test_saving_a_new_card_charges_the_open_auto_charge_invoices_once(
    collection_stopped, fake_stripe, browser, workspace, client, django_capture_on_commit_callbacks
):
    invoice = collection_stopped
    save_a_new_card(fake_stripe, browser, workspace, client, django_capture_on_commit_callbacks)

    invoice.refresh_from_db()
    assert (invoice.status, invoice.paid_minor, invoice.charge_attempts) == ("paid", 108000, 5)
    [new_charge] = fake_stripe.requests_to("POST", "/v1/payment_intents")[4:]
    assert new_charge.idempotency_key == f"invoice-{invoice.pk}-charge-5"
    assert (
        new_charge.params["payment_method"]
        != fake_stripe.requests_to("POST", "/v1/payment_intents")[0].params["payment_method"]
    )
    assert [m.subject.split(":")[0] for m in mail.outbox if m.to == ["ap@acme.example"]] == ["Receipt"]


def test_the_charge_task_run_twice_charges_once(collection_stopped, fake_stripe, acme):
    seen = charges.chargeable_invoices(acme.pk)
    assert seen == {collection_stopped.pk: 4}
    fake_stripe.declining.clear()
    assert charges.charge_with_new_card(acme.pk, seen=seen) == 1
    assert charges.charge_with_new_card(acme.pk, seen=seen) == 0
    assert len(fake_stripe.requests_to("POST", "/v1/payment_intents")) == 5


def test_a_declined_new_card_is_tried_once_not_again_on_the_next_save_of_the_same_card(
    collection_stopped, fake_stripe, acme, browser, workspace, client, django_capture_on_commit_callbacks
):
    # The new card declines too: one attempt, and storing the same card again does not retry it.
    original_complete = fake_stripe.complete_setup_session

    def declining_card(session_id, **card):
        session = original_complete(session_id, **card)
        fake_stripe.declining.add(fake_stripe.objects[session["setup_intent"]]["payment_method"])
        return session

    fake_stripe.complete_setup_session = declining_card
    save_a_new_card(fake_stripe, browser, workspace, client, django_capture_on_commit_callbacks)
    collection_stopped.refresh_from_db()
    assert collection_stopped.charge_attempts == 5 and collection_stopped.status == "open"
    assert Payment.objects.filter(invoice=collection_stopped, status="failed").count() == 5


def test_charge_now_makes_one_attempt_however_often_it_is_clicked(
    collection_stopped, fake_stripe, workspace, owner_client, alice, django_capture_on_commit_callbacks
):
    invoice = collection_stopped
    fake_stripe.declining.clear()  # the client topped up their account
    page = owner_client.get(reverse("billing:invoice_detail", args=[workspace.slug, invoice.pk])).content.decode()
    assert "Charge £1,080.00 now" in page and 'name="attempts" value="4"' in page
    charge_url = reverse("billing:invoice_charge", args=[workspace.slug, invoice.pk])
    with django_capture_on_commit_callbacks(execute=True):
        first = owner_client.post(charge_url, {"attempts": "4"}, follow=True)
        second = owner_client.post(charge_url, {"attempts": "4"}, follow=True)  # the double click
    assert f"The card was charged: {invoice.number} is paid." in first.content.decode()
    assert "nothing left to charge" in second.content.decode()
    invoice.refresh_from_db()
    assert (invoice.status, invoice.charge_attempts) == ("paid", 5)
    assert len(fake_stripe.requests_to("POST", "/v1/payment_intents")) == 5
    assert Payment.objects.filter(invoice=invoice).latest("pk").recorded_by == alice  # who charged it


def test_charge_now_reports_a_decline(collection_stopped, fake_stripe, workspace, owner_client):
    charge_url = reverse("billing:invoice_charge", args=[workspace.slug, collection_stopped.pk])
    response = owner_client.post(charge_url, {"attempts": "4"}, follow=True)
    assert "The charge failed: Your card has insufficient funds." in response.content.decode()
    again = owner_client.post(charge_url, {"attempts": "4"}, follow=True)  # the stale page: nothing more
    assert "already charged since you opened this page" in again.content.decode()
    assert len(fake_stripe.requests_to("POST", "/v1/payment_intents")) == 5
