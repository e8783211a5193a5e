"""Stripe's webhook events, each applied once.

The event's row (`StripeEvent`, unique event id) is written in the same transaction as its
effect: a duplicate delivery, even one arriving at the same moment, finds the row and does
nothing; a failed effect rolls the row back, so Stripe's redelivery tries again.

Handlers converge on the right state whatever the order: a payment is recorded once by its
PaymentIntent id, a refund by its refund id (and its status brought up to date by the later
events about it), a failure never touches a paid invoice.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from billing import cards, charges, connect, stripe_api, stripe_ids
from billing.models import Invoice, Payment, StripeAccount, StripeCustomer, StripeEvent
from billing.refunds import record_stripe_refund
from clients.models import Client
from retainers import tenancy
from retainers.models import Workspace
from retainers.money import format_money
from retainers.outbox import queue_email
from retainers.services import consultant_recipients

log = logging.getLogger(__name__)

HANDLED = {
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "charge.refunded",
    "refund.created",
    "refund.updated",
    "refund.failed",
    "charge.refund.updated",  # the older name of refund.updated
    "charge.dispute.created",
    "checkout.session.completed",
    "account.updated",  # the connected account's state (billing/connect.py)
}


@tenancy.scan("stripe webhook: the account, invoice or payment a signed Stripe event names")
def process_event(event: dict[str, Any]) -> str:
    """Apply a verified event once: "processed", "duplicate" or "ignored".

    Raises stripe_api.StripeUnavailable when Stripe must be asked something first and cannot
    be reached; nothing is stored then, and Stripe delivers the event again later.
    """
    event_id = str(event["id"])
    if StripeEvent.objects.filter(event_id=event_id).exists():
        return "duplicate"
    workspace_ids = _workspaces_of(event)
    # What must be fetched from Stripe is fetched before the transaction: no network inside it.
    fetched = _fetch(event, workspace_ids) if event.get("type") in HANDLED and workspace_ids else None
    with transaction.atomic():
        _, created = StripeEvent.objects.get_or_create(
            event_id=event_id,
            defaults={
                "type": str(event.get("type", ""))[:100],
                "account": str(event.get("account") or "")[:64],
                "created": _instant(event.get("created")),
            },
        )
        if not created:
            return "duplicate"  # a concurrent delivery of the same event won
        if event.get("type") not in HANDLED or not workspace_ids:
            return "ignored"
        _apply(event, workspace_ids, fetched)
    return "processed"


def _instant(created: Any) -> datetime:
    try:
        return datetime.fromtimestamp(int(created), tz=UTC)
    except (TypeError, ValueError, OverflowError):
        return timezone.now()


def _workspaces_of(event: dict[str, Any]) -> list[int]:
    """The workspaces connected to the event's account (normally one)."""
    account = event.get("account") or ""
    if not account:
        return []
    # A disconnected account's events still count: a refund of a payment made before is still money moved.
    return list(StripeAccount.objects.filter(account_id=account).values_list("workspace_id", flat=True))


def _object(event: dict[str, Any]) -> dict[str, Any]:
    return event["data"].get("object") or {}


def _invoice_from_metadata(obj: dict[str, Any], workspace_ids: list[int]) -> Invoice | None:
    metadata = obj.get("metadata") or {}
    try:
        invoice_id, workspace_id = int(metadata["invoice_id"]), int(metadata["workspace_id"])
    except (KeyError, TypeError, ValueError):
        return None
    if workspace_id not in workspace_ids:
        return None  # metadata naming a workspace the account does not belong to
    return Invoice.objects.filter(pk=invoice_id, workspace_id=workspace_id).first()


def _fetch(event: dict[str, Any], workspace_ids: list[int]) -> Any:
    """What the event's effect needs from Stripe. StripeUnavailable propagates (Stripe redelivers);
    a refused request means there is nothing to fetch, and the event is stored without effect."""
    try:
        return _fetch_from_stripe(event, workspace_ids)
    except stripe_api.StripeRequestError as exc:
        log.warning("stripe event %s: %s", event.get("id"), exc)
        return None


def _fetch_from_stripe(event: dict[str, Any], workspace_ids: list[int]) -> Any:
    obj = _object(event)
    kind = event["type"]
    workspace = Workspace.objects.get(pk=workspace_ids[0])
    if kind == "charge.refunded":
        refunds = obj.get("refunds")
        if isinstance(refunds, dict) and isinstance(refunds.get("data"), list) and not refunds.get("has_more"):
            return refunds["data"]
        if not obj.get("payment_intent"):
            return []
        return stripe_api.list_refunds(
            account=event["account"], payment_intent_id=stripe_ids.object_id(obj["payment_intent"])
        )
    if kind == "checkout.session.completed" and obj.get("mode") == "setup" and obj.get("setup_intent"):
        return cards.saved_payment_method(workspace, obj["setup_intent"])
    return None


def _apply(event: dict[str, Any], workspace_ids: list[int], fetched: Any) -> None:
    obj = _object(event)
    kind = event["type"]
    if kind == "payment_intent.succeeded":
        _payment_succeeded(obj, workspace_ids)
    elif kind == "payment_intent.payment_failed":
        _payment_failed(obj, workspace_ids)
    elif kind == "charge.refunded":
        _charge_refunded(obj, workspace_ids, fetched or [])
    elif kind in {"refund.created", "refund.updated", "refund.failed", "charge.refund.updated"}:
        _refund_changed(obj, workspace_ids)
    elif kind == "charge.dispute.created":
        _dispute_created(obj, workspace_ids)
    elif kind == "account.updated":
        connect.account_updated(obj)
    elif kind == "checkout.session.completed":
        if obj.get("mode") == "setup":
            _card_saved(obj, workspace_ids, fetched)
        elif obj.get("mode") == "payment" and obj.get("payment_status") == "paid" and obj.get("payment_intent"):
            intent = {"id": stripe_ids.object_id(obj["payment_intent"]), "amount_received": obj.get("amount_total")}
            _payment_succeeded({**intent, "metadata": obj.get("metadata") or {}}, workspace_ids)


def _attempt(obj: dict[str, Any]) -> int | None:
    try:
        return int((obj.get("metadata") or {})["attempt"])
    except (KeyError, TypeError, ValueError):
        return None


def _payment_succeeded(intent: dict[str, Any], workspace_ids: list[int]) -> None:
    invoice = _invoice_from_metadata(intent, workspace_ids)
    if invoice is None:
        log.info("payment %s names no invoice of ours", intent.get("id"))
        return
    charges.record_charge_success(invoice.pk, intent=intent, attempt=_attempt(intent))


def _payment_failed(intent: dict[str, Any], workspace_ids: list[int]) -> None:
    invoice = _invoice_from_metadata(intent, workspace_ids)
    if invoice is None:
        return
    error = intent.get("last_payment_error") or {}
    message = error.get("message") or "The payment failed."
    charge_id = stripe_ids.object_id(error.get("charge") or intent.get("latest_charge"))
    attempt = _attempt(intent)
    if attempt is not None:
        # One of our off-session attempts: settles it if the task has not (same emails, same keys).
        charges.record_charge_failure(
            invoice.pk,
            attempt=attempt,
            message=message,
            charge_id=charge_id,
            intent_id=stripe_ids.object_id(intent.get("id")),
            today=invoice.workspace.today(),
        )
        return
    # A failed try on the hosted pay page: kept in the history, nothing else changes. An intent
    # without an amount tells nothing to keep (and a payment row's amount is above zero).
    amount = int(intent.get("amount") or 0)
    if (
        charge_id
        and amount > 0
        and not Payment.objects.filter(workspace_id=invoice.workspace_id, stripe_id=charge_id).exists()
    ):
        Payment.objects.create(
            workspace_id=invoice.workspace_id,
            invoice=invoice,
            client_id=invoice.client_id,
            kind=Payment.Kind.PAYMENT,
            status=Payment.Status.FAILED,
            method=Payment.Method.CARD,
            amount_minor=amount,
            currency=invoice.currency,
            stripe_id=charge_id,
            failure_message=message[:255],
            note=f"Pay link, PaymentIntent {stripe_ids.object_id(intent.get('id'))}"[:255],
        )


def _charge_refunded(charge: dict[str, Any], workspace_ids: list[int], refunds: list[dict[str, Any]]) -> None:
    payment_intent_id = stripe_ids.object_id(charge.get("payment_intent"))
    payment = (
        Payment.objects.filter(
            workspace_id__in=workspace_ids,
            stripe_id=payment_intent_id,
            kind=Payment.Kind.PAYMENT,
            status=Payment.Status.SUCCEEDED,
        ).first()
        if payment_intent_id
        else None
    )
    if payment is None:
        return
    for refund in refunds:
        if refund.get("id") and refund.get("amount") is not None:
            record_stripe_refund(payment, refund, actor=None, note="Refunded in Stripe")


def _refund_changed(refund: dict[str, Any], workspace_ids: list[int]) -> None:
    """A refund made (or changed: succeeded, failed, canceled) in Stripe, ours or from its dashboard."""
    payment_intent_id = stripe_ids.object_id(refund.get("payment_intent"))
    if not refund.get("id") or not payment_intent_id:
        return
    payment = Payment.objects.filter(
        workspace_id__in=workspace_ids,
        stripe_id=payment_intent_id,
        kind=Payment.Kind.PAYMENT,
        status=Payment.Status.SUCCEEDED,
    ).first()
    if payment is not None:
        record_stripe_refund(payment, refund, actor=None, note="Refunded in Stripe")


def _dispute_created(dispute: dict[str, Any], workspace_ids: list[int]) -> None:
    payment_intent_id = stripe_ids.object_id(dispute.get("payment_intent"))
    payment = (
        Payment.objects.filter(workspace_id__in=workspace_ids, stripe_id=payment_intent_id)
        .select_related("invoice", "client")
        .first()
        if payment_intent_id
        else None
    )
    workspace = Workspace.objects.get(pk=payment.workspace_id if payment else workspace_ids[0])
    currency = str(dispute.get("currency") or workspace.currency).upper()
    context = {
        "workspace": workspace,
        "dispute": dispute,
        "reason": str(dispute.get("reason") or "not given").replace("_", " "),
        "amount": format_money(int(dispute.get("amount") or 0), currency, workspace.locale or "en_US"),
        "payment": payment,
        "invoice": payment.invoice if payment else None,
        "client": payment.client if payment else None,
        "evidence_due_by": _instant((dispute.get("evidence_details") or {}).get("due_by"))
        if (dispute.get("evidence_details") or {}).get("due_by")
        else None,
    }
    for user_id, email in consultant_recipients(workspace.pk):
        queue_email(
            to=email,
            template="dispute_opened",
            context=context,
            workspace=workspace,
            key=f"dispute-{dispute.get('id')}-{user_id}",
        )


def _card_saved(session: dict[str, Any], workspace_ids: list[int], payment_method: Any) -> None:
    metadata = session.get("metadata") or {}
    try:
        client_id, workspace_id = int(metadata["client_id"]), int(metadata["workspace_id"])
    except (KeyError, TypeError, ValueError):
        return
    client = Client.objects.filter(pk=client_id, workspace_id=workspace_id, workspace_id__in=workspace_ids).first()
    customer_id = stripe_ids.object_id(session.get("customer"))
    if client is None or not isinstance(payment_method, dict) or not customer_id:
        return
    known = StripeCustomer.objects.filter(workspace_id=workspace_id, client=client).first()
    if known is not None and known.customer_id != customer_id:
        return  # a session of another customer than the client's: not theirs to change
    cards.store_card(client=client, customer_id=customer_id, payment_method=payment_method)
