"""The client's saved card: shown, added or replaced on Stripe's hosted page (setup mode), removed.

No card data ever touches our pages: Stripe Checkout collects it, and we keep only the
payment method's id, brand, last four digits and expiry.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.csp import CSP
from django.views.decorators.csp import csp_override
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from billing import cards, stripe_api
from billing.services import BillingError
from clients.models import Retainer
from portal.http import PortalRequest, portal_view

# "Add a card" answers with a redirect to Stripe's page, which the form's page must allow.
CARD_CSP = {**settings.SECURE_CSP, "form-action": [CSP.SELF, "https://checkout.stripe.com"]}


@require_http_methods(["GET", "POST"])
@portal_view
@csp_override(CARD_CSP)
def card(request: PortalRequest) -> HttpResponse:
    client = request.contact.client
    slug = request.workspace.slug
    available = stripe_api.is_configured(request.workspace)
    if request.method == "POST":
        if not available:
            return redirect("portal:card", workspace_slug=slug)
        done = settings.SITE_URL + reverse("portal:card_done", args=[slug])
        try:
            url = cards.start_card_setup(
                client=client,
                # Stripe fills in {CHECKOUT_SESSION_ID}: the placeholder must stay unencoded.
                success_url=done + "?session_id={CHECKOUT_SESSION_ID}",
                cancel_url=settings.SITE_URL + reverse("portal:card", args=[slug]),
            )
        except BillingError as exc:
            messages.error(request, str(exc))
            return redirect("portal:card", workspace_slug=slug)
        return HttpResponseRedirect(url, status=303)
    return render(
        request,
        "portal/cards.html",
        {
            "available": available,
            "saved": cards.card_on_file(client) if available else None,
            "auto_charge": Retainer.objects.for_workspace(request.workspace)
            .live()
            .filter(client=client, auto_charge=True)
            .exists(),
        },
    )


@require_GET
@portal_view
def card_done(request: PortalRequest) -> HttpResponse:
    """Stripe's success URL: store the card of the completed setup session (if it is this client's)."""
    try:
        saved = cards.finish_card_setup(client=request.contact.client, session_id=request.GET.get("session_id", ""))
    except BillingError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Card ending in {saved.card_last4} saved.")
    return redirect("portal:card", workspace_slug=request.workspace.slug)


@require_POST
@portal_view
def card_remove(request: PortalRequest) -> HttpResponse:
    cards.remove_card(client=request.contact.client)
    messages.success(request, "Card removed.")
    return redirect("portal:card", workspace_slug=request.workspace.slug)
