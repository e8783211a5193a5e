"""Card payments through Stripe: charging saved cards, the public pay link, saved cards, refunds, dunning.

Stripe is called outside any transaction and lock; what it answers is recorded in a short
transaction afterwards. Every call that creates something carries an idempotency key made
of our ids, so a retried task replays the first request:

- a charge's key names the invoice and the attempt (`invoice-7-charge-2`). The attempt is
  claimed before Stripe is called, in its own transaction, as a *pending* card payment row;
  while that row is pending the attempt's outcome is unknown, and a retry reuses its number
  and amount, so it sends the very same request. The outcome (or the webhook, whichever comes
  first) turns the pending row into the result.
- refunds are keyed by the payment and the refund's number (`payment-9-refund-1`), Checkout
  sessions by the invoice and its balance, customers by the client.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.db.models import Q, QuerySet, Sum
from django.urls import reverse
from django.utils import timezone

from billing import stripe_api
from billing.models import BillingProfile, Invoice, Payment, StripeCustomer
from billing.services import BillingError, profile_for, record_payment, settle_status
from clients.models import Client, Retainer
from delivery import services as delivery
from retainers.models import Email, User, Workspace
from retainers.money import format_money
from retainers.outbox import queue_email
from retainers.services import consultant_recipients

log = logging.getLogger(__name__)

PAY_SALT = "billing.pay"
PAYABLE = {Invoice.Status.OPEN, Invoice.Status.UNCOLLECTIBLE}  # written off, but still welcome
STALE_PENDING_AFTER = timedelta(minutes=15)  # a charge in flight this long lost its task: dunning retries it


# --- The pay link ------------------------------------------------------------------------------


def pay_token(invoice: Invoice) -> str:
    """The invoice's pay link key: signed, and the same every time (no timestamp), so the link in
    the PDF, the emails and Checkout's return URL is one URL."""
    return signing.Signer(salt=PAY_SALT).sign_object({"i": invoice.pk, "w": invoice.workspace_id}, compress=True)


def pay_url(invoice: Invoice) -> str:
    return settings.SITE_URL + reverse("billing_public:pay", args=[pay_token(invoice)])


def invoice_for_token(token: str) -> Invoice | None:
    """The invoice a pay link is for; None when the token was not made by us (or its invoice is gone)."""
    try:
        data = signing.Signer(salt=PAY_SALT).unsign_object(token)
    except (signing.BadSignature, ValueError):  # ValueError: a valid-looking but undecodable payload
        return None
    if not isinstance(data, dict) or not isinstance(data.get("i"), int) or not isinstance(data.get("w"), int):
        return None
    return (
        Invoice.objects.select_related("workspace", "client")
        .filter(pk=data["i"], workspace_id=data["w"])
        .exclude(status=Invoice.Status.DRAFT)
        .exclude(kind=Invoice.Kind.CREDIT_NOTE)
        .first()
    )


def start_checkout(invoice: Invoice) -> str:
    """A Stripe Checkout session for the invoice's balance; returns the URL to send the client to.

    Keyed by invoice and balance: clicking twice gives the same session.
    Raises BillingError when there is nothing to pay or Stripe cannot be used.
    """
    workspace = invoice.workspace
    invoice.refresh_from_db()
    if invoice.status not in PAYABLE or invoice.balance_minor <= 0:
        raise BillingError("This invoice has nothing left to pay.")
    if not stripe_api.is_configured(workspace):
        raise BillingError("Card payments are not available for this invoice.")
    back = pay_url(invoice)
    try:
        session = stripe_api.create_payment_checkout(
            account=stripe_api.account_id(workspace),
            amount_minor=invoice.balance_minor,
            currency=invoice.currency,
            description=f"Invoice {invoice.number} from {_seller_name(workspace)}",
            customer_email=_client_email(invoice),
            success_url=f"{back}?paid=1",
            cancel_url=back,
            metadata=_metadata(invoice),
            idempotency_key=f"invoice-{invoice.pk}-checkout-{invoice.balance_minor}",
        )
    except (stripe_api.StripeUnavailable, stripe_api.StripeRequestError) as exc:
        log.warning("checkout for invoice %s failed: %s", invoice.pk, exc)
        raise BillingError("Card payment is unavailable right now. Please try again later.") from exc
    if not session.get("url"):
        raise BillingError("Card payment is unavailable right now. Please try again later.")
    return session["url"]


# --- Saved cards ------------------------------------------------------------------------------


def card_on_file(client: Client) -> StripeCustomer | None:
    """The client's saved card, if any (for the client page and the portal)."""
    return (
        StripeCustomer.objects.filter(workspace_id=client.workspace_id, client=client)
        .exclude(payment_method_id="")
        .first()
    )


def ensure_customer(client: Client) -> StripeCustomer:
    """The client's customer on the workspace's Stripe account, created once (key `client-{id}-customer`)."""
    existing = StripeCustomer.objects.filter(workspace_id=client.workspace_id, client=client).first()
    if existing is not None:
        return existing
    customer = stripe_api.create_customer(
        account=stripe_api.account_id(client.workspace),
        client_id=client.pk,
        workspace_id=client.workspace_id,
        name=client.name,
        email=client.billing_email,
    )
    row, _ = StripeCustomer.objects.get_or_create(
        workspace_id=client.workspace_id, client=client, defaults={"customer_id": customer["id"]}
    )
    return row


def start_card_setup(*, client: Client, success_url: str, cancel_url: str) -> str:
    """A Stripe Checkout session in setup mode for the client to save a card; returns its URL.

    `success_url` should carry `{CHECKOUT_SESSION_ID}`. Raises BillingError if Stripe is unusable.
    """
    workspace = client.workspace
    if not stripe_api.is_configured(workspace):
        raise BillingError("Saving a card is not available.")
    try:
        customer = ensure_customer(client)
        session = stripe_api.create_setup_checkout(
            account=stripe_api.account_id(workspace),
            customer_id=customer.customer_id,
            currency=workspace.currency,
            success_url=success_url,
            cancel_url=cancel_url,
            metadata={"client_id": str(client.pk), "workspace_id": str(workspace.pk)},
            # A double click gives one session; a new card after a completed one gets a new key.
            idempotency_key=(
                f"client-{client.pk}-card-setup-{customer.payment_method_id or 'none'}-{timezone.now():%Y%m%d%H}"
            ),
        )
    except (stripe_api.StripeUnavailable, stripe_api.StripeRequestError) as exc:
        log.warning("card setup for client %s failed: %s", client.pk, exc)
        raise BillingError("Saving a card is unavailable right now. Please try again later.") from exc
    if not session.get("url"):
        raise BillingError("Saving a card is unavailable right now. Please try again later.")
    return session["url"]


def finish_card_setup(*, client: Client, session_id: str) -> StripeCustomer:
    """Store the card saved in a completed setup session of this client's (the success URL's step)."""
    workspace = client.workspace
    customer = StripeCustomer.objects.filter(workspace_id=workspace.pk, client=client).first()
    if customer is None or not stripe_api.is_configured(workspace) or not session_id:
        raise BillingError("We could not find that card. Please try again.")
    try:
        session = stripe_api.retrieve_checkout_session(account=stripe_api.account_id(workspace), session_id=session_id)
    except (stripe_api.StripeUnavailable, stripe_api.StripeRequestError) as exc:
        raise BillingError("We could not confirm the card with Stripe. Please try again.") from exc
    # The session id comes from the URL: it must be this client's own completed setup.
    metadata = session.get("metadata") or {}
    if (
        session.get("mode") != "setup"
        or metadata.get("client_id") != str(client.pk)
        or object_id(session.get("customer")) != customer.customer_id
    ):
        raise BillingError("We could not find that card. Please try again.")
    if session.get("status") != "complete":
        raise BillingError("The card was not saved. Please try again.")
    payment_method = saved_payment_method(workspace, session.get("setup_intent"))
    return store_card(client=client, customer_id=customer.customer_id, payment_method=payment_method)


def saved_payment_method(workspace: Workspace, setup_intent: Any) -> dict[str, Any]:
    account = stripe_api.account_id(workspace)
    if not isinstance(setup_intent, dict):
        setup_intent = stripe_api.retrieve_setup_intent(account=account, setup_intent_id=object_id(setup_intent))
    payment_method = setup_intent.get("payment_method")
    if not isinstance(payment_method, dict):
        payment_method = stripe_api.retrieve_payment_method(
            account=account, payment_method_id=object_id(payment_method)
        )
    return payment_method


def store_card(*, client: Client, customer_id: str, payment_method: dict[str, Any]) -> StripeCustomer:
    """Make `payment_method` the client's saved card; the card it replaces is detached afterwards."""
    card = payment_method.get("card") or {}
    with transaction.atomic():
        row, _ = StripeCustomer.objects.select_for_update().get_or_create(
            workspace_id=client.workspace_id, client=client, defaults={"customer_id": customer_id}
        )
        replaced = row.payment_method_id if row.payment_method_id != payment_method["id"] else ""
        row.customer_id = customer_id
        row.payment_method_id = payment_method["id"]
        row.card_brand = str(card.get("brand") or "")[:20]
        row.card_last4 = str(card.get("last4") or "")[:4]
        month, year = card.get("exp_month"), card.get("exp_year")
        row.card_exp = f"{int(month):02d}/{int(year)}" if month and year else ""
        row.save()
        if replaced:
            workspace = client.workspace
            transaction.on_commit(lambda: _detach_quietly(workspace, replaced))  # Stripe after commit
    return row


def remove_card(*, client: Client) -> None:
    """Forget the client's saved card and detach it from their Stripe customer."""
    with transaction.atomic():
        row = StripeCustomer.objects.select_for_update().filter(workspace_id=client.workspace_id, client=client).first()
        if row is None or not row.payment_method_id:
            return
        payment_method_id = row.payment_method_id
        row.payment_method_id = row.card_brand = row.card_last4 = row.card_exp = ""
        row.save()
    _detach_quietly(client.workspace, payment_method_id)


def _detach_quietly(workspace: Workspace, payment_method_id: str) -> None:
    # Our row no longer points at the card, so it is never charged again; detaching is tidiness.
    if not stripe_api.is_configured(workspace):
        return
    try:
        stripe_api.detach_payment_method(account=stripe_api.account_id(workspace), payment_method_id=payment_method_id)
    except (stripe_api.StripeUnavailable, stripe_api.StripeRequestError) as exc:
        log.warning("could not detach %s: %s", payment_method_id, exc)


# --- Charging a saved card ------------------------------------------------------------------


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
            metadata={**_metadata(invoice), "attempt": str(attempt.number)},
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
            **_invoice_context(invoice),
            "message": message,
            "attempt": attempt,
            "final": final,
            "next_charge_on": invoice.next_charge_on,
        }
        if tell_client and (to := _client_email(invoice)):
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
            _tell_overdue(invoice, today=today, collection_stopped=True)


def _queue_receipt(payment: Payment) -> None:
    invoice = Invoice.objects.select_related("workspace", "client").get(pk=payment.invoice_id)
    to = _client_email(invoice)
    if not to:
        return
    queue_email(
        to=to,
        template="payment_receipt",
        context={
            **_invoice_context(invoice),
            "payment": payment,
            "amount": format_money(payment.amount_minor, payment.currency, _locale(invoice)),
        },
        sender_name=invoice.workspace.name,
        key=f"payment-{payment.pk}-receipt",
        attachments=_pdf_attachment(invoice),
    )


# --- Refunds --------------------------------------------------------------------------------


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
            f"Refund an amount above zero and at most {format_money(left, payment.currency, _locale(payment))}.",
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


# --- Dunning: retries, overdue notices, reminders, pauses --------------------------------------


@dataclass
class DunningSummary:
    charges: int = 0
    overdue_notices: int = 0
    reminders: int = 0
    paused: int = 0
    errors: int = 0


def due_charge_ids(as_of: date | None = None) -> list[int]:
    """Open auto-charge invoices whose retry date has come in their workspace (or as of `as_of`),
    and those whose charge has been in flight so long that its task must have died."""
    horizon = as_of or (timezone.now().date() + timedelta(days=1))  # no workspace is further ahead than UTC+14h
    stale = Payment.objects.filter(
        method=Payment.Method.CARD,
        status=Payment.Status.PENDING,
        created_at__lt=timezone.now() - STALE_PENDING_AFTER,
    ).values("invoice_id")
    candidates = (
        Invoice.objects.filter(status=Invoice.Status.OPEN, auto_charge=True)
        .filter(Q(next_charge_on__lte=horizon) | Q(pk__in=stale))
        .select_related("workspace")
        .order_by("pk")
    )
    return [
        invoice.pk
        for invoice in candidates
        if invoice.next_charge_on is None or invoice.next_charge_on <= (as_of or invoice.workspace.today())
    ]


def retry_due_charges(as_of: date | None = None) -> DunningSummary:
    """Retry every charge that is due, in this process. Idempotent: a retry done is not due again."""
    summary = DunningSummary()
    for invoice_id in due_charge_ids(as_of):
        try:
            retry_charge(invoice_id, as_of=as_of)
            summary.charges += 1
        except stripe_api.StripeUnavailable:
            log.warning("dunning: Stripe unavailable for invoice %s; the next run retries", invoice_id)
            summary.errors += 1
    return summary


def retry_charge(invoice_id: int, *, as_of: date | None = None) -> None:
    invoice = Invoice.objects.select_related("workspace", "client").get(pk=invoice_id)
    if not charge_invoice(invoice, as_of=as_of):
        # The card can no longer be charged (removed, Stripe disconnected): stop retrying.
        Invoice.objects.filter(pk=invoice_id).update(next_charge_on=None)


def send_overdue_reminders(as_of: date | None = None) -> DunningSummary:
    """Tell both sides once when an invoice is overdue, remind the client on the workspace's
    offsets (days after due, each once), and pause retainers set to pause on unpaid invoices.

    Idempotent and catching up: each notice is claimed with a conditional UPDATE and keyed in
    the outbox. After downtime, only the latest reminder that came due is sent (the ones it
    replaces are not sent late).
    """
    summary = DunningSummary()
    horizon = as_of or (timezone.now().date() + timedelta(days=1))  # no workspace is further ahead than UTC+14h
    overdue = (
        Invoice.objects.filter(status=Invoice.Status.OPEN, due_on__lt=horizon)
        .exclude(kind=Invoice.Kind.CREDIT_NOTE)
        .select_related("workspace", "client", "retainer")
        .order_by("workspace_id", "pk")
    )
    profiles: dict[int, BillingProfile] = {}
    for invoice in overdue.iterator(chunk_size=500):
        today = as_of or invoice.workspace.today()
        if not invoice.is_overdue(on=today):
            continue
        if invoice.workspace_id not in profiles:
            profiles[invoice.workspace_id] = profile_for(invoice.workspace)
        profile = profiles[invoice.workspace_id]
        if invoice.overdue_notified_at is None:
            with transaction.atomic():
                summary.overdue_notices += _tell_overdue(invoice, today=today)
        summary.reminders += _send_reminder(invoice, profile=profile, today=today)
        if _pause_for_unpaid(invoice, today=today):
            summary.paused += 1
    return summary


def _tell_overdue(invoice: Invoice, *, today: date, collection_stopped: bool = False) -> bool:
    """Both sides, once per invoice (claimed on `overdue_notified_at`). Call inside a transaction."""
    claimed = Invoice.objects.filter(pk=invoice.pk, overdue_notified_at=None).update(overdue_notified_at=timezone.now())
    if not claimed:
        return False
    context = {
        **_invoice_context(invoice),
        "days_overdue": max((today - invoice.due_on).days, 0) if invoice.due_on else 0,
        "is_overdue": invoice.is_overdue(on=today),
        "collection_stopped": collection_stopped,
    }
    if to := _client_email(invoice):
        queue_email(
            to=to,
            template="invoice_overdue",
            context=context,
            sender_name=invoice.workspace.name,
            key=f"invoice-{invoice.pk}-overdue",
            attachments=_pdf_attachment(invoice),
        )
    for user_id, email in consultant_recipients(invoice.workspace_id):
        queue_email(
            to=email,
            template="invoice_overdue_consultant",
            context=context,
            key=f"invoice-{invoice.pk}-overdue-{user_id}",
        )
    return True


def _send_reminder(invoice: Invoice, *, profile: BillingProfile, today: date) -> bool:
    offsets = sorted({int(days) for days in profile.reminder_offsets or [] if int(days) > 0})
    came_due = [days for days in offsets if invoice.due_on + timedelta(days=days) <= today]
    if len(came_due) <= invoice.reminders_sent:
        return False
    with transaction.atomic():
        # Claim: one run moves the counter; a concurrent run's UPDATE matches nothing.
        claimed = Invoice.objects.filter(pk=invoice.pk, reminders_sent=invoice.reminders_sent).update(
            reminders_sent=len(came_due)
        )
        to = _client_email(invoice)
        if not claimed or not to:
            return False
        queue_email(
            to=to,
            template="invoice_overdue",
            context={
                **_invoice_context(invoice),
                "days_overdue": (today - invoice.due_on).days,
                "is_overdue": True,
                "reminder": True,
            },
            sender_name=invoice.workspace.name,
            key=f"invoice-{invoice.pk}-reminder-{came_due[-1]}",
            attachments=_pdf_attachment(invoice),
        )
    return True


def _pause_for_unpaid(invoice: Invoice, *, today: date) -> bool:
    """Pause the invoice's retainer once when the invoice is its `pause_after_unpaid_days` overdue.

    Once per invoice: the notice to the consultant is the record that it was done, so resuming
    the retainer by hand is not undone by the next run.
    """
    retainer = invoice.retainer
    if (
        retainer is None
        or retainer.pause_after_unpaid_days is None
        or retainer.status != Retainer.Status.ACTIVE
        or invoice.due_on + timedelta(days=retainer.pause_after_unpaid_days) > today
    ):
        return False
    marker = f"invoice-{invoice.pk}-paused"
    with transaction.atomic():
        if Email.objects.filter(key__startswith=marker + "-").exists():
            return False
        try:
            retainer = delivery.pause_retainer(retainer=retainer, on=today)
        except delivery.DeliveryError:
            return False  # paused or ended meanwhile
        context = {**_invoice_context(invoice), "retainer": retainer, "days_overdue": (today - invoice.due_on).days}
        for user_id, email in consultant_recipients(invoice.workspace_id):
            queue_email(
                to=email,
                template="retainer_paused",
                context=context,
                key=f"{marker}-{user_id}",
            )
    return True


def run_dunning(*, as_of: date | None = None, inline: bool = False) -> DunningSummary:
    """The daily dunning run: charge retries (inline, or one task each) and the overdue notices."""
    from billing import tasks

    summary = DunningSummary()
    if inline:
        summary = retry_due_charges(as_of)
    else:
        for invoice_id in due_charge_ids(as_of):
            tasks.retry_charge.delay(invoice_id, as_of.isoformat() if as_of else None)
            summary.charges += 1
    notices = send_overdue_reminders(as_of)
    summary.overdue_notices, summary.reminders, summary.paused = (
        notices.overdue_notices,
        notices.reminders,
        notices.paused,
    )
    return summary


# --- Helpers -------------------------------------------------------------------------------


def _metadata(invoice: Invoice) -> dict[str, str]:
    return {"invoice_id": str(invoice.pk), "workspace_id": str(invoice.workspace_id)}


def object_id(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


def _locale(obj: Invoice | Payment) -> str:
    return obj.workspace.locale or "en_US"


def _seller_name(workspace: Workspace) -> str:
    profile = BillingProfile.objects.filter(workspace=workspace).first()
    return (profile.legal_name if profile else "") or workspace.name


def _client_email(invoice: Invoice) -> str:
    from billing.sending import recipient  # sending imports this module

    return recipient(invoice)


def _pdf_attachment(invoice: Invoice) -> list[dict[str, str]]:
    if not invoice.pdf:
        return []
    return [{"path": invoice.pdf.name, "filename": f"{invoice.number}.pdf", "mimetype": "application/pdf"}]


def _invoice_context(invoice: Invoice) -> dict[str, object]:
    locale = _locale(invoice)
    return {
        "invoice": invoice,
        "workspace": invoice.workspace,
        "client": invoice.client,
        "seller_name": _seller_name(invoice.workspace),
        "total": format_money(invoice.total_minor, invoice.currency, locale),
        "balance": format_money(invoice.balance_minor, invoice.currency, locale),
        "pay_url": pay_url(invoice),
        "portal_url": settings.SITE_URL + reverse("portal:home"),
        "invoice_url": _invoice_admin_url(invoice),  # for the consultant's emails
    }


def _invoice_admin_url(invoice: Invoice) -> str:
    return settings.SITE_URL + reverse("billing:invoice_detail", args=[invoice.workspace.slug, invoice.pk])
