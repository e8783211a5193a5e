"""Billing pages outside any workspace: the emailed pay link (no login; the signed token is the
key) and Stripe's webhook."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import messages
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils.csp import CSP
from django.views.decorators.cache import cache_control
from django.views.decorators.csp import csp_override
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from billing import paylinks, stripe_api, webhooks
from billing.models import BillingProfile
from billing.services import BillingError
from retainers.money import format_money

log = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES = 256 * 1024

# The pay button's form is answered with a redirect to Stripe's hosted page; browsers check that
# redirect against the form's page's form-action, so Checkout's origin is allowed there.
CHECKOUT_CSP = {**settings.SECURE_CSP, "form-action": [CSP.SELF, "https://checkout.stripe.com"]}


def _not_found(request: HttpRequest) -> HttpResponse:
    return render(request, "billing/public/not_found.html", status=404)


@require_GET
@csp_override(CHECKOUT_CSP)
def pay(request: HttpRequest, token: str) -> HttpResponse:
    invoice = paylinks.invoice_for_token(token)
    if invoice is None:
        return _not_found(request)
    workspace = invoice.workspace
    profile = BillingProfile.objects.filter(workspace=workspace).first()
    locale = workspace.locale or "en_US"
    payable = invoice.status in paylinks.PAYABLE and invoice.balance_minor > 0
    return render(
        request,
        "billing/public/pay.html",
        {
            "invoice": invoice,
            "workspace": workspace,
            "seller_name": (profile.legal_name if profile else "") or workspace.name,
            "payment_instructions": profile.payment_instructions if profile else "",
            "total": format_money(invoice.total_minor, invoice.currency, locale),
            "balance": format_money(max(invoice.balance_minor, 0), invoice.currency, locale),
            "payable": payable,
            "card_payments": payable and stripe_api.is_configured(workspace),
            "is_overdue": invoice.is_overdue(on=workspace.today()),
            "returned_from_checkout": request.GET.get("paid") == "1",
            "token": token,
        },
    )


@cache_control(private=True, no_store=True)  # a client's money: kept by no shared or browser cache
@require_GET
def pay_pdf(request: HttpRequest, token: str) -> HttpResponse:
    invoice = paylinks.invoice_for_token(token)
    if invoice is None or not invoice.pdf:
        return _not_found(request)
    return FileResponse(
        invoice.pdf.open("rb"), content_type="application/pdf", filename=f"{invoice.number}.pdf", as_attachment=False
    )


@require_POST
def pay_checkout(request: HttpRequest, token: str) -> HttpResponse:
    invoice = paylinks.invoice_for_token(token)
    if invoice is None:
        return _not_found(request)
    try:
        url = paylinks.start_checkout(invoice)
    except BillingError as exc:
        messages.error(request, str(exc))
        return redirect("billing_public:pay", token=token)
    return HttpResponseRedirect(url, status=303)


@csrf_exempt  # The one CSRF-exempt view: Stripe signs its requests instead.
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
