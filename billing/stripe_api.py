"""The one module that talks to Stripe (and the only one that imports `stripe`).

Every call is made on a workspace's connected account (`Stripe-Account`), and every call
that creates something carries an idempotency key built from our own ids, so a retried
Celery task replays the first request instead of charging twice. The SDK retries nothing
itself: Celery does, with the same key. Answers come back as plain dicts, and Stripe's
errors as the three exceptions below, so callers need not know the SDK.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

import stripe
from django.conf import settings

from billing.models import StripeAccount
from retainers.models import Workspace

stripe.enable_telemetry = False  # no request metrics sent to Stripe with the next call

DEFAULT_TIMEOUT_SECONDS = 20
WEBHOOK_TOLERANCE_SECONDS = 300


class StripeUnavailable(OSError):
    """Stripe could not be reached, timed out, was rate limited or failed (5xx): try again later
    with the same idempotency key. An OSError, so tasks that retry on I/O errors retry it."""


class StripeCardError(Exception):
    """The card was declined (HTTP 402). `message` is Stripe's text, fit to show the client."""

    def __init__(self, message: str, *, code: str = "", charge_id: str = "", payment_intent_id: str = "") -> None:
        super().__init__(message)
        self.message, self.code, self.charge_id, self.payment_intent_id = message, code, charge_id, payment_intent_id


class StripeRequestError(Exception):
    """Stripe refused the request for good (invalid, unauthorised, idempotency key reused with
    other parameters): retrying the same request cannot help."""

    def __init__(self, message: str, *, code: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.message, self.code, self.status = message, code, status


class WebhookSignatureError(Exception):
    """A webhook's signature does not match its body, or its timestamp is too old."""


# For `@shared_task(autoretry_for=stripe_api.RETRYABLE)`.
RETRYABLE: tuple[type[Exception], ...] = (StripeUnavailable,)


def is_configured(workspace: Workspace) -> bool:
    """Stripe is usable for this workspace: the platform has a secret key and the workspace an account."""
    return bool(settings.STRIPE_SECRET_KEY) and bool(account_id(workspace))


def account_id(workspace: Workspace) -> str:
    """The workspace's connected account, when it may take payments (billing/connect.py); else ""."""
    connected = StripeAccount.objects.filter(workspace=workspace, disconnected_at=None, charges_enabled=True)
    return connected.values_list("account_id", flat=True).first() or ""


@functools.cache
def _http_client(timeout: float) -> stripe.HTTPClient:
    # Shared so that connections are reused (its sessions are per thread); it holds no tenant data.
    return stripe.RequestsClient(timeout=timeout)


def _client() -> stripe.StripeClient:
    """A client from the current settings; cheap to build, so tests may point it elsewhere at will."""
    base_addresses = {}
    if settings.STRIPE_API_BASE:
        base_addresses = {"api": settings.STRIPE_API_BASE.rstrip("/")}
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses=base_addresses,  # type: ignore[arg-type]
        max_network_retries=0,  # Celery retries, with our idempotency key
        http_client=_http_client(float(getattr(settings, "STRIPE_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS))),
    )


def _options(account: str, idempotency_key: str | None = None) -> dict[str, Any]:
    if not account:
        raise StripeRequestError("This workspace has no Stripe account connected.")
    options: dict[str, Any] = {"stripe_account": account}
    if idempotency_key:
        options["idempotency_key"] = idempotency_key
    return options


def _translate(exc: stripe.StripeError) -> Exception:
    body = exc.json_body if isinstance(exc.json_body, dict) else {}
    error = body.get("error") or {}
    message = error.get("message") or exc.user_message or str(exc) or type(exc).__name__
    if isinstance(exc, stripe.CardError):
        payment_intent = error.get("payment_intent") or {}
        charge = error.get("charge") or (
            payment_intent.get("latest_charge") if isinstance(payment_intent, dict) else ""
        )
        return StripeCardError(
            message,
            code=error.get("decline_code") or error.get("code") or "",
            charge_id=_id_of(charge),
            payment_intent_id=_id_of(payment_intent),
        )
    status = exc.http_status
    if isinstance(exc, (stripe.APIConnectionError, stripe.RateLimitError)) or (
        type(exc) is stripe.APIError and (status is None or status >= 500 or status == 409)
    ):
        return StripeUnavailable(f"Stripe is unavailable: {message}")
    return StripeRequestError(message, code=error.get("code") or "", status=status)


def _id_of(value: object) -> str:
    """An expandable field: an id, or the object with its id."""
    if isinstance(value, Mapping):
        return str(value.get("id") or "")
    return str(value or "")


def _call(method, *args: Any, **kwargs: Any) -> dict[str, Any]:
    try:
        result = method(*args, **kwargs)
    except stripe.StripeError as exc:
        raise _translate(exc) from exc
    return result.to_dict() if hasattr(result, "to_dict") else dict(result)


# --- Connect: the workspace's own account, made and onboarded by Stripe ------------------------
# Platform calls (no Stripe-Account header): the account is the platform's to create and to read.


def _platform_options(idempotency_key: str | None = None) -> dict[str, Any]:
    return {"idempotency_key": idempotency_key} if idempotency_key else {}


def create_express_account(*, workspace_id: int, email: str, idempotency_key: str) -> dict[str, Any]:
    """A new Express account for a workspace; Stripe's onboarding collects the rest."""
    params: dict[str, Any] = {
        "type": "express",
        "capabilities": {"card_payments": {"requested": True}, "transfers": {"requested": True}},
        "metadata": {"workspace_id": str(workspace_id)},
    }
    if email:
        params["email"] = email
    return _call(_client().v1.accounts.create, params, _platform_options(idempotency_key))


def create_onboarding_link(*, account: str, refresh_url: str, return_url: str) -> dict[str, Any]:
    """A single-use link to Stripe's onboarding of `account` (it expires within minutes: redirect at once)."""
    params = {"account": account, "type": "account_onboarding", "refresh_url": refresh_url, "return_url": return_url}
    return _call(_client().v1.account_links.create, params, _platform_options())


def retrieve_account(*, account: str) -> dict[str, Any]:
    return _call(_client().v1.accounts.retrieve, account, None, _platform_options())


# --- Customers and saved cards ---------------------------------------------------------------


def create_customer(*, account: str, client_id: int, workspace_id: int, name: str, email: str) -> dict[str, Any]:
    params: dict[str, Any] = {
        "name": name,
        "metadata": {"client_id": str(client_id), "workspace_id": str(workspace_id)},
    }
    if email:
        params["email"] = email
    return _call(_client().v1.customers.create, params, _options(account, f"client-{client_id}-customer"))


def attach_payment_method(
    *, account: str, payment_method_id: str, customer_id: str, idempotency_key: str
) -> dict[str, Any]:
    """Attach a payment method to a customer: the demo attaches Stripe's test card `pm_card_visa`
    (in test mode, and on localstripe, that makes a new card and returns it)."""
    return _call(
        _client().v1.payment_methods.attach,
        payment_method_id,
        {"customer": customer_id},
        _options(account, idempotency_key),
    )


def retrieve_payment_method(*, account: str, payment_method_id: str) -> dict[str, Any]:
    return _call(_client().v1.payment_methods.retrieve, payment_method_id, None, _options(account))


def detach_payment_method(*, account: str, payment_method_id: str) -> dict[str, Any]:
    return _call(
        _client().v1.payment_methods.detach,
        payment_method_id,
        None,
        _options(account, f"payment-method-{payment_method_id}-detach"),
    )


def retrieve_setup_intent(*, account: str, setup_intent_id: str) -> dict[str, Any]:
    return _call(
        _client().v1.setup_intents.retrieve,
        setup_intent_id,
        {"expand": ["payment_method"]},
        _options(account),
    )


# --- Charges, refunds ------------------------------------------------------------------------


def create_off_session_payment(
    *,
    account: str,
    amount_minor: int,
    currency: str,
    customer_id: str,
    payment_method_id: str,
    metadata: Mapping[str, str],
    idempotency_key: str,
) -> dict[str, Any]:
    """A confirmed, off-session PaymentIntent on the saved card. Raises StripeCardError when declined."""
    params = {
        "amount": amount_minor,
        "currency": currency.lower(),
        "customer": customer_id,
        "payment_method": payment_method_id,
        "confirm": True,
        "off_session": True,
        "metadata": dict(metadata),
    }
    return _call(_client().v1.payment_intents.create, params, _options(account, idempotency_key))


def retrieve_payment_intent(*, account: str, payment_intent_id: str) -> dict[str, Any]:
    return _call(_client().v1.payment_intents.retrieve, payment_intent_id, None, _options(account))


def list_payment_intents(*, account: str, customer_id: str, created_since: int) -> list[dict[str, Any]]:
    """The customer's PaymentIntents created at or after `created_since` (a Unix time), newest first:
    how a charge whose answer was lost is found once Stripe may have forgotten its idempotency key.
    A list, not Search: lists are read-after-write consistent. The newest 100 are plenty for one
    customer's invoices since one attempt."""
    params = {"customer": customer_id, "created": {"gte": created_since}, "limit": 100}
    page = _call(_client().v1.payment_intents.list, params, _options(account))
    return list(page.get("data") or [])


def create_refund(
    *, account: str, payment_intent_id: str, amount_minor: int, metadata: Mapping[str, str], idempotency_key: str
) -> dict[str, Any]:
    params = {"payment_intent": payment_intent_id, "amount": amount_minor, "metadata": dict(metadata)}
    return _call(_client().v1.refunds.create, params, _options(account, idempotency_key))


def list_refunds(*, account: str, payment_intent_id: str) -> list[dict[str, Any]]:
    """The refunds of a payment (the newest 100: more refunds than that of one payment do not happen)."""
    page = _call(_client().v1.refunds.list, {"payment_intent": payment_intent_id, "limit": 100}, _options(account))
    return list(page.get("data") or [])


# --- Checkout (Stripe-hosted pages: no JavaScript of ours, no card data on our pages) --------


def create_payment_checkout(
    *,
    account: str,
    amount_minor: int,
    currency: str,
    description: str,
    customer_email: str,
    success_url: str,
    cancel_url: str,
    metadata: Mapping[str, str],
    idempotency_key: str,
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": currency.lower(),
                    "unit_amount": amount_minor,
                    "product_data": {"name": description},
                },
            }
        ],
        "success_url": success_url,
        "cancel_url": cancel_url,
        "client_reference_id": metadata.get("invoice_id", ""),
        "metadata": dict(metadata),
        "payment_intent_data": {"metadata": dict(metadata)},
    }
    if customer_email:
        params["customer_email"] = customer_email
    return _call(_client().v1.checkout.sessions.create, params, _options(account, idempotency_key))


def create_setup_checkout(
    *,
    account: str,
    customer_id: str,
    currency: str,
    success_url: str,
    cancel_url: str,
    metadata: Mapping[str, str],
    idempotency_key: str,
) -> dict[str, Any]:
    params = {
        "mode": "setup",
        "customer": customer_id,
        "currency": currency.lower(),
        "payment_method_types": ["card"],
        "success_url": success_url,
        "cancel_url": cancel_url,
        "metadata": dict(metadata),
        "setup_intent_data": {"metadata": dict(metadata)},
    }
    return _call(_client().v1.checkout.sessions.create, params, _options(account, idempotency_key))


def retrieve_checkout_session(*, account: str, session_id: str) -> dict[str, Any]:
    return _call(
        _client().v1.checkout.sessions.retrieve,
        session_id,
        {"expand": ["setup_intent.payment_method"]},
        _options(account),
    )


# --- Webhooks -------------------------------------------------------------------------------


def verify_webhook(payload: bytes, signature_header: str, *, secret: str) -> dict[str, Any]:
    """The event in a webhook body, once its signature (HMAC-SHA256 of "t.body") and its
    timestamp (at most 5 minutes old) are verified on the raw bytes."""
    if not secret:
        raise WebhookSignatureError("No webhook secret is configured.")
    try:
        stripe.WebhookSignature.verify_header(payload, signature_header, secret, tolerance=WEBHOOK_TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError as exc:
        raise WebhookSignatureError(str(exc)) from exc
    try:
        event = json.loads(payload)
    except ValueError as exc:
        raise WebhookSignatureError("The body is not JSON.") from exc
    if not isinstance(event, dict) or not event.get("id") or not isinstance(event.get("data"), dict):
        raise WebhookSignatureError("The body is not a Stripe event.")
    return event
