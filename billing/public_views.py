"""Billing pages outside any workspace: the emailed pay link (no login; the signed token is the
key) and Stripe's webhook."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import messages
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils.csp import CSP
from django.views.decorators.cache import cache_control
from django.views.decorators.csp import csp_override
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from billing import paylinks, stripe_api, webhooks
from billing.models import BillingProfile, Invoice
from billing.services import BillingError
from retainers import ratelimits
from retainers.money import format_money
from retainers.ratelimits import rate_limit

log = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES = 256 * 1024

# The pay button's form is answered with a redirect to Stripe's hosted page; browsers check that
# redirect against the form's page's form-action, so Checkout's origin is allowed there.
CHECKOUT_CSP = {**settings.SECURE_CSP, "form-action": [CSP.SELF, "https://checkout.stripe.com"]}


def _not_found(request: HttpRequest) -> HttpResponse:
    return render(request, "billing/public/not_found.html", status=404)


@rate_limit("pay")
@require_GET
@csp_override(CHECKOUT_CSP)
def pay(request: HttpRequest, token: str) -> HttpResponse:
    link = paylinks.read_pay_token(token)
    if link is None:
        return _not_found(request)
    if link.expired:
        return _expired(request, token, link.invoice)
    invoice = link.invoice
    workspace = invoice.workspace
    profile = BillingProfile.objects.filter(workspace=workspace).first()
    locale = workspace.locale or "en_US"
    payable = invoice.status in paylinks.PAYABLE and invoice.owed_minor > 0
    return render(
        request,
        "billing/public/pay.html",
        {
            "invoice": invoice,
            "workspace": workspace,
            "seller_name": (profile.legal_name if profile else "") or workspace.name,
            "payment_instructions": profile.payment_instructions if profile else "",
            "total": format_money(invoice.total_minor, invoice.currency, locale),
            "balance": format_money(invoice.owed_minor, invoice.currency, locale),
            "payable": payable,
            "card_payments": payable and stripe_api.is_configured(workspace),
            "state": invoice.state(on=workspace.today(), for_client=True),
            "returned_from_checkout": request.GET.get("paid") == "1",
            "token": token,
        },
    )


@rate_limit("pay")
@cache_control(private=True, no_store=True)  # a client's money: kept by no shared or browser cache
@require_GET
def pay_pdf(request: HttpRequest, token: str) -> HttpResponseBase:
    link = paylinks.read_pay_token(token)
    if link is not None and link.expired:
        return redirect("billing_public:pay", token=token)  # which offers a new link
    invoice = link.invoice if link is not None else None
    if invoice is None or not invoice.pdf:
        return _not_found(request)
    return FileResponse(
        invoice.pdf.open("rb"), content_type="application/pdf", filename=f"{invoice.number}.pdf", as_attachment=False
    )


@rate_limit("pay")
@require_POST
def pay_checkout(request: HttpRequest, token: str) -> HttpResponse:
    link = paylinks.read_pay_token(token)
    if link is None:
        return _not_found(request)
    if link.expired:
        return redirect("billing_public:pay", token=token)
    invoice = link.invoice
    try:
        url = paylinks.start_checkout(invoice)
    except BillingError as exc:
        messages.error(request, str(exc))
        return redirect("billing_public:pay", token=token)
    return HttpResponseRedirect(url, status=303)


def _expired(request: HttpRequest, token: str, invoice: Invoice) -> HttpResponse:
    """An old link: the invoice's number and seller, and a button that emails a new link to the
    invoice's billing address (shown masked: whoever holds the link may not be the client)."""
    payable = invoice.status in paylinks.PAYABLE and invoice.owed_minor > 0
    recipient = paylinks.client_email(invoice) if payable else ""
    context = {
        "invoice": invoice,
        "seller_name": paylinks.seller_name(invoice.workspace),
        "payable": payable,
        "recipient": paylinks.masked(recipient) if recipient else "",
        "days": settings.PAY_LINK_DAYS,
        "token": token,
    }
    return render(request, "billing/public/expired.html", context)


@rate_limit("pay")
@require_POST
def pay_link_request(request: HttpRequest, token: str) -> HttpResponse:
    """From an expired link's page: email a new link to the invoice's billing address, a few times
    an hour at most per invoice (and per visitor), so the button cannot be used to flood a client."""
    link = paylinks.read_pay_token(token)
    if link is None:
        return _not_found(request)
    if not link.expired:
        return redirect("billing_public:pay", token=token)
    if limited := ratelimits.check(request, "pay_link_request", key=link.invoice.pk):
        return limited
    try:
        to = paylinks.send_pay_link(link.invoice)
    except BillingError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"We emailed a new link to {paylinks.masked(to)}. It may take a few minutes.")
    return redirect("billing_public:pay", token=token)


@csrf_exempt  # Stripe signs its requests instead of sending a CSRF token.
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return HttpResponse("Bad Content-Length.", status=400, content_type="text/plain")
    if declared > MAX_WEBHOOK_BYTES:
        return HttpResponse("Too large.", status=413, content_type="text/plain")
    payload = request.read(MAX_WEBHOOK_BYTES + 1)
    if len(payload) > MAX_WEBHOOK_BYTES:
        return HttpResponse("Too large.", status=413, content_type="text/plain")
    try:
        event = stripe_api.verify_webhook(
            payload, request.headers.get("Stripe-Signature", ""), secret=settings.STRIPE_WEBHOOK_SECRET
        )
    except stripe_api.WebhookSignatureError as exc:
        log.warning("stripe webhook rejected: %s", exc)
        return HttpResponse("Invalid signature.", status=400, content_type="text/plain")
    try:
        outcome = webhooks.process_event(event)
    except stripe_api.StripeUnavailable:
        # Nothing stored: Stripe delivers the event again later.
        log.warning("stripe webhook %s deferred: Stripe unavailable", event.get("id"))
        return HttpResponse("Try again later.", status=503, content_type="text/plain")
    return HttpResponse(outcome, content_type="text/plain")
