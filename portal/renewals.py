"""The client's renewals in the portal: the proposals they were sent, and accepting or declining one.

Every query is narrowed to `request.contact.client`: another client's renewal is a 404.
A renewal is visible once proposed (its status is no longer "upcoming"); the team's
evidence shown is the usage the client can see anyway, never payments or private notes.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from clients.terms import describe_terms
from portal.http import PortalRequest, portal_view
from renewals import evidence as proposal
from renewals import services
from renewals.forms import DeclineForm
from renewals.models import Renewal


def _renewals(request: PortalRequest):
    return (
        Renewal.objects.for_workspace(request.workspace)
        .filter(retainer__client=request.contact.client)
        .exclude(status=Renewal.Status.UPCOMING)
        .select_related("retainer", "next_retainer")
    )


def _renewal(request: PortalRequest, renewal_id: int) -> Renewal:
    renewal = get_object_or_404(_renewals(request), pk=renewal_id)
    renewal.workspace = request.workspace
    return renewal


@require_GET
@portal_view
def renewal_list(request: PortalRequest) -> HttpResponse:
    renewals = list(_renewals(request).order_by("-term_ends_on", "-pk")[:50])
    return render(request, "portal/renewal_list.html", {"renewals": renewals})


def _detail(request: PortalRequest, renewal: Renewal, *, decline_form: DeclineForm | None = None) -> HttpResponse:
    locale = request.workspace.locale or "en_US"
    context = {
        "renewal": renewal,
        "retainer": renewal.retainer,
        "client": request.contact.client,
        "evidence": proposal.for_display(renewal.evidence),
        "current_terms": describe_terms(renewal.retainer, locale=locale),
        "proposed_terms": describe_terms(renewal, locale=locale),
        "renews_without_answer": services.continues_without_answer(renewal.retainer),
        "answerable": renewal.status == Renewal.Status.PROPOSAL_SENT
        and request.workspace.today() < renewal.term_ends_on,
        "decline_form": decline_form or DeclineForm(),
    }
    return render(request, "portal/renewal_detail.html", context)


@require_GET
@portal_view
def renewal_detail(request: PortalRequest, renewal_id: int) -> HttpResponse:
    return _detail(request, _renewal(request, renewal_id))


@require_POST
@portal_view
def renewal_accept(request: PortalRequest, renewal_id: int) -> HttpResponse:
    renewal = _renewal(request, renewal_id)
    try:
        services.accept_renewal(renewal=renewal, contact=request.contact)
    except services.RenewalError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Thank you: your next term is confirmed.")
    return redirect("portal:renewal_detail", workspace_slug=request.workspace.slug, renewal_id=renewal.pk)


@require_POST
@portal_view
def renewal_decline(request: PortalRequest, renewal_id: int) -> HttpResponse:
    renewal = _renewal(request, renewal_id)
    form = DeclineForm(request.POST)
    if not form.is_valid():
        return _detail(request, renewal, decline_form=form)
    try:
        services.decline_renewal(renewal=renewal, reason=form.cleaned_data["reason"], contact=request.contact)
    except services.RenewalError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Thank you for letting us know. Your retainer ends at the end of its term.")
    return redirect("portal:renewal_detail", workspace_slug=request.workspace.slug, renewal_id=renewal.pk)
