"""The pay link: one signed URL per invoice (in the PDF, the emails and the portal) that opens a
public page where the client pays the balance through Stripe Checkout; and who the payer and
the seller are, as Checkout and the emails about money name them.

Checkout sessions are keyed by the invoice and its balance, so clicking twice gives the same
session.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core import signing
from django.urls import reverse

from billing import stripe_api
from billing.models import BillingProfile, Invoice
from billing.services import BillingError
from billing.stripe_ids import invoice_metadata
from retainers.models import Workspace

log = logging.getLogger(__name__)

PAY_SALT = "billing.pay"


PAYABLE = {Invoice.Status.OPEN, Invoice.Status.UNCOLLECTIBLE}  # written off, but still welcome


def pay_token(invoice: Invoice) -> str:
    """The invoice's pay link key: signed, and the same every time (no timestamp), so the link in
    the PDF, the emails and Checkout's return URL is one URL."""
    return signing.Signer(salt=PAY_SALT).sign_object({"i": invoice.pk, "w": invoice.workspace_id}, compress=True)


def pay_url(invoice: Invoice) -> str:
    return settings.SITE_URL + reverse("billing_public:pay", args=[pay_token(invoice)])


def invoice_for_token(token: str) -> Invoice | None:
    """The invoice a pay link is for; None when the token was not made by us (or its invoice is gone)."""
    try:
        data = signing.Signer(salt=PAY_SALT).unsign_object(token)
    except (signing.BadSignature, ValueError):  # ValueError: a valid-looking but undecodable payload
        return None
    if not isinstance(data, dict) or not isinstance(data.get("i"), int) or not isinstance(data.get("w"), int):
        return None
    return (
        Invoice.objects.select_related("workspace", "client")
        .filter(pk=data["i"], workspace_id=data["w"])
        .exclude(status=Invoice.Status.DRAFT)
        .exclude(kind=Invoice.Kind.CREDIT_NOTE)
        .first()
    )


def start_checkout(invoice: Invoice) -> str:
    """A Stripe Checkout session for the invoice's balance; returns the URL to send the client to.

    Keyed by invoice and balance: clicking twice gives the same session.
    Raises BillingError when there is nothing to pay or Stripe cannot be used.
    """
    workspace = invoice.workspace
    invoice.refresh_from_db()
    if invoice.status not in PAYABLE or invoice.owed_minor <= 0:
        raise BillingError("This invoice has nothing left to pay.")
    if not stripe_api.is_configured(workspace):
        raise BillingError("Card payments are not available for this invoice.")
    back = pay_url(invoice)
    try:
        session = stripe_api.create_payment_checkout(
            account=stripe_api.account_id(workspace),
            amount_minor=invoice.owed_minor,
            currency=invoice.currency,
            description=f"Invoice {invoice.number} from {seller_name(workspace)}",
            customer_email=client_email(invoice),
            success_url=f"{back}?paid=1",
            cancel_url=back,
            metadata=invoice_metadata(invoice),
            idempotency_key=f"invoice-{invoice.pk}-checkout-{invoice.owed_minor}",
        )
    except (stripe_api.StripeUnavailable, stripe_api.StripeRequestError) as exc:
        log.warning("checkout for invoice %s failed: %s", invoice.pk, exc)
        raise BillingError("Card payment is unavailable right now. Please try again later.") from exc
    if not session.get("url"):
        raise BillingError("Card payment is unavailable right now. Please try again later.")
    return session["url"]


def seller_name(workspace: Workspace) -> str:
    profile = BillingProfile.objects.filter(workspace=workspace).first()
    return (profile.legal_name if profile else "") or workspace.name


def client_email(invoice: Invoice) -> str:
    from billing.sending import recipient  # sending imports this module

    return recipient(invoice)
