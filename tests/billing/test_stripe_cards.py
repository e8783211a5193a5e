"""Saving a card from the portal: Stripe Checkout in setup mode, against our fake Stripe."""

from __future__ import annotations

import pytest
from django.conf import settings

from billing.models import StripeCustomer
from clients.services import add_contact
from tests import factories
from tests.billing.conftest import ACCOUNT

pytestmark = pytest.mark.django_db


@pytest.fixture
def carol(acme, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return add_contact(client=acme, name="Carol Chen", email="carol@acme.example", portal_access=True)


@pytest.fixture
def browser(carol, login):
    return login(carol.user)


def card_url(workspace, suffix: str = "") -> str:
    return f"/portal/w/{workspace.slug}/card/{suffix}"


def test_save_replace_and_remove_a_card(
    fake_stripe, use_stripe, workspace, acme, browser, django_capture_on_commit_callbacks
):
    use_stripe(fake_stripe.url)
    assert "No card saved." in browser.get(card_url(workspace)).content.decode()

    # Add: a customer (once) and a setup session, then off to Stripe's page.
    response = browser.post(card_url(workspace))
    [session] = fake_stripe.of_type("checkout.session")
    assert response.status_code == 303 and response["Location"] == session["url"]
    customer_call, session_call = fake_stripe.requests
    assert customer_call.idempotency_key == f"client-{acme.pk}-customer"
    assert customer_call.account == session_call.account == ACCOUNT
    assert session_call.params["mode"] == "setup" and session_call.params["customer"] == session["customer"]
    assert session_call.params["success_url"] == (
        f"{settings.SITE_URL}/portal/w/{workspace.slug}/card/done/?session_id={{CHECKOUT_SESSION_ID}}"
    )
    assert session_call.params["metadata"] == {"client_id": str(acme.pk), "workspace_id": str(workspace.pk)}

    # The client saves a card on Stripe's page and comes back.
    fake_stripe.complete_setup_session(session["id"], brand="visa", last4="4242", exp_month=8, exp_year=2030)
    page = browser.get(card_url(workspace, f"done/?session_id={session['id']}"), follow=True).content.decode()
    assert "Card ending in 4242 saved." in page and "Visa ending in 4242" in page and "08/2030" in page
    saved = StripeCustomer.objects.get(client=acme)
    first_card = saved.payment_method_id
    assert first_card.startswith("pm_") and saved.customer_id == session["customer"]

    # Replace: the same customer, a new session, the old card detached.
    browser.post(card_url(workspace))
    assert len(fake_stripe.requests_to("POST", "/v1/customers")) == 1
    newer = fake_stripe.of_type("checkout.session")[-1]
    fake_stripe.complete_setup_session(newer["id"], last4="1881")
    with django_capture_on_commit_callbacks(execute=True):  # the old card is detached after commit
        browser.get(card_url(workspace, f"done/?session_id={newer['id']}"))
    saved.refresh_from_db()
    assert saved.card_last4 == "1881"
    assert [r.path for r in fake_stripe.requests_to("POST", "/v1/payment_methods")] == [
        f"/v1/payment_methods/{first_card}/detach"
    ]

    # Remove.
    page = browser.post(card_url(workspace, "remove/"), follow=True).content.decode()
    assert "Card removed." in page and "No card saved." in page
    saved.refresh_from_db()
    assert saved.payment_method_id == "" and saved.card_last4 == ""
    assert fake_stripe.requests_to("POST", "/v1/payment_methods")[-1].path.endswith("/detach")


def test_a_session_of_another_client_is_not_stored(fake_stripe, use_stripe, workspace, acme, browser):
    use_stripe(fake_stripe.url)
    browser.post(card_url(workspace))
    other = factories.ClientFactory(workspace=workspace)
    foreign = fake_stripe.objects[
        fake_stripe._new(
            "cs_test",
            "checkout.session",
            mode="setup",
            status="open",
            customer="cus_other",
            url="x",
            metadata={"client_id": str(other.pk), "workspace_id": str(workspace.pk)},
            setup_intent=None,
        )["id"]
    ]
    fake_stripe.complete_setup_session(foreign["id"])
    page = browser.get(card_url(workspace, f"done/?session_id={foreign['id']}"), follow=True).content.decode()
    assert "We could not find that card" in page
    assert StripeCustomer.objects.get(client=acme).payment_method_id == ""


def test_an_abandoned_session_saves_nothing(fake_stripe, use_stripe, workspace, acme, browser):
    use_stripe(fake_stripe.url)
    browser.post(card_url(workspace))
    [session] = fake_stripe.of_type("checkout.session")
    page = browser.get(card_url(workspace, f"done/?session_id={session['id']}"), follow=True).content.decode()
    assert "The card was not saved" in page
    assert StripeCustomer.objects.get(client=acme).payment_method_id == ""


def test_without_stripe_the_portal_says_so_and_calls_nothing(fake_stripe, workspace, browser):
    page = browser.get(card_url(workspace)).content.decode()
    assert "does not take card payments" in page
    assert browser.post(card_url(workspace)).status_code == 302
    assert fake_stripe.requests == []


def test_card_page_is_only_for_the_clients_own_contacts(
    fake_stripe, use_stripe, workspace, other_workspace, login, alice, charlie, client
):
    use_stripe(fake_stripe.url)
    assert login(alice).get(card_url(workspace)).status_code == 404  # a member, not a contact
    assert login(charlie).get(card_url(workspace)).status_code == 404
    assert client.get(card_url(workspace)).status_code == 302  # anonymous: to the portal login
    assert login(charlie).post(card_url(workspace, "remove/")).status_code == 404
