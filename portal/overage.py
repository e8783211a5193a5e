"""Overage approval in the portal: the client's requests to go beyond the balance, answered here or by
the emailed link (delivery.approvals does both). Every query is narrowed to `request.contact.client`:
another client's request is a 404."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from delivery import approvals
from delivery.approval_views import answer_context
from delivery.forms import OverageAnswerForm, add_service_error
from delivery.models import OverageApproval
from delivery.services import DeliveryError
from portal.http import PortalRequest, portal_view
from retainers.ratelimits import client_ip

SHOWN = 50


def _approvals(request: PortalRequest):
    return (
        OverageApproval.objects.for_workspace(request.workspace)
        .filter(retainer__client=request.contact.client)
        .select_related("retainer", "period")
    )


@require_GET
@portal_view
def overage_list(request: PortalRequest) -> HttpResponse:
    """Every request to go beyond the balance and its answer: who, when, how many, at which rate."""
    rows = list(_approvals(request).order_by("-requested_at", "-pk")[:SHOWN])
    return render(request, "portal/overage_list.html", {"approvals": rows})


@require_http_methods(["GET", "POST"])
@portal_view
def overage_answer(request: PortalRequest, overage_approval_id: int) -> HttpResponse:
    """One request: the approve/decline form while it waits, its record afterwards."""
    approval = get_object_or_404(_approvals(request), pk=overage_approval_id)
    approval.retainer.workspace = request.workspace
    form = OverageAnswerForm(request.POST or None, unit=approval.retainer.unit, offered=approval.offered)
    if request.method == "POST" and form.is_valid():
        try:
            approvals.answer_overage(
                approval=approval,
                approve=form.cleaned_data["answer"] == "approve",
                quantity=form.cleaned_data["quantity"],
                reason=form.cleaned_data["reason"],
                contact=request.contact,
                via=OverageApproval.Via.PORTAL,
                ip=client_ip(request),
            )
        except DeliveryError as error:
            add_service_error(form, error)
        else:
            messages.success(request, "Thank you: your answer is recorded and the team has been told.")
            return redirect(
                "portal:overage_answer", workspace_slug=request.workspace.slug, overage_approval_id=approval.pk
            )
    waiting = approval.status == OverageApproval.Status.REQUESTED and approval.period.status == "open"
    return render(request, "portal/overage_answer.html", {**answer_context(approval, form), "waiting": waiting})
