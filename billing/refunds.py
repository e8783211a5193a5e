"""Refunds of payments: through Stripe for card payments, keyed by the payment and the refund's
number (`payment-9-refund-1`); recorded only for bank transfers; made in Stripe's dashboard and
recorded from the webhook; and the refund of an overpaid invoice's excess in one click.

A refund row points at its payment (`refund_of`) and carries Stripe's status: pending and
succeeded refunds count against the invoice (the money is on its way back), a failed or
canceled one no longer does, and the consultant is told. A refund is not asked back from the
client: it counts in the invoice's `refunded_minor`, so dunning never chases it (see
Invoice.owed_minor), unless the consultant asks for it again (services.ask_refund_back).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import QuerySet, Sum
from django.utils import timezone

from billing import stripe_api
from billing.models import Invoice, Payment
from billing.notices import invoice_context, locale_of, money
from billing.services import BillingError, after_money_moved, audit_invoice, excess_sources, settle_status
from retainers.models import User
from retainers.money import format_money
from retainers.outbox import queue_email
from retainers.services import consultant_recipients

log = logging.getLogger(__name__)

ACTIVE = (Payment.Status.PENDING, Payment.Status.SUCCEEDED)  # refund statuses that count
STRIPE_STATUSES = {  # Stripe's refund status → ours ("requires_action": the bank asks; it may still go)
    "pending": Payment.Status.PENDING,
    "requires_action": Payment.Status.PENDING,
    "succeeded": Payment.Status.SUCCEEDED,
    "failed": Payment.Status.FAILED,
    "canceled": Payment.Status.CANCELED,
}


def refunds_of(payment: Payment) -> QuerySet[Payment]:
    """The refunds of a payment that count (pending or succeeded), a credit moved on included."""
    return Payment.objects.filter(refund_of=payment, kind=Payment.Kind.REFUND, status__in=ACTIVE)


def refundable_minor(payment: Payment) -> int:
    """What is left to refund of a succeeded payment."""
    if payment.kind != Payment.Kind.PAYMENT or payment.status != Payment.Status.SUCCEEDED:
        return 0
    if payment.method == Payment.Method.CREDIT:
        return 0  # a credit moved from another invoice: no money came in to give back
    refunded = refunds_of(payment).aggregate(total=Sum("amount_minor"))["total"] or 0
    return max(payment.amount_minor - refunded, 0)


def refund_payment(*, payment: Payment, amount_minor: int, actor: User | None, reason: str = "") -> Payment:
    """Refund part or all of a payment: through Stripe for card payments (keyed by payment and
    refund number), recorded only for bank transfers (the money goes back by hand). Returns the
    refund row, with Stripe's status; the invoice's paid amount drops while it is pending or
    succeeded. Raises BillingError for a bad amount or when Stripe refuses. Never call it inside
    a transaction.
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
    note = reason.strip()
    if payment.method != Payment.Method.CARD or not payment.stripe_id.startswith("pi_"):
        return record_refund(payment, amount_minor=amount_minor, stripe_id="", actor=actor, note=note)
    if not stripe_api.is_configured(payment.workspace):
        raise BillingError("Stripe is not connected, so this card payment cannot be refunded here.")
    # Every refund row of the payment, whatever its status: a failed refund used its number.
    number = Payment.objects.filter(refund_of=payment, kind=Payment.Kind.REFUND).exclude(stripe_id="").count() + 1
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
    return record_stripe_refund(payment, refund, actor=actor, note=note)


def record_stripe_refund(payment: Payment, refund: dict[str, Any], *, actor: User | None, note: str = "") -> Payment:
    """A Stripe refund of `payment` as Stripe describes it now: recorded once by its id, its status
    brought up to date when it changed (pending → succeeded, or failed / canceled)."""
    status = STRIPE_STATUSES.get(str(refund.get("status") or ""), Payment.Status.PENDING)
    reason = str(refund.get("failure_reason") or "").replace("_", " ")
    existing = Payment.objects.filter(workspace_id=payment.workspace_id, stripe_id=refund["id"]).first()
    if existing is not None:
        return update_refund_status(existing, status=status, failure_message=reason)
    return record_refund(
        payment,
        amount_minor=int(refund["amount"]),
        stripe_id=refund["id"],
        actor=actor,
        note=note,
        status=status,
        failure_message=reason,
    )


def record_refund(
    payment: Payment,
    *,
    amount_minor: int,
    stripe_id: str,
    actor: User | None,
    note: str,
    status: str = Payment.Status.SUCCEEDED,
    failure_message: str = "",
) -> Payment:
    """A refund row linked to its payment, and the invoice's paid amount less it (while it counts);
    once per Stripe refund id."""
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
            status=status,
            method=payment.method,
            amount_minor=amount_minor,
            currency=payment.currency,
            stripe_id=stripe_id,
            refund_of=payment,
            note=note[:255],
            failure_message=failure_message[:255],
            recorded_by=actor,
        )
        audit_invoice(
            invoice,
            "refund.recorded",
            actor=actor,
            amount_minor=amount_minor,
            changes={"refund": refund.pk, "payment": payment.pk, "status": status, "stripe_id": stripe_id},
        )
        if status in ACTIVE:
            _count(invoice, amount_minor, actor=actor)
        elif status == Payment.Status.FAILED:
            _tell_failed(invoice, refund)
        return refund


def _count(invoice: Invoice, amount_minor: int, *, actor: User | None = None) -> None:
    """A refund that counts: less paid, and not asked back (refunded)."""
    invoice.paid_minor -= amount_minor
    invoice.refunded_minor += amount_minor
    settle_status(invoice, actor=actor)
    after_money_moved(invoice, now=timezone.now())


def update_refund_status(refund: Payment, *, status: str, failure_message: str = "") -> Payment:
    """A refund's new status from Stripe (webhook): a refund that stops counting (failed, canceled)
    gives its amount back to the invoice's paid amount, and a failed one is shown to the consultant."""
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=refund.invoice_id)
        refund = Payment.objects.select_for_update().get(pk=refund.pk)
        if refund.kind != Payment.Kind.REFUND or refund.status == status:
            return refund
        was, now_counts = refund.status in ACTIVE, status in ACTIVE
        audit_invoice(
            invoice,
            f"refund.{status}",
            actor=None,  # Stripe's word, through a webhook
            amount_minor=refund.amount_minor,
            changes={"refund": refund.pk, "status": [refund.status, status], "stripe_id": refund.stripe_id},
        )
        refund.status = status
        refund.failure_message = (failure_message or refund.failure_message)[:255]
        refund.save(update_fields=["status", "failure_message"])
        if was and not now_counts:
            invoice.paid_minor += refund.amount_minor
            invoice.refunded_minor = max(invoice.refunded_minor - refund.amount_minor, 0)
            settle_status(invoice)
            after_money_moved(invoice, now=timezone.now())
        elif now_counts and not was:
            _count(invoice, refund.amount_minor)
        if status == Payment.Status.FAILED:
            _tell_failed(invoice, refund)
        return refund


def _tell_failed(invoice: Invoice, refund: Payment) -> None:
    invoice = Invoice.objects.select_related("workspace", "client").get(pk=invoice.pk)
    context = {
        **invoice_context(invoice),
        "refund": refund,
        "amount": money(refund.amount_minor, invoice),
        "reason": refund.failure_message or "Stripe gave no reason",
    }
    for user_id, email in consultant_recipients(invoice.workspace_id):
        queue_email(
            to=email,
            template="refund_failed_consultant",
            context=context,
            workspace=invoice.workspace,
            key=f"refund-{refund.pk}-failed-{user_id}",
        )


@dataclass(frozen=True)
class ExcessRefund:
    """What one click on "refund the excess" did: the refunds it made, in order, and their sums."""

    refunds: list[Payment]
    currency: str

    @property
    def refunded_minor(self) -> int:
        """What is on its way back to the client: the refunds that count (pending or succeeded)."""
        return sum(r.amount_minor for r in self.refunds if r.status in ACTIVE)

    @property
    def failed_minor(self) -> int:
        """What Stripe would not refund (failed or canceled at once): still a credit balance."""
        return sum(r.amount_minor for r in self.refunds if r.status not in ACTIVE)


def refund_excess(*, invoice: Invoice, actor: User | None) -> ExcessRefund:
    """Refund an overpaid invoice's credit balance (what is not carried to the next invoice) in one
    click: from the payment that overpaid, then the ones before it. Never call it inside a
    transaction. Raises BillingError when there is nothing to refund or Stripe refuses (what was
    refunded before the refusal stays refunded; the rest is still a credit balance)."""
    invoice = Invoice.objects.get(pk=invoice.pk)
    excess = invoice.free_credit_minor
    if invoice.kind == Invoice.Kind.CREDIT_NOTE or excess <= 0:
        raise BillingError("This invoice has no credit balance left to refund.")
    made = []
    for payment, amount in excess_sources(invoice, excess):
        made.append(refund_payment(payment=payment, amount_minor=amount, actor=actor, reason="Overpayment"))
    if not made:
        raise BillingError("No payment of this invoice can be refunded: record the refund by hand.")
    return ExcessRefund(refunds=made, currency=invoice.currency)
