"""The audit trail: who moved money, changed an invoice's state, terms, roles or settings.

Services call `record(...)` inside the transaction of the change, so the row exists exactly when
the change does (a rollback takes both). The table is append-only in PostgreSQL itself.

The IP of a web action comes from the request: `AuditMiddleware` keeps the client's address in a
context variable for the length of the request, and `record` reads it. Outside a request (Celery
tasks, commands, Stripe webhooks' follow-up work in a task) there is none and the row says so.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime

from allauth.account.adapter import get_adapter
from django.db import models
from django.http import HttpRequest, HttpResponseBase
from django.utils import timezone

from retainers.models import AuditEvent, Membership, User, Workspace

_request_ip: ContextVar[str | None] = ContextVar("audit_request_ip", default=None)
_recorded_at: ContextVar[datetime | None] = ContextVar("audit_recorded_at", default=None)


@contextmanager
def request_ip(ip: str | None) -> Iterator[None]:
    """Attribute the audit rows written inside to a web action from `ip`."""
    token = _request_ip.set(ip or None)
    try:
        yield
    finally:
        _request_ip.reset(token)


@contextmanager
def recorded_at(instant: datetime) -> Iterator[None]:
    """Date the audit rows written inside at `instant` rather than now: for history written after the
    fact (the demo's months of invoices and payments), never for a change happening now."""
    token = _recorded_at.set(instant)
    try:
        yield
    finally:
        _recorded_at.reset(token)


class AuditMiddleware:
    """Sets the request's client address for `record` (allauth's reading of it, proxies included)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        try:
            ip = get_adapter(request).get_client_ip(request)  # whole, where rate limits cut IPv6 to /64
        except Exception:  # a request without a usable address is still served, unattributed
            ip = None
        with request_ip(_valid_ip(ip)):
            return self.get_response(request)


def _valid_ip(ip: str | None) -> str | None:
    if not ip:
        return None
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return None


def event(
    *,
    workspace: Workspace | int,
    actor: User | Membership | None,
    action: str,
    target: models.Model | None = None,
    client_id: int | None = None,
    summary: str = "",
    amount_minor: int | None = None,
    currency: str = "",
    changes: Mapping[str, object] | None = None,
) -> AuditEvent:
    """An unsaved audit row (for `bulk_create` in set-based work); `record` writes one."""
    user = actor.user if isinstance(actor, Membership) else actor
    workspace_id = workspace if isinstance(workspace, int) else workspace.pk
    if client_id is None and target is not None:
        client_id = getattr(target, "client_id", None)
    return AuditEvent(
        workspace_id=workspace_id,
        actor=user,
        actor_label=user.email if user is not None else "",
        action=action,
        object_type=target._meta.label_lower if target is not None else "",
        object_id=target.pk if target is not None else None,
        client_id=client_id,
        summary=summary[:255],
        amount_minor=amount_minor,
        currency=currency if amount_minor is not None else "",
        changes=dict(changes or {}),
        ip=_request_ip.get(),
        created_at=_recorded_at.get() or timezone.now(),
    )


def record(
    *,
    workspace: Workspace | int,
    actor: User | Membership | None,
    action: str,
    target: models.Model | None = None,
    client_id: int | None = None,
    summary: str = "",
    amount_minor: int | None = None,
    currency: str = "",
    changes: Mapping[str, object] | None = None,
) -> AuditEvent:
    """Write one audit row in the caller's transaction. `actor` None means the system: a scheduled
    job, Stripe's word through a webhook, or a client in the portal (then `summary` says who)."""
    row = event(
        workspace=workspace,
        actor=actor,
        action=action,
        target=target,
        client_id=client_id,
        summary=summary,
        amount_minor=amount_minor,
        currency=currency,
        changes=changes,
    )
    row.save(force_insert=True)
    return row


def diff(before: Mapping[str, object], after: Mapping[str, object]) -> dict[str, list[object]]:
    """{field: [old, new]} of what changed, as JSON-ready values, for a settings or terms change."""
    return {
        name: [_plain(before.get(name)), _plain(value)]
        for name, value in after.items()
        if _plain(before.get(name)) != _plain(value)
    }


def _plain(value: object) -> object:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def for_object(workspace: Workspace | int, target: models.Model) -> models.QuerySet[AuditEvent]:
    """The events about one object of a workspace, oldest first."""
    return (
        AuditEvent.objects.for_workspace(workspace)
        .filter(
            object_type=target._meta.label_lower,
            object_id=target.pk,
        )
        .order_by("created_at", "pk")
    )
