"""Consultant-side views of delivery: signing retainers, the retainer page, recording work, the ledger.

Views read with scoped queries and write through `delivery.services`; a DeliveryError
becomes a form error next to its field (or a message when there is no form).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import F, Field, OuterRef, Q, Subquery, Sum, Window
from django.http import HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import reswap, retarget, trigger_client_event

from clients.forms import terms_initial
from clients.models import Amendment, Client, Plan, Retainer, RetainerTerms
from delivery import agenda, approvals, booking, charts, ledger, services
from delivery.figures import last_day, period_figures, time_logged
from delivery.forms import (
    AdjustForm,
    AmendForm,
    CollectionForm,
    DeliverableAddForm,
    DeliverableStatusForm,
    EndNowForm,
    OverageRequestForm,
    QuickAddForm,
    RetainerCreateForm,
    WorkEditForm,
    add_service_error,
    workspace_quick_add_form,
)
from delivery.models import Deliverable, LedgerEntry, OverageApproval, Period, WorkItem
from delivery.selectors import client_section
from retainers.http import WorkspaceRequest, workspace_view
from retainers.money import format_money
from retainers.units import format_units, utilisation_percent, went_over

Kind = LedgerEntry.Kind
ZERO = ledger.ZERO
LEDGER_PAGE_SIZE = 50


def _int(value: object) -> int | None:
    text = str(value or "")
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None


OVERAGE_APPROVALS_SHOWN = 20


def _get_retainer(request: WorkspaceRequest, retainer_id: int | None) -> Retainer:
    return get_object_or_404(
        Retainer.objects.for_workspace(request.workspace).select_related("client", "plan"), pk=retainer_id
    )


def _to_retainer(request: WorkspaceRequest, retainer: Retainer) -> HttpResponse:
    return redirect("delivery:retainer_detail", workspace_slug=request.workspace.slug, retainer_id=retainer.pk)


def _unit(retainer: Retainer) -> str:
    return retainer.get_unit_display().lower()


def _money(request: WorkspaceRequest, amount_minor: int, currency: str) -> str:
    return format_money(amount_minor, currency, getattr(request.workspace, "locale", None) or "en_US")


# --- The retainer page -------------------------------------------------------------------


TERM_LABELS = {
    "model": "Kind",
    "units_per_period": "Units per period",
    "price_minor": "Fee per period",
    "billing_timing": "Invoice",
    "overage_policy": "Beyond the allotment",
    "overage_rate_minor": "Overage rate",
    "rollover_cap": "Rollover cap",
    "rollover_expiry_periods": "Rolled units expire after (periods)",
    "deliverables": "Deliverables",
    "deliverables_carry": "Unfinished deliverables carry",
    "extra_deliverable_price_minor": "Extra deliverable price",
    "auto_renew": "Auto-renew",
    "renewal_notice_days": "Renewal notice (days)",
}


def _term_value(name: str, value: Any, currency: str, locale: str) -> str:
    if value is None:
        return "—"
    if name.endswith("_minor"):
        return format_money(int(value), currency, locale)
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list):
        return ", ".join(value) or "—"
    if isinstance(value, Decimal):
        return format_units(value)
    field = RetainerTerms._meta.get_field(name)
    assert isinstance(field, Field)  # a column of the terms, never a relation
    choices = dict(field.choices or [])
    return str(choices.get(value, value))


def term_changes(
    current: dict[str, object], new: dict[str, object], *, currency: str, locale: str
) -> list[tuple[str, str, str]]:
    """(label, from, to) of each term an amendment changes."""
    return [
        (
            label,
            _term_value(name, current.get(name), currency, locale),
            _term_value(name, new.get(name), currency, locale),
        )
        for name, label in TERM_LABELS.items()
        if current.get(name) != new.get(name)
    ]


def _quick_add_form(
    request: WorkspaceRequest,
    retainer: Retainer,
    period: Period | None,
    has_deliverables: bool,
    data: QueryDict | None = None,
    *,
    focus: bool = False,
) -> QuickAddForm:
    workspace = request.workspace
    deliverables = None
    if period is not None and has_deliverables:
        deliverables = Deliverable.objects.for_workspace(workspace).filter(period=period).order_by("pk")
    form = QuickAddForm(
        data,
        retainers=Retainer.objects.for_workspace(workspace).filter(pk=retainer.pk),
        retainer=retainer,
        deliverables=deliverables,
        today=workspace.today(),
    )
    if focus or data is not None:
        # Only after a save or an error: on a page load, autofocus scrolls the page down to the form
        # and hides the title and the period's figures.
        form.set_focus("quantity")
    return form


def retainer_context(
    request: WorkspaceRequest,
    retainer: Retainer,
    *,
    quick_form: QuickAddForm | None = None,
    amend_form: AmendForm | None = None,
    adjust_form: AdjustForm | None = None,
    deliverable_form: DeliverableAddForm | None = None,
    collection_form: CollectionForm | None = None,
    overage_form: OverageRequestForm | None = None,
    **extra: object,
) -> dict[str, object]:
    """Everything the retainer page and its partials show: a fixed number of queries."""
    workspace = request.workspace
    today = workspace.today()
    period = Period.objects.for_workspace(workspace).filter(retainer=retainer).order_by("-seq").first()
    figures = chart = None
    work_items: list[WorkItem] = []
    deliverables: list[Deliverable] = []
    if period is not None:
        rows = list(
            LedgerEntry.objects.for_workspace(workspace)
            .filter(period=period)
            .values_list("kind", "quantity", "origin_seq", "work_item_id", "work_item__delivered_on")
        )
        figures = period_figures(retainer, period, rows, today)
        if retainer.model != RetainerTerms.Model.DELIVERABLES:
            chart = charts.burndown(
                start_on=period.start_on,
                end_on=period.end_on,
                available=figures.available,
                used_by_day=figures.used_by_day,
                today=today,
                unit=_unit(retainer),
            )
        work_items = list(
            WorkItem.objects.for_workspace(workspace)
            .filter(period=period, removed_at=None)
            .select_related("delivered_by", "deliverable")
            .order_by("-delivered_on", "-created_at", "-pk")
        )
        deliverables = list(Deliverable.objects.for_workspace(workspace).filter(period=period).order_by("pk"))
    amendments = list(
        Amendment.objects.for_workspace(workspace)
        .filter(retainer=retainer)
        .select_related("created_by")
        .order_by("-created_at", "-pk")
    )
    pending = next((a for a in amendments if a.applied_at is None), None)
    is_open = period is not None and period.status == Period.Status.OPEN
    can_record = retainer.status == Retainer.Status.ACTIVE and is_open
    if quick_form is None and can_record:
        quick_form = _quick_add_form(request, retainer, period, bool(deliverables), focus=bool(extra.get("saved")))
    live = retainer.status != Retainer.Status.ENDED
    units_based = retainer.model != RetainerTerms.Model.DELIVERABLES
    context: dict[str, object] = {
        "retainer": retainer,
        "period": period,
        "period_last_on": last_day(period) if period else None,
        "delivered_count": sum(1 for d in deliverables if d.status == Deliverable.Status.DELIVERED),
        "figures": figures,
        "chart": chart,
        "unit": _unit(retainer),
        "today": today,
        "work_items": work_items,
        "time_logged": time_logged(work_items),
        "deliverables": deliverables,
        "deliverable_statuses": cast(forms.ChoiceField, DeliverableStatusForm.base_fields["status"]).choices,
        "can_record": can_record,
        "is_open": is_open,
        "quick_form": quick_form,
        "amendments": amendments,
        "pending": pending,
        "pending_changes": (
            term_changes(
                retainer.terms(),
                pending.terms(),
                currency=retainer.currency,
                locale=getattr(workspace, "locale", None) or "en_US",
            )
            if pending
            else []
        ),
        "amend_form": amend_form or (AmendForm(retainer=retainer, workspace=workspace) if live else None),
        "adjust_form": adjust_form or (AdjustForm(retainer=retainer) if live and is_open and units_based else None),
        "deliverable_form": deliverable_form or (DeliverableAddForm() if live and is_open else None),
        "collection_form": collection_form or (CollectionForm(retainer=retainer) if live else None),
        # Overage the client approves first (delivery.approvals): the answers so far and asking for more.
        "overage_approvals": list(
            OverageApproval.objects.for_workspace(workspace)
            .filter(retainer=retainer)
            .select_related("period", "requested_by")
            .order_by("-requested_at", "-pk")[:OVERAGE_APPROVALS_SHOWN]
        ),
        "overage_offer": approvals.overage_offer(
            retainer, period, balance=retainer.balance, approved=approvals.approved_units(period)
        )
        if period is not None and is_open and units_based
        else None,
        "overage_form": overage_form or (OverageRequestForm(retainer=retainer) if can_record and units_based else None),
        "price": _money(request, retainer.price_minor, retainer.currency),
        "overage_rate": _money(request, retainer.overage_rate_minor, retainer.currency),
        "tab": "overview",
        # Bookings: units reserved in this period (apart from used and remaining), and the sessions to
        # come and to settle (delivery.booking, delivery.agenda).
        "booked": booking.booked_units(retainer, start_on=period.start_on, end_on=period.end_on, zone=workspace.tzinfo)
        if period is not None and is_open and units_based
        else None,
        "bookings_section": (
            {
                "rows": agenda.show(
                    agenda.for_retainer(workspace, retainer), zone=workspace.tzinfo, now=timezone.now()
                ),
                "next_url": reverse("delivery:retainer_detail", args=[workspace.slug, retainer.pk]),
            }
            if units_based
            else None
        ),
    }
    context.update(extra)
    return context


@require_GET
@workspace_view
def retainer_detail(request: WorkspaceRequest, retainer_id: int) -> HttpResponse:
    retainer = _get_retainer(request, retainer_id)
    return render(request, "delivery/retainer_detail.html", retainer_context(request, retainer))


# --- Recording work ------------------------------------------------------------------------


def _safe_next(request: WorkspaceRequest) -> str | None:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return target
    return None


@require_POST
@workspace_view
def work_add(request: WorkspaceRequest) -> HttpResponse:
    """The quick-add, from the retainer page (retainer fixed), a client page or the dashboard (retainer chosen)."""
    workspace = request.workspace
    client = None
    retainer = None
    form: QuickAddForm | None
    origin = request.POST.get("origin")
    if origin == "client":
        client = get_object_or_404(Client.objects.for_workspace(workspace), pk=_int(request.POST.get("client")))
        form = QuickAddForm(
            request.POST,
            retainers=Retainer.objects.for_workspace(workspace).filter(client=client).in_force(on=workspace.today()),
            today=workspace.today(),
        )
    elif origin == "workspace":
        form = workspace_quick_add_form(workspace, request.POST)
    else:
        retainer = _get_retainer(request, _int(request.POST.get("retainer")))
        period = services.open_period(retainer)
        has_deliverables = (
            period is not None and Deliverable.objects.for_workspace(workspace).filter(period=period).exists()
        )
        form = _quick_add_form(request, retainer, period, has_deliverables, data=request.POST)

    saved = None
    chosen: Retainer | None = None
    if form.is_valid():
        chosen = form.cleaned_data["retainer"]
        data = form.cleaned_data
        try:
            item = services.record_delivery(
                retainer=chosen,
                delivered_on=data["delivered_on"],
                quantity=data["quantity"],
                description=data["description"],
                actor=request.user,
                billable=data["billable"],
                deliverable=data.get("deliverable"),
                confirm_large=data["confirm"],
            )
        except services.DeliveryError as error:
            add_service_error(form, error)
        else:
            on = f"{chosen.client.name} · {chosen.name}" if origin == "workspace" else chosen.name
            saved = f"Logged {item.quantity} {_unit(chosen)} on {on}: {item.description}"
            if not request.htmx:
                messages.success(request, saved)
                back = reverse("delivery:retainer_detail", args=[workspace.slug, chosen.pk])
                return redirect(_safe_next(request) or back)
            form = None
    if form is not None:
        form.set_focus("quantity")

    if origin == "workspace":
        return _workspace_quick_add_done(request, form, saved=saved, chosen=chosen)

    if client is not None:
        if form is not None and not request.htmx:
            # No JavaScript: the client page is not ours to re-render, so show the form on its own page.
            section = {"client": client, "form": form, "next_url": _safe_next(request)}
            return render(request, "delivery/work_add.html", {"section": section})
        section = client_section(request, client, form=form, saved=saved, next_url=_safe_next(request))
        return render(request, "delivery/_client_section.html", {"section": section})

    assert retainer is not None  # the retainer page's own quick-add: the other origins returned above
    retainer.refresh_from_db()
    if form is not None and not request.htmx:
        return render(request, "delivery/retainer_detail.html", retainer_context(request, retainer, quick_form=form))
    context = retainer_context(request, retainer, quick_form=form, saved=saved)
    partial = "quick-add-saved" if form is None else "quick-add"
    return render(request, f"delivery/retainer_detail.html#{partial}", context)


def _workspace_quick_add_done(
    request: WorkspaceRequest, form: QuickAddForm | None, *, saved: str | None, chosen: Retainer | None
) -> HttpResponse:
    """After a quick-add from a page that lists many retainers (the dashboard): the form again, fresh
    with the same retainer chosen (the next session is often for the same client) or with its
    errors. The page is not ours to re-render, so a `work-recorded` event tells it to refresh
    what it shows; without JavaScript, errors get a page of their own."""
    next_url = _safe_next(request)
    if form is not None and not request.htmx:
        return render(request, "delivery/work_add.html", {"section": {"form": form, "next_url": next_url}})
    if form is None:
        assert chosen is not None  # the form is cleared only once the work is saved on the chosen retainer
        form = workspace_quick_add_form(request.workspace)
        form.fields["retainer"].initial = chosen.pk
        form.set_focus("quantity")
    context = {"quick_form": form, "quick_saved": saved, "next_url": next_url}
    response = render(request, "delivery/work_add.html#workspace-quick-add", context)
    if saved:
        assert chosen is not None  # saved on it
        trigger_client_event(response, "work-recorded", {"retainer": chosen.pk})
    return response


def _get_item(request: WorkspaceRequest, retainer: Retainer, work_item_id: int) -> WorkItem:
    return get_object_or_404(
        WorkItem.objects.for_workspace(request.workspace).select_related("retainer", "period", "deliverable"),
        pk=work_item_id,
        retainer=retainer,
    )


def _work_changed(request: WorkspaceRequest, retainer: Retainer, **extra: Any) -> HttpResponse:
    """After an edit or removal: the work list, with the stats swapped out of band."""
    retainer.refresh_from_db()
    context = retainer_context(request, retainer, **extra)
    return render(request, "delivery/retainer_detail.html#work-changed", context)


@require_http_methods(["GET", "POST"])
@workspace_view
def work_edit(request: WorkspaceRequest, retainer_id: int, work_item_id: int) -> HttpResponse:
    retainer = _get_retainer(request, retainer_id)
    item = _get_item(request, retainer, work_item_id)
    deliverables = Deliverable.objects.for_workspace(request.workspace).filter(period_id=item.period_id).order_by("pk")
    form = WorkEditForm(
        request.POST if request.method == "POST" else None,
        item=item,
        deliverables=deliverables if deliverables.exists() else None,
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.edit_delivery(
                item=item,
                delivered_on=data["delivered_on"],
                quantity=data["quantity"],
                description=data["description"],
                billable=data["billable"],
                actor=request.user,
                deliverable=data.get("deliverable"),
                confirm_large=data["confirm"],
            )
        except services.DeliveryError as error:
            add_service_error(form, error)
        else:
            if request.htmx:
                return _work_changed(request, retainer)
            messages.success(request, "Entry changed.")
            return _to_retainer(request, retainer)
    form.set_focus("quantity")
    context = {"retainer": retainer, "item": item, "form": form, "unit": _unit(retainer)}
    if request.htmx:
        response = render(request, "delivery/work_edit.html#edit-row", context)
        if request.method == "POST":  # errors: the form row stays where it is
            response = reswap(retarget(response, f"#work-{item.pk}"), "outerHTML")
        return response
    return render(request, "delivery/work_edit.html", context)


@require_POST
@workspace_view
def work_remove(request: WorkspaceRequest, retainer_id: int, work_item_id: int) -> HttpResponse:
    retainer = _get_retainer(request, retainer_id)
    item = _get_item(request, retainer, work_item_id)
    try:
        services.remove_delivery(item=item, actor=request.user)
    except services.DeliveryError as error:
        if request.htmx:
            return _work_changed(request, retainer, work_error=str(error))
        messages.error(request, str(error))
    else:
        if request.htmx:
            return _work_changed(request, retainer, work_notice=f"Removed: {item.description}")
        messages.success(request, f"Removed: {item.description}")
    return _to_retainer(request, retainer)


# --- Deliverables -----------------------------------------------------------------------------


def _deliverables_response(request: WorkspaceRequest, retainer: Retainer, **extra: Any) -> HttpResponse:
    return render(request, "delivery/retainer_detail.html#deliverables", retainer_context(request, retainer, **extra))


@require_POST
@workspace_view
def deliverable_status(request: WorkspaceRequest, retainer_id: int, deliverable_id: int) -> HttpResponse:
    retainer = _get_retainer(request, retainer_id)
    deliverable = get_object_or_404(
        Deliverable.objects.for_workspace(request.workspace).select_related("retainer"),
        pk=deliverable_id,
        retainer=retainer,
    )
    form = DeliverableStatusForm(request.POST)
    error = None
    if not form.is_valid():
        error = "Choose planned, in progress or delivered."
    else:
        try:
            services.set_deliverable_status(
                deliverable=deliverable,
                status=form.cleaned_data["status"],
                actor=request.user,
                on=request.workspace.today(),
            )
        except services.DeliveryError as exc:
            error = str(exc)
    if request.htmx:
        return _deliverables_response(request, retainer, deliverable_error=error)
    if error:
        messages.error(request, error)
    else:
        choices = cast(forms.ChoiceField, form.fields["status"]).choices
        label = dict(choices)[form.cleaned_data["status"]]  # type: ignore[arg-type]  # django-stubs types the getter as any input; Django keeps a list of pairs
        messages.success(request, f"{deliverable.name}: {label.lower()}.")
    return _to_retainer(request, retainer)


@require_POST
@workspace_view
def deliverable_add(request: WorkspaceRequest, retainer_id: int) -> HttpResponse:
    retainer = _get_retainer(request, retainer_id)
    form = DeliverableAddForm(request.POST)
    if form.is_valid():
        try:
            deliverable = services.add_deliverable(
                retainer=retainer, name=form.cleaned_data["name"], actor=request.user
            )
        except services.DeliveryError as error:
            add_service_error(form, error)
        else:
            if request.htmx:
                return _deliverables_response(request, retainer, deliverable_notice=f"Added {deliverable.name}.")
            messages.success(request, f"Added {deliverable.name}.")
            return _to_retainer(request, retainer)
    if request.htmx:
        return _deliverables_response(request, retainer, deliverable_form=form)
    return render(request, "delivery/retainer_detail.html", retainer_context(request, retainer, deliverable_form=form))


# --- Lifecycle: pause, resume, cancel at period end, end now ----------------------------------


def _lifecycle(request: WorkspaceRequest, retainer: Retainer, action, success: str) -> HttpResponse:
    try:
        action()
    except services.DeliveryError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, success)
    return _to_retainer(request, retainer)


@require_POST
@workspace_view
def retainer_pause(request: WorkspaceRequest, retainer_id: int) -> HttpResponse:
    retainer = _get_retainer(request, retainer_id)
    today = request.workspace.today()
    return _lifecycle(
        request,
        retainer,
        lambda: services.pause_retainer(retainer=retainer, on=today, actor=request.user),
        "Paused. No work can be recorded until you resume; the period is extended by the pause.",
    )


@require_POST
@workspace_view
def retainer_resume(request: WorkspaceRequest, retainer_id: int) -> HttpResponse:
    retainer = _get_retainer(request, retainer_id)
    today = request.workspace.today()
    return _lifecycle(
        request, retainer, lambda: services.resume_retainer(retainer=retainer, on=today, actor=request.user), "Resumed."
    )


@require_POST
@workspace_view
def retainer_cancel(request: WorkspaceRequest, retainer_id: int) -> HttpResponse:
    """Cancel at the end of the current period (`cancel=1`), or undo that (`cancel=0`)."""
    retainer = _get_retainer(request, retainer_id)
    cancel = request.POST.get("cancel") != "0"
    success = "It will end when the current period closes." if cancel else "Cancellation undone: it continues."
    return _lifecycle(
        request,
        retainer,
        lambda: services.cancel_at_period_end(retainer=retainer, cancel=cancel, actor=request.user),
        success,
    )


@require_http_methods(["GET", "POST"])
@workspace_view
def retainer_end(request: WorkspaceRequest, retainer_id: int) -> HttpResponse:
    """End now, after a confirmation page that says what will happen to the balance."""
    retainer = _get_retainer(request, retainer_id)
    if retainer.status == Retainer.Status.ENDED:
        messages.info(request, "This retainer has already ended.")
        return _to_retainer(request, retainer)
    form = EndNowForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        services.end_retainer(retainer=retainer, on=request.workspace.today(), actor=request.user)
        messages.success(request, f"{retainer.name} has ended.")
        return _to_retainer(request, retainer)
    context = retainer_context(request, retainer, end_form=form)
    return render(request, "delivery/retainer_end.html", context)


# --- Amendments and adjustments --------------------------------------------------------------


def _post_retainer_form(
    request: WorkspaceRequest, retainer: Retainer, form: Any, *, key: str, save: Callable[[dict[str, Any]], str]
) -> HttpResponse:
    """A form posted from the retainer page: when valid, `save(cleaned_data)` does the work and
    returns the notice, and the retainer page follows; a DeliveryError shows next to its field, and
    the page comes back with the form (in the context under `key`), its errors and the focus on them."""
    if form.is_valid():
        try:
            notice = save(form.cleaned_data)
        except services.DeliveryError as error:
            add_service_error(form, error)
        else:
            messages.success(request, notice)
            return _to_retainer(request, retainer)
    form.set_focus()
    return render(request, "delivery/retainer_detail.html", retainer_context(request, retainer, **{key: form}))


@require_POST
@workspace_view
def retainer_amend(request: WorkspaceRequest, retainer_id: int) -> HttpResponse:
    retainer = _get_retainer(request, retainer_id)
    form = AmendForm(request.POST, retainer=retainer, workspace=request.workspace)

    def save(data: dict[str, Any]) -> str:
        amendment = services.amend_retainer(
            retainer=retainer, terms=form.terms(), reason=data["reason"].strip(), actor=request.user
        )
        return f"New terms saved: they apply from {date_format(amendment.effective_on, 'j M Y')}."

    return _post_retainer_form(request, retainer, form, key="amend_form", save=save)


@require_POST
@workspace_view
def retainer_adjust(request: WorkspaceRequest, retainer_id: int) -> HttpResponse:
    retainer = _get_retainer(request, retainer_id)

    def save(data: dict[str, Any]) -> str:
        entry = services.adjust_balance(
            retainer=retainer, quantity=data["quantity"], reason=data["reason"], actor=request.user
        )
        return f"Adjusted by {entry.quantity:+} {_unit(retainer)}."

    form = AdjustForm(request.POST, retainer=retainer)
    return _post_retainer_form(request, retainer, form, key="adjust_form", save=save)


@require_POST
@workspace_view
def retainer_collection(request: WorkspaceRequest, retainer_id: int) -> HttpResponse:
    """Charging the saved card when an invoice is issued, and pausing delivery on an unpaid one."""
    retainer = _get_retainer(request, retainer_id)

    def save(data: dict[str, Any]) -> str:
        services.set_collection(retainer=retainer, actor=request.user, **data)
        return "Payment collection saved."

    form = CollectionForm(request.POST, retainer=retainer)
    return _post_retainer_form(request, retainer, form, key="collection_form", save=save)


@require_POST
@workspace_view
def retainer_overage_request(request: WorkspaceRequest, retainer_id: int) -> HttpResponse:
    """Ask the client to approve extra units this period, with a message."""
    retainer = _get_retainer(request, retainer_id)

    def save(data: dict[str, Any]) -> str:
        approval = approvals.request_overage(
            retainer=retainer, offered=data["offered"], message=data["message"], actor=request.user
        )
        return f"Asked the client to approve up to {approval.offered} more."

    form = OverageRequestForm(request.POST, retainer=retainer)
    return _post_retainer_form(request, retainer, form, key="overage_form", save=save)


# --- Creating a retainer ---------------------------------------------------------------------


def _create_initial(request: WorkspaceRequest, params) -> tuple[dict[str, object], Plan | None]:
    """Initial values of the create form from the query: client, name, start, and a plan's terms."""
    workspace = request.workspace
    initial: dict[str, object] = {}
    if (client_id := _int(params.get("client"))) is not None:
        initial["client"] = client_id
    name = (params.get("name") or "").strip()[:120]
    if params.get("starts_on"):
        initial["starts_on"] = str(params.get("starts_on"))[:10]
    plan = None
    if (plan_id := _int(params.get("plan"))) is not None:
        plan = Plan.objects.for_workspace(workspace).filter(pk=plan_id, archived=False).first()
    if plan is not None:
        initial.update(terms_initial(plan.terms()))
        initial["plan"] = plan.pk
        # The name follows the plan unless someone typed their own.
        if not name or Plan.objects.for_workspace(workspace).filter(name__iexact=name).exists():
            name = plan.name
    if name:
        initial["name"] = name
    return initial, plan


@require_http_methods(["GET", "POST"])
@workspace_view
def retainer_create(request: WorkspaceRequest) -> HttpResponse:
    """Sign a retainer: pick a client, start from a plan (GET ?plan=, or htmx on change) or from scratch."""
    workspace = request.workspace
    if request.method == "POST" and "refresh" in request.POST:
        # The model was switched: show its fields, keep what was typed, save nothing.
        form = RetainerCreateForm(initial=request.POST.dict(), workspace=workspace)
        if request.htmx:
            context = {"form": form, "fields_id": "create-model-fields"}
            return render(request, "clients/_terms_fields.html#model-fields", context)
        plan = Plan.objects.for_workspace(workspace).filter(pk=_int(request.POST.get("plan")) or 0).first()
    elif request.method == "POST":
        form = RetainerCreateForm(request.POST, workspace=workspace)
        plan = None
        if form.is_valid():
            data = form.cleaned_data
            retainer = services.create_retainer(
                client=data["client"],
                name=data["name"],
                starts_on=data["starts_on"],
                plan=data["plan"],
                terms=form.terms(),
            )
            messages.success(request, f"{retainer.name} is signed; its first period is open.")
            return _to_retainer(request, retainer)
        plan = form.cleaned_data.get("plan")
        form.set_focus()
    else:
        initial, plan = _create_initial(request, request.GET)
        form = RetainerCreateForm(initial=initial, workspace=workspace)
    template = "delivery/retainer_create.html"
    if request.htmx and request.method == "GET":
        template += "#create-form"
    context = {"form": form, "plan": plan, "plans": cast("forms.ModelChoiceField[Plan]", form.fields["plan"]).queryset}
    return render(request, template, context)


# --- The ledger and the periods ------------------------------------------------------------


@require_GET
@workspace_view
def retainer_ledger(request: WorkspaceRequest, retainer_id: int) -> HttpResponse:
    """Every entry, newest period first, with each period's running balance computed in SQL."""
    retainer = _get_retainer(request, retainer_id)
    workspace = request.workspace
    reversal = LedgerEntry.objects.for_workspace(workspace).filter(reverses=OuterRef("pk"))
    entries = (
        LedgerEntry.objects.for_workspace(workspace)
        .filter(retainer=retainer)
        .select_related("period", "actor", "work_item", "reverses")
        .annotate(
            running_balance=Window(
                Sum("quantity"), partition_by=[F("period_id")], order_by=[F("created_at").asc(), F("pk").asc()]
            ),
            reversed_by_id=Subquery(reversal.values("pk")[:1]),
            reversed_at=Subquery(reversal.values("created_at")[:1]),
            reversed_reason=Subquery(reversal.values("reason")[:1]),
        )
        .order_by("-period__seq", "created_at", "pk")
    )
    page = Paginator(entries, LEDGER_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"retainer": retainer, "page": page, "unit": _unit(retainer), "tab": "ledger"}
    return render(request, "delivery/retainer_ledger.html", context)


@dataclass
class PeriodRow:
    period: Period
    available: Decimal
    used: Decimal
    utilisation: int | None  # percent (retainers.units.utilisation_percent)
    went_over: bool
    overage: Decimal


@require_GET
@workspace_view
def retainer_periods(request: WorkspaceRequest, retainer_id: int) -> HttpResponse:
    """Utilisation over time: each period's units in and out, as a table and a bar chart."""
    retainer = _get_retainer(request, retainer_id)
    usage = Q(entries__work_item__isnull=False)
    adjustment = Q(entries__kind=Kind.ADJUSTMENT) | Q(entries__kind=Kind.REVERSAL, entries__work_item__isnull=True)
    periods = (
        Period.objects.for_workspace(request.workspace)
        .filter(retainer=retainer)
        .annotate(
            adjusted=Sum("entries__quantity", filter=adjustment, default=ZERO),
            usage=Sum("entries__quantity", filter=usage, default=ZERO),
        )
        .order_by("seq")
    )
    rows = []
    for period in periods:
        available = period.allotted + period.rolled_in + period.adjusted
        used = -period.usage
        is_open = period.status == Period.Status.OPEN
        rows.append(
            PeriodRow(
                period=period,
                available=available,
                used=used,
                utilisation=utilisation_percent(used, available),
                went_over=went_over(used, available),
                overage=max(used - available, ZERO) if is_open else period.overage,
            )
        )
    chart = None
    if rows and retainer.model != RetainerTerms.Model.DELIVERABLES:
        chart = charts.utilisation_bars([(f"{r.period.start_on:%b %y}", r.utilisation, r.went_over) for r in rows])
    context = {"retainer": retainer, "rows": rows[::-1], "chart": chart, "unit": _unit(retainer), "tab": "periods"}
    return render(request, "delivery/retainer_periods.html", context)
