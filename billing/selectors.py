"""Reads of billing that several surfaces show (PDFs now; pages and emails may call them too)."""

from __future__ import annotations

from dataclasses import dataclass

from billing import stripe_api
from billing.models import BillingProfile
from retainers.models import Workspace


@dataclass(frozen=True)
class PaymentOptions:
    """How a workspace's clients can pay it, as it really is set up today."""

    card: bool  # Stripe is connected: the pay link takes cards
    bank_transfer: bool  # the billing profile has payment instructions (bank details)
    instructions: str  # those instructions, as typed


def payment_options(workspace: Workspace, *, profile: BillingProfile | None = None) -> PaymentOptions:
    """The one answer to "how can this workspace be paid?": a card only when Stripe is connected,
    a bank transfer only when there are bank details to pay to. Pass the profile if you have it."""
    if profile is None:
        profile = BillingProfile.objects.filter(workspace=workspace).first()
    instructions = (profile.payment_instructions if profile else "").strip()
    return PaymentOptions(
        card=stripe_api.is_configured(workspace), bank_transfer=bool(instructions), instructions=instructions
    )
