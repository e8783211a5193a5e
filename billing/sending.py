"""What happens to an invoice once issued: its PDF is rendered, then it is charged or emailed.

Runs in a task after the billing transaction committed; every step is idempotent, so a
retried task renders once, emails once (outbox key) and charges once (Stripe idempotency key).
"""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from billing.charges import charge_invoice
from billing.models import Invoice
from billing.paylinks import pay_url
from billing.pdf import store_invoice_pdf
from retainers.money import format_money
from retainers.outbox import queue_email


def recipient(invoice: Invoice) -> str:
    client = invoice.client
    if client.billing_email:
        return client.billing_email
    contact = client.contacts.order_by("pk").first()
    return contact.email if contact else ""


def deliver_invoice(invoice_id: int) -> None:
    invoice = Invoice.objects.select_related("workspace", "client").get(pk=invoice_id)
    store_invoice_pdf(invoice, pay_url=pay_url(invoice) if invoice.kind != Invoice.Kind.CREDIT_NOTE else "")
    # Also when no longer open: a task run twice must not email an invoice its first run charged.
    if invoice.auto_charge and charge_invoice(invoice):
        return  # charged (or declined): the receipt (or the payment-failed notice) is the email
    send_invoice_email(invoice)


def send_invoice_email(invoice: Invoice, *, resend: bool = False) -> None:
    """Email the invoice with its PDF, once (outbox key). `resend` sends it again: its key is
    per minute, so a double click sends one."""
    to = recipient(invoice)
    if not to:
        return
    invoice.refresh_from_db()
    if not invoice.pdf:
        store_invoice_pdf(invoice, pay_url=pay_url(invoice))
    assert invoice.pdf.name  # stored by now
    locale = invoice.workspace.locale or "en_US"
    queue_email(
        to=to,
        template="invoice_issued" if invoice.kind != Invoice.Kind.CREDIT_NOTE else "credit_note_issued",
        context={
            "invoice": invoice,
            "workspace": invoice.workspace,
            "client": invoice.client,
            "total": format_money(invoice.total_minor, invoice.currency, locale),
            "balance": format_money(invoice.balance_minor, invoice.currency, locale),
            "pay_url": pay_url(invoice),
            "portal_url": settings.SITE_URL + reverse("portal:home"),
        },
        sender_name=invoice.workspace.name,
        key=f"invoice-{invoice.pk}-resent-{timezone.now():%Y%m%d%H%M}" if resend else f"invoice-{invoice.pk}-issued",
        attachments=[{"path": invoice.pdf.name, "filename": f"{invoice.number}.pdf", "mimetype": "application/pdf"}],
    )
    Invoice.objects.filter(pk=invoice.pk, sent_at=None).update(sent_at=timezone.now())
