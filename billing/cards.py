"""Saved cards: the client's Stripe customer on the workspace's connected account, saving a card
through Checkout's setup mode (or a webhook), and removing it.

Stripe is called outside any transaction and lock; what it answers is recorded in a short
transaction afterwards. Customers are keyed by the client.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from billing import stripe_api
from billing.models import StripeCustomer
from billing.services import BillingError
from billing.stripe_ids import object_id
from clients.models import Client
from retainers.models import Workspace

log = logging.getLogger(__name__)


def card_on_file(client: Client) -> StripeCustomer | None:
    """The client's saved card, if any (for the client page and the portal)."""
    return (
        StripeCustomer.objects.filter(workspace_id=client.workspace_id, client=client)
        .exclude(payment_method_id="")
        .first()
    )


def ensure_customer(client: Client) -> StripeCustomer:
    """The client's customer on the workspace's Stripe account, created once (key `client-{id}-customer`)."""
    existing = StripeCustomer.objects.filter(workspace_id=client.workspace_id, client=client).first()
    if existing is not None:
        return existing
    customer = stripe_api.create_customer(
        account=stripe_api.account_id(client.workspace),
        client_id=client.pk,
        workspace_id=client.workspace_id,
        name=client.name,
        email=client.billing_email,
    )
    row, _ = StripeCustomer.objects.get_or_create(
        workspace_id=client.workspace_id, client=client, defaults={"customer_id": customer["id"]}
    )
    return row


def start_card_setup(*, client: Client, success_url: str, cancel_url: str) -> str:
    """A Stripe Checkout session in setup mode for the client to save a card; returns its URL.

    `success_url` should carry `{CHECKOUT_SESSION_ID}`. Raises BillingError if Stripe is unusable.
    """
    workspace = client.workspace
    if not stripe_api.is_configured(workspace):
        raise BillingError("Saving a card is not available.")
    try:
        customer = ensure_customer(client)
        session = stripe_api.create_setup_checkout(
            account=stripe_api.account_id(workspace),
            customer_id=customer.customer_id,
            currency=workspace.currency,
            success_url=success_url,
            cancel_url=cancel_url,
            metadata={"client_id": str(client.pk), "workspace_id": str(workspace.pk)},
            # A double click gives one session; a new card after a completed one gets a new key.
            idempotency_key=(
                f"client-{client.pk}-card-setup-{customer.payment_method_id or 'none'}-{timezone.now():%Y%m%d%H}"
            ),
        )
    except (stripe_api.StripeUnavailable, stripe_api.StripeRequestError) as exc:
        log.warning("card setup for client %s failed: %s", client.pk, exc)
        raise BillingError("Saving a card is unavailable right now. Please try again later.") from exc
    if not session.get("url"):
        raise BillingError("Saving a card is unavailable right now. Please try again later.")
    return session["url"]


def finish_card_setup(*, client: Client, session_id: str) -> StripeCustomer:
    """Store the card saved in a completed setup session of this client's (the success URL's step)."""
    workspace = client.workspace
    customer = StripeCustomer.objects.filter(workspace_id=workspace.pk, client=client).first()
    if customer is None or not stripe_api.is_configured(workspace) or not session_id:
        raise BillingError("We could not find that card. Please try again.")
    try:
        session = stripe_api.retrieve_checkout_session(account=stripe_api.account_id(workspace), session_id=session_id)
    except (stripe_api.StripeUnavailable, stripe_api.StripeRequestError) as exc:
        raise BillingError("We could not confirm the card with Stripe. Please try again.") from exc
    # The session id comes from the URL: it must be this client's own completed setup.
    metadata = session.get("metadata") or {}
    if (
        session.get("mode") != "setup"
        or metadata.get("client_id") != str(client.pk)
        or object_id(session.get("customer")) != customer.customer_id
    ):
        raise BillingError("We could not find that card. Please try again.")
    if session.get("status") != "complete":
        raise BillingError("The card was not saved. Please try again.")
    payment_method = saved_payment_method(workspace, session.get("setup_intent"))
    return store_card(client=client, customer_id=customer.customer_id, payment_method=payment_method)


def saved_payment_method(workspace: Workspace, setup_intent: Any) -> dict[str, Any]:
    account = stripe_api.account_id(workspace)
    if not isinstance(setup_intent, dict):
        setup_intent = stripe_api.retrieve_setup_intent(account=account, setup_intent_id=object_id(setup_intent))
    payment_method = setup_intent.get("payment_method")
    if not isinstance(payment_method, dict):
        payment_method = stripe_api.retrieve_payment_method(
            account=account, payment_method_id=object_id(payment_method)
        )
    return payment_method


def store_card(*, client: Client, customer_id: str, payment_method: dict[str, Any]) -> StripeCustomer:
    """Make `payment_method` the client's saved card; the card it replaces is detached afterwards.

    A card new to the client (not the one saved: the success page and the webhook both store the
    same card) is charged for the client's open auto-charge invoices, once each, after commit
    (billing.charges.charge_with_new_card): the failed-payment email asked them to update it.
    """
    from billing import charges, tasks  # charges reads the saved card from this module

    card = payment_method.get("card") or {}
    with transaction.atomic():
        row, _ = StripeCustomer.objects.select_for_update().get_or_create(
            workspace_id=client.workspace_id, client=client, defaults={"customer_id": customer_id}
        )
        is_new = row.payment_method_id != payment_method["id"]
        replaced = row.payment_method_id if is_new else ""
        row.customer_id = customer_id
        row.payment_method_id = payment_method["id"]
        row.card_brand = str(card.get("brand") or "")[:20]
        row.card_last4 = str(card.get("last4") or "")[:4]
        month, year = card.get("exp_month"), card.get("exp_year")
        row.card_exp = f"{int(month):02d}/{int(year)}" if month and year else ""
        row.save()
        if replaced:
            workspace = client.workspace
            transaction.on_commit(lambda: _detach_quietly(workspace, replaced))  # Stripe after commit
        if is_new and (seen := charges.chargeable_invoices(client.pk)):
            # What each invoice's attempts were now, so the task charges each once, however often it runs.
            args = (client.pk, {str(pk): attempts for pk, attempts in seen.items()})
            transaction.on_commit(lambda: tasks.charge_with_new_card.delay(*args))
    return row


def remove_card(*, client: Client) -> None:
    """Forget the client's saved card and detach it from their Stripe customer."""
    with transaction.atomic():
        row = StripeCustomer.objects.select_for_update().filter(workspace_id=client.workspace_id, client=client).first()
        if row is None or not row.payment_method_id:
            return
        payment_method_id = row.payment_method_id
        row.payment_method_id = row.card_brand = row.card_last4 = row.card_exp = ""
        row.save()
    _detach_quietly(client.workspace, payment_method_id)


def _detach_quietly(workspace: Workspace, payment_method_id: str) -> None:
    # Our row no longer points at the card, so it is never charged again; detaching is tidiness.
    if not stripe_api.is_configured(workspace):
        return
    try:
        stripe_api.detach_payment_method(account=stripe_api.account_id(workspace), payment_method_id=payment_method_id)
    except (stripe_api.StripeUnavailable, stripe_api.StripeRequestError) as exc:
        log.warning("could not detach %s: %s", payment_method_id, exc)
