"""The client's invoices in the portal: the list with status and a pay button, and each PDF.

Only issued invoices are shown (never drafts); credit notes are listed as such. Every
query is narrowed to `request.contact.client`: another client's invoice is a 404.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.paginator import Paginator
from django.db import models
from django.http import FileResponse, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

from billing import paylinks
from billing.models import OWED, Invoice
from billing.pdf import current_pdf
from billing.selectors import payment_options
from portal.http import PortalRequest, portal_view
from retainers.money import format_money

INVOICES_PER_PAGE = 20
PAYABLE = (Invoice.Status.OPEN, Invoice.Status.UNCOLLECTIBLE)


def client_invoices(request: PortalRequest):
    """The one way the portal reaches invoices: issued ones of the contact's client."""
    return (
        Invoice.objects.for_workspace(request.workspace)
        .filter(client=request.contact.client)
        .exclude(status=Invoice.Status.DRAFT)
    )


@dataclass
class InvoiceRow:
    invoice: Invoice
    is_credit_note: bool
    total: str
    balance: str
    status: str  # what the client reads
    tone: str  # badge-*
    pay_url: str  # empty when there is nothing to pay


def invoice_row(invoice: Invoice, *, today, locale: str) -> InvoiceRow:
    def fmt(minor: int) -> str:
        return format_money(minor, invoice.currency, locale)

    is_credit_note = invoice.kind == Invoice.Kind.CREDIT_NOTE
    payable = not is_credit_note and invoice.status in PAYABLE and invoice.owed_minor > 0
    state = invoice.state(on=today, for_client=True)  # the consultant's vocabulary (billing.models)
    return InvoiceRow(
        invoice=invoice,
        is_credit_note=is_credit_note,
        total=fmt(invoice.total_minor),
        balance=fmt(invoice.owed_minor if payable else 0),
        status=state.label,
        tone=state.tone,
        pay_url=paylinks.pay_url(invoice) if payable else "",
    )


@require_GET
@portal_view
def invoice_list(request: PortalRequest) -> HttpResponse:
    workspace = request.workspace
    today, locale = workspace.today(), workspace.locale or "en_US"
    invoices = (
        client_invoices(request)
        .select_related("credit_for")
        .order_by("-issued_on", "-pk")
        .fetch_mode(models.FETCH_RAISE)
    )
    page = Paginator(invoices, INVOICES_PER_PAGE).get_page(request.GET.get("page"))
    rows = [invoice_row(invoice, today=today, locale=locale) for invoice in page.object_list]
    # What is due over all pages, per currency: the page alone would understate it.
    totals = (
        client_invoices(request)
        .filter(status__in=PAYABLE)
        .exclude(kind=Invoice.Kind.CREDIT_NOTE)
        .alias(left=OWED)
        .filter(left__gt=0)
        .values("currency")
        .annotate(due=models.Sum("left"))
        .order_by("currency")
    )
    outstanding = [format_money(t["due"], t["currency"], locale) for t in totals if t["due"] > 0]
    context = {
        "page": page,
        "rows": rows,
        "outstanding": outstanding,
        "pay_label": payment_options(workspace).pay_label,
    }
    return render(request, "portal/invoices.html", context)


@cache_control(private=True, no_store=True)  # a client's money: kept by no shared or browser cache
@require_GET
@portal_view
def invoice_pdf(request: PortalRequest, invoice_id: int) -> FileResponse:
    """The stored PDF (rendered and stored first if it is not there yet), as a download."""
    invoices = client_invoices(request).select_related("workspace", "client", "credit_for")
    invoice = get_object_or_404(invoices, pk=invoice_id)
    current_pdf(invoice)  # rendered now if its task has not yet, or again if money moved since
    filename = f"{invoice.number or invoice.pk}.pdf"
    return FileResponse(invoice.pdf.open("rb"), as_attachment=True, filename=filename, content_type="application/pdf")
