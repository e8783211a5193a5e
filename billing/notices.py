"""What the payment flows tell people about an invoice: the emails' shared context, the PDF
attached, and the overdue notice to both sides (sent by dunning, and when the last automatic
charge fails)."""

from __future__ import annotations

from datetime import date

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from billing.models import Invoice, Payment
from billing.paylinks import client_email, pay_url, seller_name
from billing.selectors import payment_options
from retainers.money import format_money
from retainers.outbox import queue_email
from retainers.services import consultant_recipients


def tell_overdue(invoice: Invoice, *, today: date, collection_stopped: bool = False) -> bool:
    """Both sides, once per invoice (claimed on `overdue_notified_at`). Call inside a transaction."""
    claimed = Invoice.objects.filter(pk=invoice.pk, overdue_notified_at=None).update(overdue_notified_at=timezone.now())
    if not claimed:
        return False
    context = {
        **invoice_context(invoice),
        "days_overdue": max((today - invoice.due_on).days, 0) if invoice.due_on else 0,
        "is_overdue": invoice.is_overdue(on=today),
        "collection_stopped": collection_stopped,
    }
    if to := client_email(invoice):
        queue_email(
            to=to,
            template="invoice_overdue",
            context=context,
            workspace=invoice.workspace,
            client_id=invoice.client_id,
            key=f"invoice-{invoice.pk}-overdue",
            attachments=pdf_attachment(invoice),
        )
    for user_id, email in consultant_recipients(invoice.workspace_id):
        queue_email(
            to=email,
            template="invoice_overdue_consultant",
            context=context,
            workspace=invoice.workspace,
            key=f"invoice-{invoice.pk}-overdue-{user_id}",
        )
    return True


def locale_of(obj: Invoice | Payment) -> str:
    return obj.workspace.locale or "en_US"


def pdf_attachment(invoice: Invoice) -> list[dict[str, str]]:
    if not invoice.pdf.name:  # the same test as `not invoice.pdf`, which the checker cannot read
        return []
    return [{"path": invoice.pdf.name, "filename": f"{invoice.number}.pdf", "mimetype": "application/pdf"}]


def money(minor: int, invoice: Invoice) -> str:
    return format_money(minor, invoice.currency, locale_of(invoice))


def invoice_context(invoice: Invoice) -> dict[str, object]:
    """What every email about an invoice may say. `balance` is what the client is asked to pay
    (refunds are not asked back); `state` its status in the one vocabulary (Invoice.state)."""
    locale = locale_of(invoice)
    state = invoice.state(on=invoice.workspace.today(), for_client=True)
    options = payment_options(invoice.workspace)
    return {
        "invoice": invoice,
        "workspace": invoice.workspace,
        "client": invoice.client,
        "seller_name": seller_name(invoice.workspace),
        "total": format_money(invoice.total_minor, invoice.currency, locale),
        "balance": format_money(invoice.owed_minor, invoice.currency, locale),
        "state": state,
        "state_label": state.label,
        "pay_url": pay_url(invoice),
        "card_payments": options.card,  # the pay link offers a card only when Stripe is connected
        "pay_label": options.pay_label,
        "portal_url": settings.SITE_URL + reverse("portal:home"),
        "invoice_url": invoice_admin_url(invoice),  # for the consultant's emails
    }


def invoice_admin_url(invoice: Invoice) -> str:
    return settings.SITE_URL + reverse("billing:invoice_detail", args=[invoice.workspace.slug, invoice.pk])
