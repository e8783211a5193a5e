"""The period statement: one period of one retainer as a PDF the client can keep.

What was bought, used, rolled in and out, expired and billed as overage, with the work
log of the period. Every number comes from the period's ledger (as the consultant's
ledger page shows it) and, once the period is closed, from the figures its close wrote.
Rendered on demand (it is a view of the ledger, not a document of record like an invoice).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, TypedDict, cast

from django.db import models
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

from billing.models import BillingProfile, Invoice
from billing.pdf import render_pdf
from clients.models import Retainer, RetainerTerms
from delivery.figures import ZERO, period_figures, time_logged
from delivery.forecast import origin_name, origin_periods
from delivery.models import Deliverable, LedgerEntry, Period, WorkItem
from portal.http import PortalRequest, portal_view
from retainers.money import format_money, multiply
from retainers.ratelimits import rate_limit
from retainers.units import format_units

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

Kind = LedgerEntry.Kind
CLOSING_KINDS = (Kind.EXPIRY, Kind.ROLLOVER_OUT, Kind.OVERAGE)


@dataclass(frozen=True)
class Line:
    """One row of the statement's units table."""

    label: str
    quantity: str
    note: str = ""
    strong: bool = False


class StatementItem(TypedDict):
    amount: str  # the quantity as the statement prints it


def statement_context(request: PortalRequest, retainer: Retainer, period: Period) -> dict[str, object]:
    """Everything the statement prints: a fixed number of queries."""
    workspace = request.workspace
    today = workspace.today()
    locale = workspace.locale or "en_US"
    unit = retainer.get_unit_display().lower()

    def u(quantity: Decimal) -> str:
        return format_units(quantity, retainer.unit)

    def money(minor: int) -> str:
        return format_money(minor, period.currency, locale)

    entries = list(
        origin_periods(workspace, LedgerEntry.objects.for_workspace(workspace).filter(period=period))
        .values_list(
            "kind",
            "quantity",
            "origin_seq",
            "work_item_id",
            "work_item__delivered_on",
            "reason",
            "created_at",
            "origin_start",
            "origin_end",
        )
        .order_by("created_at", "pk")
    )
    origins = {row[2]: (row[7], row[8]) for row in entries if row[7] is not None}

    def origin(seq: int) -> str:
        return origin_name(retainer, period, seq, origins)

    figures = period_figures(retainer, period, [row[:5] for row in entries], today)
    is_open = period.status == Period.Status.OPEN
    is_units = retainer.model != RetainerTerms.Model.DELIVERABLES

    lines: list[Line] = []
    if is_units:
        lines.append(Line("Allotment", u(figures.allotted), f"{retainer.get_cadence_display().lower()} allotment"))
        for kind, quantity, origin_seq, work_item_id, *_ in entries:
            if kind == Kind.ROLLOVER_IN and work_item_id is None:
                if quantity >= 0:
                    lines.append(Line("Rolled in", u(quantity), f"unused in {origin(origin_seq)}"))
                else:
                    lines.append(Line("Carried in", u(quantity), "negative balance of the previous period"))
        for kind, quantity, _, work_item_id, _, reason, created_at, *_ in entries:
            if work_item_id is None and kind in (Kind.ADJUSTMENT, Kind.REVERSAL):
                day = timezone.localtime(created_at).date()
                lines.append(Line("Adjustment", u(quantity), f"{day.day} {day:%b}: {reason}" if reason else ""))
        lines.append(Line("Available", u(figures.available), strong=True))
    if is_units:
        lines.append(Line("Used", u(-figures.used), "billable work, listed below"))
        if is_open:
            lines.append(Line("Remaining so far", u(figures.remaining), strong=True))

    closing: list[Line] = []
    if is_units and not is_open:
        # The close's own entries, as the ledger has them: what expired (by origin), rolled on, was billed.
        for kind, quantity, origin_seq, _, _, reason, *_ in entries:
            if kind == Kind.EXPIRY:
                closing.append(Line("Expired", u(quantity), f"from {origin(origin_seq)}: {reason}"))
            elif kind == Kind.ROLLOVER_OUT and quantity < 0:
                closing.append(Line("Rolled out", u(quantity), f"from {origin(origin_seq)}, into the next period"))
            elif kind == Kind.ROLLOVER_OUT:
                note = "used beyond the balance, carried into the next period"
                closing.append(Line("Carried out", u(quantity), note))
            elif kind == Kind.OVERAGE:
                closing.append(Line("Overage", u(quantity), "used beyond the balance, billed"))
        balance = sum((q for _, q, *_ in entries), ZERO)
        closing.append(Line("Balance at close", u(balance), strong=True))

    summary = {
        "allotted": u(figures.allotted),
        "rolled_in": u(figures.rolled_in),
        "adjusted": u(figures.adjusted),
        "available": u(figures.available),
        "used": u(figures.used),
        "remaining": u(figures.remaining),
        "expired": u(period.expired if not is_open else ZERO),
        "rolled_out": u(period.rolled_out if not is_open else ZERO),
        "overage": u(period.overage if not is_open else figures.overage),
        "expiring": u(figures.expiring),
    }
    overage = period.overage if not is_open else figures.overage
    overage_billed = ""
    if is_units and overage > 0 and (not is_open or retainer.overage_policy == RetainerTerms.Overage.BILL):
        overage_billed = (
            f"{u(overage)} {unit} × {money(period.overage_rate_minor)} = "
            f"{money(multiply(period.overage_rate_minor, overage))}"
        )

    items = cast(
        "list[WithAnnotations[WorkItem, StatementItem]]",  # with the amount set below
        list(
            WorkItem.objects.for_workspace(workspace)
            .filter(period=period, removed_at=None)
            .select_related("delivered_by", "deliverable")
            .order_by("delivered_on", "created_at", "pk")
            .fetch_mode(models.FETCH_RAISE)
        ),
    )
    for item in items:
        item.amount = u(item.quantity)
    logged = time_logged(items)
    if not is_units:
        lines.append(Line("Time logged", u(logged), "the work listed below", strong=True))
        summary["used"] = u(logged)
    deliverables = list(
        Deliverable.objects.for_workspace(workspace).filter(period=period).order_by("pk").fetch_mode(models.FETCH_RAISE)
    )
    invoices = [
        {
            "number": invoice.number,
            "issued_on": invoice.issued_on,
            "total": money(invoice.total_minor),
            "status": invoice.state(on=today, for_client=True).label,
        }
        for invoice in Invoice.objects.for_workspace(workspace)
        .filter(period=period, client=request.contact.client)
        .exclude(status=Invoice.Status.DRAFT)
        .order_by("issued_on", "pk")
    ]
    profile = BillingProfile.objects.filter(workspace=workspace).first()
    return {
        "workspace": workspace,
        "seller": (profile.legal_name if profile else "") or workspace.name,
        "client": request.contact.client,
        "retainer": retainer,
        "period": period,
        "period_last_on": period.end_on - timedelta(days=1),
        "is_open": is_open,
        "is_units": is_units,
        "unit": unit,
        "figures": figures,
        "summary": summary,
        "lines": lines,
        "closing": closing,
        "fee": money(period.price_minor),
        "overage_billed": overage_billed,
        "items": items,
        "billable_total": u(sum((i.quantity for i in items if i.billable), ZERO)),
        "unbilled_total": u(sum((i.quantity for i in items if not i.billable), ZERO)),
        "deliverables": deliverables,
        "invoices": invoices,
        "today": today,
    }


def render_statement_pdf(context: dict[str, object]) -> bytes:
    # The invoice's machinery: fonts and stylesheets prepared once per process (billing.pdf).
    return render_pdf("portal/statement_pdf.html", context, stylesheet="statement.css")


@rate_limit("statement_pdf")
@cache_control(private=True, no_store=True)  # a client's money: kept by no shared or browser cache
@require_GET
@portal_view
def statement_pdf(request: PortalRequest, retainer_id: int, period_id: int) -> HttpResponse:
    """The statement of one period of one of the client's retainers; another client's is a 404."""
    retainer = get_object_or_404(
        Retainer.objects.for_workspace(request.workspace).filter(client=request.contact.client), pk=retainer_id
    )
    period = get_object_or_404(Period.objects.for_workspace(request.workspace).filter(retainer=retainer), pk=period_id)
    period.retainer = retainer
    data = render_statement_pdf(statement_context(request, retainer, period))
    filename = f"statement-{slugify(retainer.name) or retainer.pk}-{period.start_on:%Y-%m-%d}.pdf"
    return HttpResponse(
        data,
        content_type="application/pdf",
        headers={"Content-Disposition": content_disposition_header(True, filename)},
    )
