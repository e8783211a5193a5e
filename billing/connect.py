"""Stripe Connect onboarding: a workspace connects its own Stripe account through Stripe's pages,
never by typing an account id.

"Connect Stripe" creates an Express account for the workspace (once: the idempotency key is the
workspace's) and sends the admin to Stripe's onboarding by a single-use Account Link. Stripe
sends them back to the return URL, where the account is read from Stripe and its state stored:
whether it may take charges decides whether cards are charged (`stripe_api.account_id`). An
account belongs to one workspace across the platform (its id is `StripeAccount`'s primary key).
"Disconnect" sets the account aside: invoices are then emailed with their pay instructions, and
"Connect Stripe" later takes the same account up again, with the cards saved on it.

Stripe is called outside any transaction; what it answers is stored in a short one.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import stripe_api
from billing.models import StripeAccount
from retainers.models import User, Workspace

log = logging.getLogger(__name__)


class ConnectError(Exception):
    """Why the workspace's Stripe account cannot be connected now: one sentence for the admin."""


def account_of(workspace: Workspace) -> StripeAccount | None:
    """The workspace's account, connected or not (None before the first "Connect Stripe")."""
    return StripeAccount.objects.for_workspace(workspace).first()


def _stripe_error(exc: Exception) -> ConnectError:
    if isinstance(exc, stripe_api.StripeUnavailable):
        return ConnectError("Stripe could not be reached. Nothing was changed: try again in a moment.")
    return ConnectError(f"Stripe refused: {getattr(exc, 'message', str(exc))}")


def start_onboarding(*, workspace: Workspace, actor: User, refresh_url: str, return_url: str) -> str:
    """The URL of Stripe's onboarding for the workspace's account, creating the account first if
    the workspace has none. Idempotent: a second click reuses the account Stripe made."""
    if not settings.STRIPE_SECRET_KEY:
        raise ConnectError("Stripe is not set up on this server (STRIPE_SECRET_KEY): invoices are paid by hand.")
    account = account_of(workspace)
    try:
        if account is None:
            created = stripe_api.create_express_account(
                workspace_id=workspace.pk, email=actor.email, idempotency_key=f"workspace-{workspace.pk}-stripe-account"
            )
            account = _store_new(workspace, created)
        link = stripe_api.create_onboarding_link(
            account=account.account_id, refresh_url=refresh_url, return_url=return_url
        )
    except (stripe_api.StripeUnavailable, stripe_api.StripeRequestError) as exc:
        raise _stripe_error(exc) from exc
    url = str(link.get("url") or "")
    if not url.startswith(("https://", "http://")):
        raise ConnectError("Stripe gave no onboarding link. Try again in a moment.")
    return url


def _store_new(workspace: Workspace, created: dict[str, Any]) -> StripeAccount:
    account_id = str(created.get("id") or "")
    if not account_id.startswith("acct_"):
        raise ConnectError("Stripe did not create an account. Try again in a moment.")
    try:
        with transaction.atomic():
            account, _ = StripeAccount.objects.get_or_create(
                workspace=workspace, defaults={"account_id": account_id, **_state(created)}
            )
    except IntegrityError:
        # Stripe answered with an account another workspace holds: never share one.
        log.error("stripe account %s offered to workspace %s is another's", account_id, workspace.pk)
        raise ConnectError("That Stripe account is connected to another workspace.") from None
    return account


def _state(account: dict[str, Any]) -> dict[str, Any]:
    return {
        "charges_enabled": bool(account.get("charges_enabled")),
        "details_submitted": bool(account.get("details_submitted")),
        "updated_at": timezone.now(),
    }


def finish_onboarding(*, workspace: Workspace) -> StripeAccount:
    """Back from Stripe: read the account and store its state; it is connected again if it had
    been disconnected. Safe to repeat (a reload of the return page reads it again)."""
    account = account_of(workspace)
    if account is None:
        raise ConnectError("No Stripe account to finish connecting: start with “Connect Stripe”.")
    try:
        answer = stripe_api.retrieve_account(account=account.account_id)
    except (stripe_api.StripeUnavailable, stripe_api.StripeRequestError) as exc:
        raise _stripe_error(exc) from exc
    if answer.get("id") != account.account_id:
        raise ConnectError("Stripe answered about another account. Nothing was changed.")
    with transaction.atomic():
        StripeAccount.objects.filter(pk=account.pk, workspace=workspace).update(**_state(answer), disconnected_at=None)
    account.refresh_from_db()
    return account


def disconnect(*, workspace: Workspace) -> bool:
    """Stop using the workspace's account: no more card charges or pay links by card, invoices
    are emailed instead. The account is kept aside for a reconnect. False if none was connected."""
    with transaction.atomic():
        return bool(
            StripeAccount.objects.for_workspace(workspace)
            .filter(disconnected_at=None)
            .update(disconnected_at=timezone.now())
        )


def account_updated(account: dict[str, Any]) -> int:
    """Stripe's `account.updated` event: the account's state, as on the return page. Call inside
    the event's transaction. Returns the rows updated (0 for an account nobody holds)."""
    return StripeAccount.objects.filter(pk=str(account.get("id") or "")).update(**_state(account))


def use_test_account(*, workspace: Workspace, account_id: str) -> StripeAccount:
    """Take up an account id as connected and able to take charges, without Stripe's onboarding:
    for localstripe, which has none (`manage.py demo_stripe`, the benchmarks). No page reaches it.
    Keeps the workspace's account if it already has one."""
    with transaction.atomic():
        account, _ = StripeAccount.objects.get_or_create(
            workspace=workspace,
            defaults={"account_id": account_id, "charges_enabled": True, "details_submitted": True},
        )
    return account
