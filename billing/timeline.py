"""Billing's events on the client's timeline (dashboard.timeline merges them): invoices issued and money moved."""

from __future__ import annotations

from django.urls import reverse

from billing.models import Invoice, Payment
from clients.models import Client
from clients.timeline import Cursor, Event
from retainers.http import WorkspaceRequest
from retainers.money import format_money


def invoices(
    request: WorkspaceRequest, client: Client, kinds: frozenset[str], before: Cursor | None, limit: int
) -> list[Event]:
    """Issued invoices and credit notes (drafts are not events yet), one query."""
    rows = Invoice.objects.for_workspace(request.workspace).filter(client=client).exclude(number="")
    if before is not None:
        rows = rows.filter(before.q("invoice", "created_at"))
    locale, today = request.workspace.locale, request.workspace.today()
    return [
        Event(
            at=invoice.created_at,
            kind="invoice",
            title=f"{'Credit note' if invoice.kind == Invoice.Kind.CREDIT_NOTE else 'Invoice'} {invoice.number}",
            url=reverse("billing:invoice_detail", args=[request.workspace.slug, invoice.pk]),
            detail=f"{format_money(invoice.total_minor, invoice.currency, locale)} · {invoice.state(on=today).label}",
            pk=invoice.pk,
        )
        for invoice in rows.order_by("-created_at", "-pk")[:limit]
    ]


def payments(
    request: WorkspaceRequest, client: Client, kinds: frozenset[str], before: Cursor | None, limit: int
) -> list[Event]:
    """Payments, failed attempts and refunds, one query."""
    rows = Payment.objects.for_workspace(request.workspace).filter(client=client).select_related("invoice")
    if before is not None:
        rows = rows.filter(before.q("payment", "created_at"))
    locale = request.workspace.locale
    events = []
    for payment in rows.order_by("-created_at", "-pk")[:limit]:
        amount = format_money(payment.amount_minor, payment.currency, locale)
        if payment.kind == Payment.Kind.REFUND:
            title = f"Refund of {amount}"
        elif payment.status == Payment.Status.FAILED:
            title = f"Failed payment of {amount}"
        else:
            title = f"Payment of {amount} ({payment.get_status_display().lower()})"
        events.append(
            Event(
                at=payment.created_at,
                kind="payment",
                title=title,
                url=reverse("billing:invoice_detail", args=[request.workspace.slug, payment.invoice_id]),
                detail=f"Invoice {payment.invoice.number} · {payment.get_method_display()}"
                + (f" · {payment.failure_message}" if payment.failure_message else ""),
                pk=payment.pk,
            )
        )
    return events
