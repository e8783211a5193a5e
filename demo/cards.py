"""The demo on Stripe: connect Northwind to a Stripe account (localstripe in development) and give
two clients a saved test card with their retainers on auto-charge.

Then the next billing run charges Acme's and Initech's invoices to their cards and emails the
others their invoice with its PDF, as it would for a real workspace. Everything goes through the
product's services: the customer is created with our idempotency key, the card is stored as the
portal stores one, and auto-charge is set as the retainer page sets it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from billing import cards, connect, stripe_api
from billing.models import StripeCustomer
from clients.models import Client, Retainer
from delivery import services as delivery
from demo import northwind
from retainers.models import Workspace

DEMO_ACCOUNT = "acct_demo_northwind"  # any id will do on localstripe; on Stripe, your connected account's
CARD_CLIENTS = ["Acme Corp", "Initech"]
TEST_CARD = "pm_card_visa"  # Stripe's test Visa; attaching it makes a new card on the customer


class DemoStripeError(Exception):
    """Why the demo cannot be put on Stripe: one line for the command to print."""


def demo_workspace() -> Workspace:
    workspace = Workspace.objects.filter(name=northwind.NAME).order_by("pk").first()
    if workspace is None:
        raise DemoStripeError(f"No demo workspace ({northwind.NAME}): run `manage.py seed_demo` first.")
    return workspace


def connect_demo(*, account: str = DEMO_ACCOUNT) -> list[StripeCustomer]:
    """Idempotent: a client whose card is saved keeps it; the account is taken up only if there is none."""
    if not settings.STRIPE_SECRET_KEY:
        raise DemoStripeError(
            "Stripe is not configured: set STRIPE_SECRET_KEY (and STRIPE_API_BASE for localstripe), see the README."
        )
    workspace = demo_workspace()
    connect.use_test_account(workspace=workspace, account_id=account)  # localstripe has no onboarding
    saved = []
    for client in Client.objects.for_workspace(workspace).filter(name__in=CARD_CLIENTS).select_related("workspace"):
        card = cards.card_on_file(client)
        if card is None:
            try:
                customer = cards.ensure_customer(client)
                payment_method = stripe_api.attach_payment_method(
                    account=stripe_api.account_id(workspace),
                    payment_method_id=TEST_CARD,
                    customer_id=customer.customer_id,
                    idempotency_key=f"demo-client-{client.pk}-card",
                )
            except (stripe_api.StripeUnavailable, stripe_api.StripeRequestError) as exc:
                raise DemoStripeError(f"Stripe at {settings.STRIPE_API_BASE or 'api.stripe.com'}: {exc}") from exc
            card = cards.store_card(client=client, customer_id=customer.customer_id, payment_method=payment_method)
        with transaction.atomic():
            for retainer in Retainer.objects.for_workspace(workspace).live().filter(client=client):
                delivery.set_collection(
                    retainer=retainer, auto_charge=True, pause_after_unpaid_days=retainer.pause_after_unpaid_days
                )
        saved.append(card)
    return saved
