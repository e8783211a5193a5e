"""Put the demo on Stripe: `manage.py demo_stripe` after `seed_demo`, with STRIPE_SECRET_KEY and,
for localstripe, STRIPE_API_BASE set. See demo/cards.py and the README (Stripe)."""

from __future__ import annotations

from django.core.management.base import CommandError

from demo.cards import DemoStripeError, connect_demo
from retainers.tenancy import TenantCommand


class Command(TenantCommand):
    cross_tenant_reason = "demo_stripe: the demo workspace's Stripe account and cards"
    help = (
        "Connect the demo workspace to Stripe (localstripe in development), save a test card for "
        "Acme Corp and Initech and set their retainers to auto-charge. Safe to run again."
    )

    def handle(self, *args: object, **options: object) -> None:
        try:
            cards = connect_demo()
        except DemoStripeError as exc:
            raise CommandError(str(exc)) from None
        for card in cards:
            self.stdout.write(f"{card.client.name}: {card.card_brand} •••• {card.card_last4}, retainers on auto-charge")
        self.stdout.write("The next billing run charges their invoices to these cards; the others are emailed.")
