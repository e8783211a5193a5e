"""Charging a saved card, off-session, when an invoice is issued, dunning retries it, the
consultant says "charge now" or the client saves a new card.

Stripe is called outside any transaction and lock; what it answers is recorded in a short
transaction afterwards. A charge's idempotency key names the invoice and the attempt
(`invoice-7-charge-2`). The attempt is claimed before Stripe is called, in its own
transaction, as a *pending* card payment row, and the PaymentIntent's id is written on that
row as soon as Stripe answers. While the row is pending the attempt's outcome is unknown, and
a retry never creates a second PaymentIntent:

- the row knows its PaymentIntent: the retry retrieves it and records what it says;
- it does not (the answer was lost) and the attempt is younger than KEY_REUSE_FOR: the retry
  sends the very same request, which Stripe answers from its idempotency key;
- it does not and the attempt is older (Stripe forgets keys after about 24 hours): the retry
  looks for the attempt's PaymentIntent among the customer's, by our metadata, and creates it
  only if Stripe never made it.

Only a new attempt, after a definite failure, gets a new key. The outcome (or the webhook,
whichever comes first) turns the pending row into the result.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from billing import stripe_api
from billing.cards import card_on_file
from billing.models import OWED, Invoice, Payment
from billing.notices import invoice_context, tell_overdue
from billing.paylinks import client_email
from billing.services import BillingError, audit_invoice, book_payment, profile_for, record_payment
from billing.stripe_ids import invoice_metadata, object_id
from retainers import tenancy
from retainers.models import User
from retainers.outbox import queue_email
from retainers.services import consultant_recipients

log = logging.getLogger(__name__)

STALE_PENDING_AFTER = timedelta(minutes=15)  # a charge in flight this long lost its task: dunning retries it
KEY_REUSE_FOR = timedelta(hours=12)  # well inside the 24 hours Stripe keeps an idempotency key


@dataclass(frozen=True)
class _Attempt:
    number: int
    amount_minor: int
    payment_id: int
    intent_id: str = ""  # the PaymentIntent Stripe made for it, when known
    claimed_at: datetime | None = None  # set when the attempt was claimed earlier (outcome unknown)


def charge_invoice(
    invoice: Invoice,
    *,
    as_of: date | None = None,
    retry_now: bool = False,
    expect_attempts: int | None = None,
    actor: User | None = None,
) -> bool:
    """Charge the client's saved card off-session if a charge is due. Never call it inside a transaction.

    A charge is due for an open invoice with no attempt yet, a failed one whose retry date has
    come (or any failed one with `retry_now`: "charge now", a new card), or one whose outcome is
    unknown (then it is found, never made twice). With `expect_attempts`, only if the invoice has
    had exactly that many attempts: a double click, or a task run twice, charges once.
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
    attempt = _claim_attempt(invoice.pk, today=today, retry_now=retry_now, expect_attempts=expect_attempts, actor=actor)
    if attempt is None:
        # Nothing due. If the card was tried before, it is this invoice's channel (the receipt or
        # the failure notice went out); if not (paid by hand, nothing to pay), email the invoice.
        return Invoice.objects.filter(pk=invoice.pk, charge_attempts__gt=0).exists()
    account = stripe_api.account_id(workspace)
    metadata = {**invoice_metadata(invoice), "attempt": str(attempt.number)}
    try:
        intent = _known_intent(attempt, account=account, customer_id=saved.customer_id, metadata=metadata)
        if intent is None:
            intent = stripe_api.create_off_session_payment(
                account=account,
                amount_minor=attempt.amount_minor,
                currency=invoice.currency,
                customer_id=saved.customer_id,
                payment_method_id=saved.payment_method_id,
                metadata=metadata,
                idempotency_key=f"invoice-{invoice.pk}-charge-{attempt.number}",
            )
    except stripe_api.StripeCardError as exc:
        record_charge_failure(
            invoice.pk,
            attempt=attempt.number,
            message=exc.message,
            charge_id=exc.charge_id,
            intent_id=exc.payment_intent_id,
            today=today,
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
    _note_intent(attempt.payment_id, intent)
    _record_intent(invoice.pk, attempt=attempt.number, intent=intent, today=today)
    return True


def _known_intent(
    attempt: _Attempt, *, account: str, customer_id: str, metadata: dict[str, str]
) -> dict[str, Any] | None:
    """The PaymentIntent an attempt whose outcome is unknown already made, if Stripe made one;
    None when the request must be sent (again, with the same key, which is safe while Stripe
    still remembers it). Raises StripeUnavailable."""
    if attempt.intent_id:
        return stripe_api.retrieve_payment_intent(account=account, payment_intent_id=attempt.intent_id)
    if attempt.claimed_at is None or timezone.now() - attempt.claimed_at < KEY_REUSE_FOR:
        return None
    since = int((attempt.claimed_at - timedelta(minutes=5)).timestamp())  # clocks differ a little
    for intent in stripe_api.list_payment_intents(account=account, customer_id=customer_id, created_since=since):
        found = intent.get("metadata") or {}
        if all(found.get(name) == value for name, value in metadata.items()):
            return intent
    return None


def _note_intent(payment_id: int, intent: dict[str, Any]) -> None:
    """Write the PaymentIntent's id on its attempt as soon as Stripe answered: a retry retrieves it."""
    intent_id = str(intent.get("id") or "")
    if not intent_id or Payment.objects.filter(stripe_id=intent_id).exists():
        return  # recorded already (the webhook came first)
    Payment.objects.filter(pk=payment_id, status=Payment.Status.PENDING, stripe_id="").update(stripe_id=intent_id)


def _claim_attempt(
    invoice_id: int,
    *,
    today: date,
    retry_now: bool = False,
    expect_attempts: int | None = None,
    actor: User | None = None,
) -> _Attempt | None:
    """Claim the next charge attempt (or the one in flight) before calling Stripe, in its own transaction."""
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice_id)
        pending = _pending_charge(invoice)
        if pending is not None and invoice.status not in {Invoice.Status.DRAFT, Invoice.Status.VOID}:
            # The last attempt's outcome is unknown: find it, or send the same request again. Even
            # if the invoice was paid meanwhile: money the card gave must be known (an overpayment).
            return _Attempt(
                invoice.charge_attempts, pending.amount_minor, pending.pk, pending.stripe_id, pending.created_at
            )
        if invoice.status != Invoice.Status.OPEN or invoice.owed_minor <= 0:
            return None
        if expect_attempts is not None and invoice.charge_attempts != expect_attempts:
            return None  # charged since the caller looked: a double click, a task run twice
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
        # What the client is asked for: refunds are not charged again (Invoice.owed_minor).
        payment = Payment.objects.create(
            workspace_id=invoice.workspace_id,
            invoice=invoice,
            client_id=invoice.client_id,
            kind=Payment.Kind.PAYMENT,
            status=Payment.Status.PENDING,
            method=Payment.Method.CARD,
            amount_minor=invoice.owed_minor,
            currency=invoice.currency,
            note=f"Automatic charge, attempt {invoice.charge_attempts}",
            recorded_by=actor,  # who said "charge now"; none for the scheduled attempts
        )
        audit_invoice(
            invoice,
            "charge.attempted",
            actor=actor,
            amount_minor=payment.amount_minor,
            changes={"payment": payment.pk, "attempt": invoice.charge_attempts},
        )
        return _Attempt(invoice.charge_attempts, invoice.owed_minor, payment.pk)


def _pending_charge(invoice: Invoice) -> Payment | None:
    """The attempt whose outcome is unknown, if any (an invoice has one at most)."""
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
    elif status in {"processing", "requires_capture"}:
        pass  # the pending row stays (it knows its PaymentIntent); the webhook or a retry settles it
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
            intent_id=str(intent.get("id") or ""),
            today=today,
        )


def record_charge_success(invoice_id: int, *, intent: dict[str, Any], attempt: int | None) -> Payment | None:
    """Record a succeeded PaymentIntent on its invoice once (by its id): the attempt's pending row
    becomes the payment, its receipt is queued once the PDF says PAID, and an overpayment (the
    invoice was paid meanwhile) is flagged instead of receipted (services.book_payment)."""
    amount = int(intent.get("amount_received") or intent.get("amount") or 0)
    intent_id = str(intent["id"])
    try:
        with transaction.atomic():
            invoice = Invoice.objects.select_for_update().get(pk=invoice_id)
            known = Payment.objects.filter(workspace_id=invoice.workspace_id, stripe_id=intent_id).first()
            if known is not None and known.status == Payment.Status.SUCCEEDED:
                return known
            row = known if known is not None and known.kind == Payment.Kind.PAYMENT else None
            if row is None and attempt is not None and attempt == invoice.charge_attempts:
                row = _pending_charge(invoice)
            if row is None:
                return record_payment(
                    invoice=invoice, amount_minor=amount, method=Payment.Method.CARD, stripe_id=intent_id, receipt=True
                )
            if invoice.status in {Invoice.Status.DRAFT, Invoice.Status.VOID}:
                raise BillingError("Only an issued, not voided invoice can be paid.")
            row.status, row.amount_minor, row.stripe_id, row.failure_message = (
                Payment.Status.SUCCEEDED,
                amount,
                intent_id,
                "",
            )
            row.save(update_fields=["status", "amount_minor", "stripe_id", "failure_message"])
            book_payment(invoice, row, receipt=True)
            return row
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
    intent_id: str = "",
    retry: bool = True,
    tell_client: bool = True,
) -> None:
    """Turn the attempt's pending row into a failed payment and schedule the retry (dunning); once.
    The row keeps the attempt's PaymentIntent id (or, without one, the failed charge's)."""
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().select_related("workspace", "client").get(pk=invoice_id)
        pending = _pending_charge(invoice)
        if pending is None or attempt != invoice.charge_attempts:
            return  # this attempt's outcome is already recorded (the webhook or the task came first)
        audit_invoice(
            invoice,
            "charge.failed",
            actor=None,
            amount_minor=pending.amount_minor,
            changes={"payment": pending.pk, "attempt": attempt, "message": message[:255]},
        )
        stripe_id = pending.stripe_id or intent_id or charge_id
        recorded = Payment.objects.filter(workspace_id=invoice.workspace_id, stripe_id=stripe_id).exclude(pk=pending.pk)
        if stripe_id and recorded.exists():
            pending.delete()
        else:
            pending.status = Payment.Status.FAILED
            pending.failure_message = message[:255]
            pending.stripe_id = stripe_id
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
                workspace=invoice.workspace,
                client_id=invoice.client_id,
                key=f"invoice-{invoice.pk}-charge-{attempt}-failed",
            )
        for user_id, email in consultant_recipients(invoice.workspace_id):
            queue_email(
                to=email,
                template="payment_failed_consultant",
                context=context,
                workspace=invoice.workspace,
                key=f"invoice-{invoice.pk}-charge-{attempt}-failed-{user_id}",
            )
        if final and tell_client:
            tell_overdue(invoice, today=today, collection_stopped=True)


# --- A new card -----------------------------------------------------------------------------


def chargeable_invoices(client_id: int) -> dict[int, int]:
    """The client's open auto-charge invoices that something is owed on and no charge is in
    flight for, with how many attempts each has had (for `charge_invoice(expect_attempts=...)`)."""
    in_flight = Payment.objects.filter(
        invoice=OuterRef("pk"), kind=Payment.Kind.PAYMENT, method=Payment.Method.CARD, status=Payment.Status.PENDING
    )
    rows = (
        Invoice.objects.filter(client_id=client_id, status=Invoice.Status.OPEN, auto_charge=True)
        .exclude(kind=Invoice.Kind.CREDIT_NOTE)
        .exclude(Exists(in_flight))
        .alias(owed=OWED)
        .filter(owed__gt=0)
        .order_by("due_on", "pk")
        .values_list("pk", "charge_attempts")
    )
    return dict(rows)


@tenancy.per_row("clients.Client")
def charge_with_new_card(client_id: int, *, seen: dict[int, int], as_of: date | None = None) -> int:
    """Charge the invoices a newly saved card is for (`seen`: invoice id → attempts when the card was
    saved), each once: run twice, the second run finds the attempts moved on and charges nothing.
    Returns how many were charged (or declined). Raises StripeUnavailable for the task to retry."""
    charged = 0
    for invoice_id, attempts in seen.items():
        invoice = (
            Invoice.objects.select_related("workspace", "client").filter(pk=invoice_id, client_id=client_id).first()
        )
        if invoice is None:
            continue
        before = invoice.charge_attempts
        charge_invoice(invoice, as_of=as_of, retry_now=True, expect_attempts=attempts)
        charged += Invoice.objects.filter(pk=invoice_id, charge_attempts__gt=before).exists()
    return charged


def charge_now(invoice: Invoice, *, attempts: int, actor: User | None) -> bool:
    """The consultant's "charge now": one new attempt on the saved card, unless the invoice had
    another attempt since the page showed `attempts` (a double click charges once): then False.
    Raises BillingError when the card cannot be charged, StripeUnavailable when Stripe cannot be
    reached (the attempt stays in flight; trying again finds it)."""
    invoice = Invoice.objects.select_related("workspace", "client").get(pk=invoice.pk)
    if invoice.kind == Invoice.Kind.CREDIT_NOTE or invoice.status != Invoice.Status.OPEN or invoice.owed_minor <= 0:
        raise BillingError("This invoice has nothing left to charge.")
    if not stripe_api.is_configured(invoice.workspace) or card_on_file(invoice.client) is None:
        raise BillingError("The client has no saved card to charge (or Stripe is not connected).")
    in_flight, before = _pending_charge(invoice) is not None, invoice.charge_attempts
    charge_invoice(invoice, retry_now=True, expect_attempts=attempts, actor=actor)
    return in_flight or Invoice.objects.filter(pk=invoice.pk, charge_attempts__gt=before).exists()
