"""Billing's read-models shared by its pages, PDFs and the pages other apps compose: what is owed,
invoice rows as lists show them, the client page's billing section, and how a workspace can be paid."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, TypedDict, cast

from django.core.paginator import Paginator
from django.db.models import Case, Count, F, Q, QuerySet, Sum, Value, When, Window

from billing import cards, csv_export, services, stripe_api
from billing.models import OWED, BillingProfile, Invoice, InvoiceState, Payment
from clients.models import Client
from retainers.http import WorkspaceRequest
from retainers.models import Workspace
from retainers.search import NOTHING, Found

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

SECTION_ROWS = 20  # a page of invoices, and of payments, on the client page's Billing tab
NEWEST_FIRST = (F("issued_on").desc(nulls_first=True), "-number", "-pk")  # drafts (no date yet) on top


def outstanding_totals(invoices: QuerySet[Invoice], *, today: date) -> list[Mapping[str, object]]:
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


class InvoiceRow(TypedDict):
    """What annotate_rows sets on each invoice for the lists."""

    shown_state: InvoiceState
    due_minor: int


def annotate_rows(invoices: list[Invoice], today: date) -> list[WithAnnotations[Invoice, InvoiceRow]]:
    """Each row with its status in the one vocabulary (`shown_state`) and what it still asks for."""
    rows = cast("list[WithAnnotations[Invoice, InvoiceRow]]", invoices)  # with the attributes set here
    for invoice in rows:
        invoice.shown_state = invoice.state(on=today)
        invoice.due_minor = csv_export.amount_due_minor(invoice)
    return rows


def client_section(
    request: WorkspaceRequest, client: Client, *, page: str | None = None, payments_page: str | None = None
) -> dict[str, object]:
    """Page `page` of one client's invoices and page `payments_page` of its payments, the card it
    has saved, and its held first invoices: seven queries however much there is."""
    workspace = request.workspace
    today = workspace.today()
    invoices = Invoice.objects.for_workspace(workspace).filter(client=client)
    invoice_page = Paginator(invoices.select_related("credit_for").order_by(*NEWEST_FIRST), SECTION_ROWS).get_page(page)
    invoice_page.object_list = annotate_rows(list(invoice_page.object_list), today)
    payment_page = Paginator(
        Payment.objects.for_workspace(workspace)
        .filter(client=client)
        .select_related("invoice")
        .order_by("-created_at", "-pk"),
        SECTION_ROWS,
    ).get_page(payments_page)
    return {
        "client": client,
        "invoices": invoice_page,
        "payments": payment_page,
        "totals": outstanding_totals(invoices, today=today),
        "card": cards.card_on_file(client),
        # Renewed terms' first invoices that wait for the previous term's to be paid, with why.
        "held": list(services.held_first_invoices(workspace.pk, today, client_id=client.pk).values()),
    }


@dataclass(frozen=True)
class PaymentOptions:
    """How a workspace's clients can pay it, as it really is set up today."""

    card: bool  # Stripe is connected: the pay link takes cards
    bank_transfer: bool  # the billing profile has payment instructions (bank details)
    instructions: str  # those instructions, as typed

    @property
    def pay_label(self) -> str:
        """The words on a button or link to an invoice's pay page: "Pay" promises a way to pay
        there and then, which only a card is; otherwise the page shows how to pay."""
        return "Pay" if self.card else "How to pay"


def payment_options(workspace: Workspace, *, profile: BillingProfile | None = None) -> PaymentOptions:
    """The one answer to "how can this workspace be paid?": a card only when Stripe is connected,
    a bank transfer only when there are bank details to pay to. Pass the profile if you have it."""
    if profile is None:
        profile = BillingProfile.objects.filter(workspace=workspace).first()
    instructions = (profile.payment_instructions if profile else "").strip()
    return PaymentOptions(
        card=stripe_api.is_configured(workspace), bank_transfer=bool(instructions), instructions=instructions
    )


INVOICE_NUMBER = re.compile(r"[A-Za-z0-9][\w/-]{0,19}")


def search_invoices(workspace: Workspace, text: str, *, limit: int) -> Found[Invoice]:
    """The workspace's invoices whose number is `text` or starts with it (exact first, newest next);
    a bare serial ("12") also finds that serial in every year ("2025-0012", "2026-0012")."""
    term = text.strip()
    if not INVOICE_NUMBER.fullmatch(term):
        return NOTHING
    matches = Q(number__startswith=term)
    if term.isdigit() and len(term) <= 4:
        matches |= Q(number__endswith=f"-{int(term):04d}")
    rows = list(
        Invoice.objects.for_workspace(workspace)
        .exclude(number="")
        .filter(matches)
        .select_related("client")
        .annotate(
            search_exact=Case(When(number=term, then=Value(0)), default=Value(1)),
            search_total=Window(Count("pk")),
        )
        .order_by("search_exact", "-number")[:limit]
    )
    return Found(total=getattr(rows[0], "search_total", 0) if rows else 0, rows=rows)
