"""Charging a saved card, off-session, when an invoice is issued or dunning retries it.

Stripe is called outside any transaction and lock; what it answers is recorded in a short
transaction afterwards. A charge's idempotency key names the invoice and the attempt
(`invoice-7-charge-2`). The attempt is claimed before Stripe is called, in its own
transaction, as a *pending* card payment row; while that row is pending the attempt's outcome
is unknown, and a retry reuses its number and amount, so it sends the very same request. The
outcome (or the webhook, whichever comes first) turns the pending row into the result.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.db import transaction

from billing import stripe_api
from billing.cards import card_on_file
from billing.models import Invoice, Payment
from billing.notices import invoice_context, locale_of, pdf_attachment, tell_overdue
from billing.paylinks import client_email
from billing.services import BillingError, profile_for, record_payment
from billing.stripe_ids import invoice_metadata, object_id
from retainers.money import format_money
from retainers.outbox import queue_email
from retainers.services import consultant_recipients

log = logging.getLogger(__name__)

STALE_PENDING_AFTER = timedelta(minutes=15)  # a charge in flight this long lost its task: dunning retries it


@dataclass(frozen=True)
class _Attempt:
    number: int
    amount_minor: int


def charge_invoice(invoice: Invoice, *, as_of: date | None = None, retry_now: bool = False) -> bool:
    """Charge the client's saved card off-session if a charge is due. Never call it inside a transaction.

    A charge is due for an open invoice with no attempt yet, a failed one whose retry date has
    come (or any failed one with `retry_now`, the consultant's "charge now"), or one whose
    outcome is unknown (then the same request is sent again).
    Returns False when the card is not how this invoice is collected (no Stripe, no saved card,
    Stripe refused the request, or paid without any charge): the caller then emails the invoice.
    True when the card was charged, is being charged, or was declined (the client got a receipt
    or a "payment failed" email with the pay link), now or by an earlier run.
    Raises stripe_api.StripeUnavailable (an OSError) for the task to retry.
    """
    workspace = invoice.workspace
    if not stripe_api.is_configured(workspace):
        return False
    saved = card_on_file(invoice.client)
    if saved is None:
        return False
    today = as_of or workspace.today()
    attempt = _claim_attempt(invoice.pk, today=today, retry_now=retry_now)
    if attempt is None:
        # Nothing due. If the card was tried before, it is this invoice's channel (the receipt or
        # the failure notice went out); if not (paid by hand, nothing to pay), email the invoice.
        return Invoice.objects.filter(pk=invoice.pk, charge_attempts__gt=0).exists()
    try:
        intent = stripe_api.create_off_session_payment(
            account=stripe_api.account_id(workspace),
            amount_minor=attempt.amount_minor,
            currency=invoice.currency,
            customer_id=saved.customer_id,
            payment_method_id=saved.payment_method_id,
            metadata={**invoice_metadata(invoice), "attempt": str(attempt.number)},
            idempotency_key=f"invoice-{invoice.pk}-charge-{attempt.number}",
        )
    except stripe_api.StripeCardError as exc:
        record_charge_failure(
            invoice.pk, attempt=attempt.number, message=exc.message, charge_id=exc.charge_id, today=today
        )
        return True
    except stripe_api.StripeRequestError as exc:
        # Not the card: the account or the request. The consultant must act; the client gets the invoice.
        record_charge_failure(
            invoice.pk,
            attempt=attempt.number,
            message=f"Stripe refused the charge: {exc.message}",
            today=today,
            retry=False,
            tell_client=False,
        )
        return False
    _record_intent(invoice.pk, attempt=attempt.number, intent=intent, today=today)
    return True


def _claim_attempt(invoice_id: int, *, today: date, retry_now: bool = False) -> _Attempt | None:
    """Claim the next charge attempt (or the one in flight) before calling Stripe, in its own transaction."""
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice_id)
        if invoice.status != Invoice.Status.OPEN or invoice.balance_minor <= 0:
            return None
        pending = _pending_charge(invoice)
        if pending is not None:
            # The last attempt's outcome is unknown: send the same request again.
            return _Attempt(invoice.charge_attempts, pending.amount_minor)
        due = (
            retry_now
            or invoice.charge_attempts == 0
            or (invoice.next_charge_on is not None and invoice.next_charge_on <= today)
        )
        if not due:
            return None
        invoice.charge_attempts += 1
        invoice.next_charge_on = None
        invoice.save(update_fields=["charge_attempts", "next_charge_on"])
        Payment.objects.create(
            workspace_id=invoice.workspace_id,
            invoice=invoice,
            client_id=invoice.client_id,
            kind=Payment.Kind.PAYMENT,
            status=Payment.Status.PENDING,
            method=Payment.Method.CARD,
            amount_minor=invoice.balance_minor,
            currency=invoice.currency,
            note=f"Automatic charge, attempt {invoice.charge_attempts}",
        )
        return _Attempt(invoice.charge_attempts, invoice.balance_minor)


def _pending_charge(invoice: Invoice) -> Payment | None:
    return (
        Payment.objects.filter(
            invoice=invoice, kind=Payment.Kind.PAYMENT, method=Payment.Method.CARD, status=Payment.Status.PENDING
        )
        .order_by("pk")
        .first()
    )


def _record_intent(invoice_id: int, *, attempt: int, intent: dict[str, Any], today: date) -> None:
    status = intent.get("status")
    if status == "succeeded":
        record_charge_success(invoice_id, intent=intent, attempt=attempt)
    elif status == "processing":
        pass  # the pending row stays; payment_intent.succeeded / payment_failed settles it
    elif status == "requires_action":
        record_charge_failure(
            invoice_id,
            attempt=attempt,
            message="Your bank asked to confirm this payment. Please pay with the link in this email.",
            today=today,
            retry=False,  # off-session retries would be asked again
        )
    else:
        error = intent.get("last_payment_error") or {}
        record_charge_failure(
            invoice_id,
            attempt=attempt,
            message=error.get("message") or "The card was declined.",
            charge_id=object_id(error.get("charge") or intent.get("latest_charge")),
            today=today,
        )


def record_charge_success(invoice_id: int, *, intent: dict[str, Any], attempt: int | None) -> Payment | None:
    """Record a succeeded PaymentIntent on its invoice once (by its id), with its receipt."""
    amount = intent.get("amount_received") or intent.get("amount") or 0
    try:
        with transaction.atomic():
            invoice = Invoice.objects.select_for_update().get(pk=invoice_id)
            if attempt is not None and attempt == invoice.charge_attempts:
                Payment.objects.filter(
                    invoice=invoice, method=Payment.Method.CARD, status=Payment.Status.PENDING
                ).delete()
            payment = record_payment(
                invoice=invoice, amount_minor=int(amount), method=Payment.Method.CARD, stripe_id=intent["id"]
            )
            _queue_receipt(payment)
            return payment
    except BillingError:
        # Money arrived for an invoice that cannot take it (voided meanwhile): a person must look.
        log.error("payment %s for invoice %s could not be recorded", intent.get("id"), invoice_id, exc_info=True)
        return None


def record_charge_failure(
    invoice_id: int,
    *,
    attempt: int,
    message: str,
    today: date,
    charge_id: str = "",
    retry: bool = True,
    tell_client: bool = True,
) -> None:
    """Turn the attempt's pending row into a failed payment and schedule the retry (dunning); once."""
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().select_related("workspace", "client").get(pk=invoice_id)
        pending = _pending_charge(invoice)
        if pending is None or attempt != invoice.charge_attempts:
            return  # this attempt's outcome is already recorded (the webhook or the task came first)
        if charge_id and Payment.objects.filter(workspace_id=invoice.workspace_id, stripe_id=charge_id).exists():
            pending.delete()
        else:
            pending.status = Payment.Status.FAILED
            pending.failure_message = message[:255]
            pending.stripe_id = charge_id
            pending.save(update_fields=["status", "failure_message", "stripe_id"])
        if invoice.status != Invoice.Status.OPEN:
            return
        retry_days = [int(d) for d in profile_for(invoice.workspace).retry_days or []]
        final = not retry or attempt > len(retry_days)
        invoice.next_charge_on = None if final else today + timedelta(days=retry_days[attempt - 1])
        invoice.save(update_fields=["next_charge_on"])
        context = {
            **invoice_context(invoice),
            "message": message,
            "attempt": attempt,
            "final": final,
            "next_charge_on": invoice.next_charge_on,
        }
        if tell_client and (to := client_email(invoice)):
            queue_email(
                to=to,
                template="payment_failed",
                context=context,
                sender_name=invoice.workspace.name,
                key=f"invoice-{invoice.pk}-charge-{attempt}-failed",
            )
        for user_id, email in consultant_recipients(invoice.workspace_id):
            queue_email(
                to=email,
                template="payment_failed_consultant",
                context=context,
                key=f"invoice-{invoice.pk}-charge-{attempt}-failed-{user_id}",
            )
        if final and tell_client:
            tell_overdue(invoice, today=today, collection_stopped=True)


def _queue_receipt(payment: Payment) -> None:
    invoice = Invoice.objects.select_related("workspace", "client").get(pk=payment.invoice_id)
    to = client_email(invoice)
    if not to:
        return
    queue_email(
        to=to,
        template="payment_receipt",
        context={
            **invoice_context(invoice),
            "payment": payment,
            "amount": format_money(payment.amount_minor, payment.currency, locale_of(invoice)),
        },
        sender_name=invoice.workspace.name,
        key=f"payment-{payment.pk}-receipt",
        attachments=pdf_attachment(invoice),
    )
