"""Hole 14: a workspace connects Stripe through Stripe's onboarding (Account Links for an Express
account), never by typing an `acct_` id; the id comes from Stripe's answer, belongs to one
workspace, and a disconnect leaves invoices emailed instead of charged. Against our own Stripe
fake over HTTP (localstripe has no Connect onboarding)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from django.contrib.messages import get_messages
from django.db import IntegrityError, transaction
from django.urls import reverse

from billing import connect, sending, services, stripe_api
from billing.models import StripeAccount
from retainers.models import Email
from tests import factories
from tests.billing.conftest import SECRET_KEY, event, post_event, save_card

pytestmark = pytest.mark.django_db


@pytest.fixture
def stripe(settings, fake_stripe):
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_API_BASE = fake_stripe.url
    settings.STRIPE_TIMEOUT_SECONDS = 1.0
    return fake_stripe


def path(workspace, name: str) -> str:
    return reverse(f"billing:{name}", args=[workspace.slug])


def told(response) -> list[str]:
    """The messages the response's request holds: the ones it added last (earlier ones wait in the
    session until a page shows them)."""
    return [str(m) for m in get_messages(response.wsgi_request)]


def connect_and_onboard(owner_client, workspace, stripe) -> str:
    assert owner_client.post(path(workspace, "stripe_connect")).status_code == 302
    account_id = StripeAccount.objects.get(workspace=workspace).account_id
    stripe.complete_onboarding(account_id)
    owner_client.get(path(workspace, "stripe_connect_return"))
    return account_id


def test_connect_creates_an_express_account_and_sends_the_admin_to_stripe(owner_client, workspace, alice, stripe):
    page = owner_client.get(path(workspace, "billing_settings")).content.decode()
    assert "Connect Stripe" in page and 'name="stripe_account_id"' not in page
    response = owner_client.post(path(workspace, "stripe_connect"))
    assert response.status_code == 302 and response["Location"].startswith(f"{stripe.url}/setup/e/acct_")
    [created] = stripe.requests_to("POST", "/v1/accounts")
    assert created.account is None  # a platform call, not on a connected account
    assert (created.params["type"], created.params["email"]) == ("express", alice.email)
    assert created.idempotency_key == f"workspace-{workspace.pk}-stripe-account"
    [link] = stripe.requests_to("POST", "/v1/account_links")
    account = StripeAccount.objects.get(workspace=workspace)
    assert link.params == {
        "account": account.account_id,
        "type": "account_onboarding",
        "refresh_url": django_settings.SITE_URL + path(workspace, "stripe_connect_refresh"),
        "return_url": django_settings.SITE_URL + path(workspace, "stripe_connect_return"),
    }
    # Not yet onboarded: nothing is charged through it.
    assert (account.charges_enabled, stripe_api.account_id(workspace), stripe_api.is_configured(workspace)) == (
        False,
        "",
        False,
    )
    # A second click, or an expired link (the refresh URL), makes a new link for the same account.
    owner_client.post(path(workspace, "stripe_connect"))
    response = owner_client.get(path(workspace, "stripe_connect_refresh"))
    assert response["Location"].startswith(f"{stripe.url}/setup/e/{account.account_id}/")
    assert len(stripe.requests_to("POST", "/v1/accounts")) == 1
    assert len(stripe.requests_to("POST", "/v1/account_links")) == 3


def test_the_return_reads_the_account_from_stripe_and_stores_its_state(owner_client, workspace, stripe):
    owner_client.post(path(workspace, "stripe_connect"))
    account_id = StripeAccount.objects.get(workspace=workspace).account_id

    response = owner_client.get(path(workspace, "stripe_connect_return"))  # came back before finishing
    assert response.status_code == 302 and response["Location"] == path(workspace, "billing_settings")
    assert "Stripe needs more details" in told(response)[0]
    assert stripe_api.account_id(workspace) == ""
    page = owner_client.get(path(workspace, "billing_settings")).content.decode()
    assert "Not finished" in page and "Continue on Stripe" in page

    stripe.complete_onboarding(account_id)
    response = owner_client.get(path(workspace, "stripe_connect_return"))
    assert told(response) == [f"Stripe is connected ({account_id}): clients can pay by card."]
    [read, *_] = stripe.requests_to("GET", f"/v1/accounts/{account_id}")
    assert read.account is None
    account = StripeAccount.objects.get(workspace=workspace)
    assert (account.charges_enabled, account.details_submitted) == (True, True)
    assert stripe_api.account_id(workspace) == account_id
    page = owner_client.get(path(workspace, "billing_settings")).content.decode()
    assert "Connected" in page and account_id in page and "Disconnect" in page
    assert 'name="stripe_account_id"' not in page  # no account id is typed any more


def test_disconnect_clears_it_and_auto_charge_falls_back_to_email(
    owner_client, workspace, stripe, django_capture_on_commit_callbacks
):
    account_id = connect_and_onboard(owner_client, workspace, stripe)
    acme = factories.ClientFactory(workspace=workspace, name="Acme Corp", billing_email="ap@acme.example")
    save_card(acme, customer_id="cus_acme", payment_method_id=stripe.add_card())
    response = owner_client.post(path(workspace, "stripe_disconnect"))
    assert response.status_code == 302 and "Stripe is disconnected" in told(response)[-1]
    assert (stripe_api.account_id(workspace), stripe_api.is_configured(workspace)) == ("", False)

    invoice = services.create_invoice(client=acme, lines=[("Advisory", Decimal("1"), 50000)])
    invoice = services.issue_invoice(invoice=invoice, actor=None)
    invoice.auto_charge = True
    invoice.save(update_fields=["auto_charge"])
    with django_capture_on_commit_callbacks(execute=True):
        assert sending.deliver_invoice(invoice.pk)
    assert stripe.requests_to("POST", "/v1/payment_intents") == []  # nothing charged
    assert Email.objects.filter(to="ap@acme.example", key__contains=f"invoice-{invoice.pk}").exists()
    page = owner_client.get(path(workspace, "billing_settings")).content.decode()
    assert "Disconnected on" in page and "Connect Stripe" in page

    # Connecting again takes up the same account (and the cards saved on it): no new account.
    owner_client.post(path(workspace, "stripe_connect"))
    owner_client.get(path(workspace, "stripe_connect_return"))
    assert len(stripe.requests_to("POST", "/v1/accounts")) == 1
    assert stripe_api.account_id(workspace) == account_id


def test_only_owners_and_admins_connect_or_disconnect(member_client, outsider_client, workspace, stripe):
    for name in ("stripe_connect", "stripe_disconnect"):
        assert member_client.post(path(workspace, name)).status_code == 403
        assert outsider_client.post(path(workspace, name)).status_code == 404
    for name in ("stripe_connect_refresh", "stripe_connect_return"):
        assert member_client.get(path(workspace, name)).status_code == 403
        assert outsider_client.get(path(workspace, name)).status_code == 404
    assert stripe.requests == [] and not StripeAccount.objects.exists()


def test_an_account_belongs_to_one_workspace(owner_client, workspace, other_workspace, stripe):
    StripeAccount.objects.create(workspace=other_workspace, account_id="acct_1Theirs", charges_enabled=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        StripeAccount.objects.create(workspace=workspace, account_id="acct_1Theirs")
    # Should Stripe ever answer with another workspace's account, it is refused, not shared.
    stripe.script("POST", "/v1/accounts", "status", status=200, body={"id": "acct_1Theirs", "object": "account"})
    response = owner_client.post(path(workspace, "stripe_connect"))
    assert response["Location"] == path(workspace, "billing_settings")
    assert told(response) == ["That Stripe account is connected to another workspace."]
    assert not StripeAccount.objects.filter(workspace=workspace).exists()


def test_stripe_down_or_not_set_up_is_said_and_changes_nothing(owner_client, workspace, stripe, settings):
    stripe.script("POST", "/v1/accounts", "status", status=503)
    response = owner_client.post(path(workspace, "stripe_connect"))
    assert "could not be reached" in told(response)[0]
    assert not StripeAccount.objects.exists()
    settings.STRIPE_SECRET_KEY = ""
    response = owner_client.post(path(workspace, "stripe_connect"))
    assert "not set up on this server" in told(response)[-1]
    assert (
        "Stripe is not set up on this server" in owner_client.get(path(workspace, "billing_settings")).content.decode()
    )


def test_account_updated_events_keep_the_state(client, owner_client, workspace, stripe):
    account_id = connect_and_onboard(owner_client, workspace, stripe)
    obj = {"id": account_id, "object": "account", "charges_enabled": False, "details_submitted": True}
    assert post_event(client, event("account.updated", obj, account=account_id)).status_code == 200
    assert stripe_api.account_id(workspace) == ""  # Stripe paused its charges: invoices are emailed
    obj["charges_enabled"] = True
    post_event(client, event("account.updated", obj, account=account_id))
    assert stripe_api.account_id(workspace) == account_id


def test_the_demo_takes_up_a_test_account_without_onboarding(workspace):
    connect.use_test_account(workspace=workspace, account_id="acct_demo")
    connect.use_test_account(workspace=workspace, account_id="acct_other")  # keeps the one it has
    assert stripe_api.account_id(workspace) == "acct_demo"
