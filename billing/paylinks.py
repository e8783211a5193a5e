"""The pay link: one signed URL per invoice and day (in the PDF, the emails and the portal) that
opens a public page where the client pays the balance through Stripe Checkout, for
settings.PAY_LINK_DAYS days; after that it offers to email a new link. And who the payer and the
seller are, as Checkout and the emails about money name them.

Checkout sessions are keyed by the invoice and its balance, so clicking twice gives the same
session.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils import timezone

from billing import stripe_api
from billing.models import BillingProfile, Invoice
from billing.selectors import payment_options
from billing.services import BillingError
from billing.stripe_ids import invoice_metadata
from retainers import tenancy
from retainers.models import Workspace
from retainers.money import format_money
from retainers.outbox import queue_email

log = logging.getLogger(__name__)

PAY_SALT = "billing.pay"


PAYABLE = {Invoice.Status.OPEN, Invoice.Status.UNCOLLECTIBLE}  # written off, but still welcome


@dataclass(frozen=True)
class PayLink:
    invoice: Invoice
    expired: bool  # older than settings.PAY_LINK_DAYS: the page offers a new link instead


def pay_token(invoice: Invoice) -> str:
    """The invoice's pay link key: signed, with the day it was made. The same all day (the link in
    the PDF, the email and Checkout's return URL is one URL); it opens the pay page for
    settings.PAY_LINK_DAYS days, then a page that offers to email a new one."""
    payload = {"i": invoice.pk, "w": invoice.workspace_id, "d": timezone.now().date().toordinal()}
    return signing.Signer(salt=PAY_SALT).sign_object(payload, compress=True)


def pay_url(invoice: Invoice) -> str:
    return settings.SITE_URL + reverse("billing_public:pay", args=[pay_token(invoice)])


def read_pay_token(token: str) -> PayLink | None:
    """The invoice a pay link is for, and whether the link has expired; None when the token was not
    made by us (or its invoice is gone). A link made before links expired (no day in it) has."""
    try:
        data = signing.Signer(salt=PAY_SALT).unsign_object(token)
    except (signing.BadSignature, ValueError):  # ValueError: a valid-looking but undecodable payload
        return None
    if not isinstance(data, dict) or not isinstance(data.get("i"), int) or not isinstance(data.get("w"), int):
        return None
    # The signed token names its workspace: the rest of the request works in it (the second wall).
    tenancy.enter(data["w"])
    invoice = (
        Invoice.objects.select_related("workspace", "client")
        .filter(pk=data["i"], workspace_id=data["w"])
        .exclude(status=Invoice.Status.DRAFT)
        .exclude(kind=Invoice.Kind.CREDIT_NOTE)
        .first()
    )
    if invoice is None:
        return None
    made_on = data.get("d")
    age = timezone.now().date().toordinal() - made_on if isinstance(made_on, int) else None
    return PayLink(invoice, expired=age is None or age > settings.PAY_LINK_DAYS)


def invoice_for_token(token: str) -> Invoice | None:
    """The invoice of a pay link that still works; None when it is forged, gone or expired."""
    link = read_pay_token(token)
    return link.invoice if link is not None and not link.expired else None


def send_pay_link(invoice: Invoice) -> str:
    """Email the client a new pay link (good for PAY_LINK_DAYS) to the invoice's billing address;
    returns that address. A double click sends one email (the outbox key is per minute). Raises
    BillingError when nothing is left to pay or there is nowhere to send it."""
    invoice.refresh_from_db()
    if invoice.status not in PAYABLE or invoice.owed_minor <= 0:
        raise BillingError("This invoice has nothing left to pay.")
    to = client_email(invoice)
    if not to:
        raise BillingError(f"{invoice.client.name} has no billing email or contact to send a link to.")
    workspace = invoice.workspace
    locale = workspace.locale or "en_US"
    queue_email(
        to=to,
        template="pay_link",
        client_id=invoice.client_id,
        context={
            "invoice": invoice,
            "workspace": workspace,
            "client": invoice.client,
            "seller": seller_name(workspace),
            "balance": format_money(invoice.owed_minor, invoice.currency, locale),
            "pay_url": pay_url(invoice),
            "pay_label": payment_options(workspace).pay_label,  # "Pay" only where a card is taken
            "days": settings.PAY_LINK_DAYS,
        },
        workspace=workspace,
        key=f"invoice-{invoice.pk}-pay-link-{timezone.now():%Y%m%d%H%M}",
    )
    return to


def masked(email: str) -> str:
    """An address shown to whoever holds a link: enough to recognise it, not to learn it."""
    name, _, domain = email.partition("@")
    return f"{name[:1]}{'•' * max(len(name) - 1, 2)}@{domain}"


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
