"""The emailed overage-approval link: no sign-in, the signed token is the key (delivery.approvals)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from delivery import approvals
from delivery.forms import OverageAnswerForm, add_service_error
from delivery.models import OverageApproval
from delivery.services import DeliveryError
from retainers.ratelimits import client_ip

UNUSABLE_STATUS = {"invalid": 400, "expired": 410, "used": 410, "lapsed": 410}


def answer_context(approval: OverageApproval, form: OverageAnswerForm) -> dict[str, object]:
    """What the answer form shows, on the public page and in the portal alike."""
    retainer = approval.retainer
    period = approval.period
    return {
        "approval": approval,
        "retainer": retainer,
        "workspace": retainer.workspace,
        "form": form,
        "offer": approvals.overage_offer(
            retainer, period, balance=retainer.balance, approved=approvals.approved_units(period)
        ),
        "offered_cost": approvals.offered_cost(approval),
    }


@require_http_methods(["GET", "POST"])
def overage_answer(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows the request with approve and decline; POST (with CSRF) answers it, once."""
    check = approvals.check_token(token)
    if not check.ok:
        return render(
            request,
            "delivery/public/overage_unusable.html",
            {"state": check.state, "approval": check.approval},
            status=UNUSABLE_STATUS.get(check.state, 400),
        )
    approval, contact = check.approval, check.contact
    assert approval is not None and contact is not None  # a link that checks ok names both
    unit = approval.retainer.unit
    form = OverageAnswerForm(request.POST or None, unit=unit, offered=approval.offered)
    if request.method == "POST" and form.is_valid():
        try:
            approval = approvals.answer_overage(
                approval=approval,
                approve=form.cleaned_data["answer"] == "approve",
                quantity=form.cleaned_data["quantity"],
                reason=form.cleaned_data["reason"],
                contact=contact,
                via=OverageApproval.Via.LINK,
                ip=client_ip(request),
            )
        except DeliveryError as error:
            add_service_error(form, error)
        else:
            return render(request, "delivery/public/overage_done.html", {"approval": approval, **_names(approval)})
    return render(request, "delivery/public/overage_answer.html", answer_context(approval, form))


def _names(approval: OverageApproval) -> dict[str, object]:
    return {"retainer": approval.retainer, "workspace": approval.retainer.workspace}
