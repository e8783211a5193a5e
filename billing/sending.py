"""What happens to an invoice once issued: it is charged, or emailed with its PDF (its
*delivery*); and once money moves on it, its PDF is rendered (again) and the receipt sent (its
*follow-up*). A charged invoice's PDF is rendered once, after the charge, by the follow-up its
delivery runs (the follow-up task queued by the charge leaves it to the delivery under way).

A task queued on commit does each; `deliver_due` (the sweep: `manage.py deliver_invoices`, and
beat every 10 minutes) does what a lost task did not. Every step is idempotent, so a task run
twice, or a task and the sweep at once, render, email (outbox key) and charge (Stripe idempotency
key, charge attempts claimed on the invoice) once:

- delivery is claimed on the invoice with a conditional UPDATE of `delivery_claimed_at` (a lease:
  a worker that died mid-way loses it after DELIVERY_LEASE) and done once `delivered_at` is set;
- a failure the task cannot retry (not an OSError: a template error, a bug in rendering) is
  recorded in `delivery_error` for the consultant (the invoice page, the dashboard) and the sweep
  tries again after the lease; an OSError (storage, Stripe unreachable) gives the claim back and
  is raised for Celery to retry;
- receipts are claimed per payment (`receipt_queued_at`) and queued only once the PDF says PAID.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from billing.charges import charge_invoice
from billing.models import Invoice, Payment
from billing.notices import invoice_context, money, pdf_attachment
from billing.pdf import current_pdf
from retainers import tenancy
from retainers.outbox import queue_email
from retainers.transient import TRANSIENT_ERRORS

log = logging.getLogger(__name__)

DELIVERY_LEASE = timedelta(minutes=15)  # a claim older than this belongs to a worker that died
SWEEP_OLDER_THAN = timedelta(minutes=15)  # the sweep leaves younger invoices to their own tasks
NO_RECIPIENT = "No billing email or contact to send it to: add one to the client, or send the PDF yourself."
UNDELIVERABLE = (Invoice.Status.DRAFT, Invoice.Status.VOID)


def recipient(invoice: Invoice) -> str:
    client = invoice.client
    if client.billing_email:
        return client.billing_email
    contact = client.contacts.order_by("pk").first()
    return contact.email if contact else ""


# --- Delivery ----------------------------------------------------------------------------------


def _claim_delivery(invoice_id: int, *, now: datetime) -> bool:
    lease_over = Q(delivery_claimed_at=None) | Q(delivery_claimed_at__lt=now - DELIVERY_LEASE)
    return (
        Invoice.objects.filter(lease_over, pk=invoice_id, delivered_at=None)
        .exclude(status__in=UNDELIVERABLE)
        .exclude(delivery_due_at=None)
        .update(delivery_claimed_at=now)
        == 1
    )


@tenancy.per_row("billing.Invoice")
def deliver_invoice(invoice_id: int, *, as_of: date | None = None) -> bool:
    """Charge the saved card (auto-charge invoices) or email the invoice with its PDF; once.
    Returns True when it was delivered now. Then its follow-up: a charged invoice's PDF, rendered
    after the charge, and the receipt for it.

    Raises OSError (storage, Stripe unreachable) or a database error for the task to retry; records any other failure
    on the invoice for the consultant. `as_of` is the business date of the run that issued it
    (the charge attempt and its retry schedule are dated from it).
    """
    now = timezone.now()
    if not _claim_delivery(invoice_id, now=now):
        # Delivered already (or another worker is on it): what may be left is the follow-up.
        follow_up(invoice_id)
        return False
    invoice = Invoice.objects.select_related("workspace", "client").get(pk=invoice_id)
    try:
        # Also when no longer open: a task run twice must not email an invoice its first run charged.
        charged = invoice.auto_charge and charge_invoice(invoice, as_of=as_of)
        if not charged and not send_invoice_email(invoice):  # renders the PDF it attaches
            _failed(invoice, NO_RECIPIENT)
            return False
    except TRANSIENT_ERRORS:
        # Storage, Stripe or the database away for a moment: the task retries. (With the database
        # away the claim cannot be released either; the sweep takes it over once its lease is over.)
        Invoice.objects.filter(pk=invoice_id, delivery_claimed_at=now).update(delivery_claimed_at=None)
        raise
    except Exception as exc:
        log.exception("delivery of invoice %s failed", invoice_id)
        _failed(invoice, f"{type(exc).__name__}: {exc}")
        return False
    Invoice.objects.filter(pk=invoice_id, delivered_at=None).update(delivered_at=timezone.now(), delivery_error="")
    # A charged invoice's PDF is rendered here, after the charge: once, saying PAID (or how to pay,
    # after a decline). Rendered before the charge it would be stale at once and rendered again.
    follow_up(invoice_id)
    return True


def _failed(invoice: Invoice, message: str) -> None:
    # The claim stays: the sweep tries again once its lease is over (a fixed bug, an added email).
    Invoice.objects.filter(pk=invoice.pk).update(delivery_error=message[:2000])


def send_invoice_email(invoice: Invoice, *, resend: bool = False) -> bool:
    """Email the invoice with its PDF, once (outbox key); False when there is no one to send it to.
    `resend` sends it again: its key is per minute, so a double click sends one."""
    to = recipient(invoice)
    if not to:
        return False
    invoice.refresh_from_db()
    current_pdf(invoice)
    queue_email(
        to=to,
        template="invoice_issued" if invoice.kind != Invoice.Kind.CREDIT_NOTE else "credit_note_issued",
        context=invoice_context(invoice),
        workspace=invoice.workspace,
        client_id=invoice.client_id,
        key=f"invoice-{invoice.pk}-resent-{timezone.now():%Y%m%d%H%M}" if resend else f"invoice-{invoice.pk}-issued",
        attachments=pdf_attachment(invoice),
    )
    now = timezone.now()
    Invoice.objects.filter(pk=invoice.pk, sent_at=None).update(sent_at=now)
    if not invoice.auto_charge:  # emailed counts as delivered (an auto-charge invoice is still to charge)
        Invoice.objects.filter(pk=invoice.pk, delivered_at=None).update(delivered_at=now, delivery_error="")
    return True


# --- Follow-up: after money moved --------------------------------------------------------------


@tenancy.per_row("billing.Invoice")
def follow_up_unless_delivering(invoice_id: int, *, now: datetime | None = None) -> bool:
    """The follow-up task's work: `follow_up`, unless the invoice's delivery is under way (claimed
    by a live worker, not delivered yet), which follows up itself once it is done: a charge made by
    the delivery moves money before the PDF is rendered, and this task, run at once by another
    worker, would render it a second time beside the delivery. A delivery that failed (its error
    recorded) is not under way. If the delivery dies, the sweep does both once its lease is over.
    Returns whether it followed up."""
    now = now or timezone.now()
    delivering = Invoice.objects.filter(
        pk=invoice_id, delivered_at=None, delivery_error="", delivery_claimed_at__gte=now - DELIVERY_LEASE
    ).exclude(status__in=UNDELIVERABLE)
    if delivering.exists():
        return False
    follow_up(invoice_id)
    return True


@tenancy.per_row("billing.Invoice")
def follow_up(invoice_id: int) -> None:
    """Render the PDF again if money moved since it was rendered (for the first time if the invoice
    was delivered without one: charged), then queue the receipts that are due (they attach it, so
    they say PAID). Idempotent. Raises OSError or a database error for the task to retry."""
    invoice = Invoice.objects.select_related("workspace", "client").get(pk=invoice_id)
    receipts = list(
        Payment.objects.filter(invoice=invoice, receipt_queued_at=None)
        .exclude(receipt_due_at=None)
        .order_by("created_at", "pk")
    )
    # Charged (delivered by the charge, before any PDF): its first PDF is this follow-up's to render.
    # An emailed invoice rendered its PDF to attach it; one without (an invoice recorded as sent
    # elsewhere, the demo's history) gets its PDF when someone opens it, not from every payment.
    unrendered = invoice.auto_charge and not invoice.pdf and invoice.delivered_at is not None
    if invoice.pdf_stale_at is None and not receipts and not unrendered:
        return
    if invoice.pdf or receipts or unrendered:
        try:
            current_pdf(invoice)  # rendered when missing, again when stale
        except TRANSIENT_ERRORS:
            raise  # the task retries
        except Exception as exc:
            log.exception("rendering invoice %s again failed", invoice_id)
            _failed(invoice, f"{type(exc).__name__}: {exc}")
            if unrendered:  # marked for the sweep, which looks for stale PDFs
                Invoice.objects.filter(pk=invoice.pk, pdf_stale_at=None).update(pdf_stale_at=timezone.now())
            return  # the receipts wait for a PDF that says what is true; the sweep tries again
        if unrendered and invoice.pdf_stale_at is not None:  # rendered as it stood when read: not stale
            Invoice.objects.filter(pk=invoice.pk, pdf_stale_at=invoice.pdf_stale_at).update(pdf_stale_at=None)
        # A delivered invoice's error was this rendering's: it worked now.
        Invoice.objects.filter(pk=invoice.pk).exclude(delivered_at=None).exclude(delivery_error="").update(
            delivery_error=""
        )
    else:  # never rendered: its delivery renders it as it stands then
        Invoice.objects.filter(pk=invoice.pk, pdf_stale_at=invoice.pdf_stale_at).update(pdf_stale_at=None)
    for payment in receipts:
        _queue_receipt(invoice, payment)


def _queue_receipt(invoice: Invoice, payment: Payment) -> None:
    with transaction.atomic():
        claimed = Payment.objects.filter(pk=payment.pk, receipt_queued_at=None).update(receipt_queued_at=timezone.now())
        to = recipient(invoice)
        if not claimed or not to:
            return
        invoice.refresh_from_db()
        queue_email(
            to=to,
            template="payment_receipt",
            client_id=invoice.client_id,
            context={**invoice_context(invoice), "payment": payment, "amount": money(payment.amount_minor, invoice)},
            workspace=invoice.workspace,
            key=f"payment-{payment.pk}-receipt",
            attachments=pdf_attachment(invoice),
        )


# --- The sweep ---------------------------------------------------------------------------------


@dataclass
class SweepSummary:
    invoices: int = 0  # invoices found with something left to do
    delivered: int = 0  # of them, delivered now (inline only)
    failed: int = 0  # of them, whose delivery failed again (inline only)


def due_invoice_ids(*, older_than: timedelta, now: datetime | None = None) -> list[int]:
    """Invoices with delivery or follow-up left to do for longer than `older_than`: never
    delivered (and not claimed by a live worker), a PDF left stale, a receipt never queued.
    A cross-tenant scan of three partial indexes, which hold only such rows."""
    now = now or timezone.now()
    cutoff = now - older_than
    undelivered = (
        Invoice.objects.filter(delivered_at=None, delivery_due_at__lte=cutoff)
        .exclude(delivery_due_at=None)
        .exclude(status__in=UNDELIVERABLE)
        .filter(Q(delivery_claimed_at=None) | Q(delivery_claimed_at__lt=now - DELIVERY_LEASE))
        .values_list("pk", flat=True)
    )
    stale = Invoice.objects.filter(pdf_stale_at__lte=cutoff).values_list("pk", flat=True)
    receipts = (
        Payment.objects.filter(receipt_queued_at=None, receipt_due_at__lte=cutoff)
        .exclude(receipt_due_at=None)
        .values_list("invoice_id", flat=True)
    )
    return sorted({*undelivered, *stale, *receipts})


@tenancy.scan("delivery sweep: invoices and receipts a lost task left undone, in every workspace")
def deliver_due(*, older_than: timedelta = SWEEP_OLDER_THAN, inline: bool = False) -> SweepSummary:
    """The sweep: deliver (or follow up) every invoice a lost task left behind, in this process
    (`inline`) or in tasks of DELIVERY_BATCH invoices. Run twice, it sends and charges nothing more."""
    from billing import services, tasks

    ids = due_invoice_ids(older_than=older_than)
    summary = SweepSummary(invoices=len(ids))
    if not inline:
        for start in range(0, len(ids), services.DELIVERY_BATCH):
            tasks.deliver_invoices.delay(ids[start : start + services.DELIVERY_BATCH], None)
        return summary
    for invoice_id in ids:
        try:
            if deliver_invoice(invoice_id):
                summary.delivered += 1
            elif Invoice.objects.filter(pk=invoice_id, delivered_at=None).exclude(status__in=UNDELIVERABLE).exists():
                summary.failed += 1
        except OSError:
            log.warning("sweep: invoice %s could not be delivered now; the next run tries again", invoice_id)
            summary.failed += 1
    return summary
