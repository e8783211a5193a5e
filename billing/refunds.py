"""Refunds of card payments, through Stripe, keyed by the payment and the refund's number
(`payment-9-refund-1`); and refunds made in Stripe's dashboard, recorded from the webhook."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q, QuerySet, Sum

from billing import stripe_api
from billing.models import Invoice, Payment
from billing.notices import locale_of
from billing.services import BillingError, settle_status
from retainers.models import User
from retainers.money import format_money


def refund_note(payment: Payment) -> str:
    # The link from a refund to its payment. TODO: a `Payment.refund_of` foreign key (see the report).
    return f"Refund of payment #{payment.pk}"


def refunds_of(payment: Payment) -> QuerySet[Payment]:
    return Payment.objects.filter(
        workspace_id=payment.workspace_id,
        invoice_id=payment.invoice_id,
        kind=Payment.Kind.REFUND,
        status=Payment.Status.SUCCEEDED,
    ).filter(Q(note=refund_note(payment)) | Q(note__startswith=refund_note(payment) + ":"))


def refundable_minor(payment: Payment) -> int:
    """What is left to refund of a succeeded payment."""
    if payment.kind != Payment.Kind.PAYMENT or payment.status != Payment.Status.SUCCEEDED:
        return 0
    refunded = refunds_of(payment).aggregate(total=Sum("amount_minor"))["total"] or 0
    return max(payment.amount_minor - refunded, 0)


def refund_payment(*, payment: Payment, amount_minor: int, actor: User | None, reason: str = "") -> Payment:
    """Refund part or all of a payment: through Stripe for card payments (keyed by payment and
    refund number), recorded only for bank transfers (the money goes back by hand). Returns the
    refund row; the invoice's paid amount drops and it is open again if no longer covered.
    Raises BillingError for a bad amount or when Stripe refuses. Never call it inside a transaction.
    """
    payment = Payment.objects.select_related("workspace").get(pk=payment.pk)
    if payment.kind != Payment.Kind.PAYMENT or payment.status != Payment.Status.SUCCEEDED:
        raise BillingError("Only a received payment can be refunded.")
    left = refundable_minor(payment)
    if not isinstance(amount_minor, int) or amount_minor <= 0 or amount_minor > left:
        raise BillingError(
            f"Refund an amount above zero and at most {format_money(left, payment.currency, locale_of(payment))}.",
            field="amount",
        )
    note = refund_note(payment) + (f": {reason.strip()}" if reason.strip() else "")
    if payment.method != Payment.Method.CARD or not payment.stripe_id.startswith("pi_"):
        return record_refund(payment, amount_minor=amount_minor, stripe_id="", actor=actor, note=note)
    if not stripe_api.is_configured(payment.workspace):
        raise BillingError("Stripe is not connected, so this card payment cannot be refunded here.")
    number = refunds_of(payment).count() + 1
    try:
        refund = stripe_api.create_refund(
            account=stripe_api.account_id(payment.workspace),
            payment_intent_id=payment.stripe_id,
            amount_minor=amount_minor,
            metadata={
                "invoice_id": str(payment.invoice_id),
                "workspace_id": str(payment.workspace_id),
                "payment_id": str(payment.pk),
            },
            idempotency_key=f"payment-{payment.pk}-refund-{number}",
        )
    except stripe_api.StripeUnavailable as exc:
        # Nothing recorded: trying again sends the same key, so Stripe refunds at most once.
        raise BillingError("Stripe could not be reached. Nothing was recorded; please try again.") from exc
    except (stripe_api.StripeRequestError, stripe_api.StripeCardError) as exc:
        raise BillingError(f"Stripe refused the refund: {exc.message}") from exc
    return record_refund(payment, amount_minor=int(refund["amount"]), stripe_id=refund["id"], actor=actor, note=note)


def record_refund(payment: Payment, *, amount_minor: int, stripe_id: str, actor: User | None, note: str) -> Payment:
    """A refund row and the invoice's paid amount less it; once per Stripe refund id."""
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=payment.invoice_id)
        if stripe_id:
            existing = Payment.objects.filter(workspace_id=payment.workspace_id, stripe_id=stripe_id).first()
            if existing is not None:
                return existing
        elif amount_minor > refundable_minor(payment):  # checked again under the lock: two clicks at once
            raise BillingError("That is more than is left to refund.", field="amount")
        refund = Payment.objects.create(
            workspace_id=payment.workspace_id,
            invoice=invoice,
            client_id=payment.client_id,
            kind=Payment.Kind.REFUND,
            status=Payment.Status.SUCCEEDED,
            method=payment.method,
            amount_minor=amount_minor,
            currency=payment.currency,
            stripe_id=stripe_id,
            note=note[:255],
            recorded_by=actor,
        )
        invoice.paid_minor -= amount_minor
        settle_status(invoice)
        return refund
