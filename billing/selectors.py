"""Billing's read-models shared by its pages and the pages other apps compose: what is owed,
invoice rows as lists show them, and the client page's billing section."""

from __future__ import annotations

from datetime import date

from django.db.models import Count, F, Q, QuerySet, Sum

from billing import cards, csv_export
from billing.models import OWED, Invoice, Payment
from clients.models import Client
from retainers.http import WorkspaceRequest

SECTION_ROWS = 20  # newest invoices and payments on the client page; the rest on the invoices page
NEWEST_FIRST = (F("issued_on").desc(nulls_first=True), "-number", "-pk")  # drafts (no date yet) on top


def outstanding_totals(invoices: QuerySet[Invoice], *, today: date) -> list[dict[str, object]]:
    """What open invoices still ask for, and how much of it is overdue, per currency (one query)."""
    overdue = Q(due_on__lt=today)
    return list(
        invoices.filter(status=Invoice.Status.OPEN)
        .exclude(kind=Invoice.Kind.CREDIT_NOTE)
        .order_by()
        .values("currency")
        .annotate(
            outstanding=Sum(OWED, default=0),
            open_count=Count("pk"),
            overdue=Sum(OWED, filter=overdue, default=0),
            overdue_count=Count("pk", filter=overdue),
        )
        .order_by("currency")
    )


def annotate_rows(invoices: list[Invoice], today: date) -> list[Invoice]:
    """Each row with its status in the one vocabulary (`shown_state`) and what it still asks for."""
    for invoice in invoices:
        invoice.shown_state = invoice.state(on=today)
        invoice.due_minor = csv_export.amount_due_minor(invoice)
    return invoices


def client_section(request: WorkspaceRequest, client: Client) -> dict[str, object]:
    """Payment history of one client, and the card it has saved: four queries however much there is."""
    workspace = request.workspace
    today = workspace.today()
    invoices = Invoice.objects.for_workspace(workspace).filter(client=client)
    recent_invoices = annotate_rows(
        list(invoices.select_related("credit_for").order_by(*NEWEST_FIRST)[: SECTION_ROWS + 1]), today
    )
    recent_payments = list(
        Payment.objects.for_workspace(workspace)
        .filter(client=client)
        .select_related("invoice")
        .order_by("-created_at", "-pk")[: SECTION_ROWS + 1]
    )
    return {
        "client": client,
        "invoices": recent_invoices[:SECTION_ROWS],
        "more_invoices": len(recent_invoices) > SECTION_ROWS,
        "payments": recent_payments[:SECTION_ROWS],
        "more_payments": len(recent_payments) > SECTION_ROWS,
        "totals": outstanding_totals(invoices, today=today),
        "card": cards.card_on_file(client),
    }
