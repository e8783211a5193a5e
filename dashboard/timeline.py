"""The client's activity timeline: every app's events about one client, merged, newest first.

Each app builds the events it owns (clients.timeline has the `Event` and `Cursor` they use);
this module lists them in the filter's order and merges one page: one query per kind asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.urls import reverse

from billing import timeline as billing
from clients.models import Client
from clients.timeline import Cursor, Event
from communication import timeline as communication
from delivery import timeline as delivery
from renewals import timeline as renewals
from retainers.http import WorkspaceRequest
from retainers.models import AuditEvent
from retainers.money import format_money

PAGE_SIZE = 25


def audit_events(
    request: WorkspaceRequest, client: Client, kinds: frozenset[str], before: Cursor | None, limit: int
) -> list[Event]:
    """The audit trail about the client (retainers.audit): who moved money or changed an invoice or
    the terms, from where, one query."""
    rows = AuditEvent.objects.for_workspace(request.workspace).filter(client_id=client.pk)
    if before is not None:
        rows = rows.filter(before.q("audit", "created_at"))
    slug, locale = request.workspace.slug, request.workspace.locale
    events = []
    for row in rows.order_by("-created_at", "-pk")[:limit]:
        if row.object_type == "billing.invoice":
            url = reverse("billing:invoice_detail", args=[slug, row.object_id])
        elif row.object_type == "clients.retainer":
            url = reverse("delivery:retainer_detail", args=[slug, row.object_id])
        else:
            url = reverse("dashboard:client_detail", args=[slug, client.pk])
        parts = [format_money(row.amount_minor, row.currency, locale)] if row.amount_minor is not None else []
        parts.append(f"by {row.by}" + (f" from {row.ip}" if row.ip else ""))
        events.append(
            Event(
                at=row.created_at,
                kind="audit",
                title=f"{row.label}: {row.summary}" if row.summary else row.label,
                url=url,
                detail=" · ".join(parts),
                pk=row.pk,
            )
        )
    return events


type EventsFn = Callable[[WorkspaceRequest, Client, frozenset[str], Cursor | None, int], list[Event]]


@dataclass(frozen=True)
class Source:
    kind: str
    label: str  # for the filter, e.g. "Notes"
    events: EventsFn


# In the order the filter shows them.
SOURCES = (
    Source("note", "Notes", communication.note_events),
    Source("message", "Messages", communication.message_events),
    Source("task", "Tasks", communication.task_events),
    Source("session", "Sessions", delivery.sessions),
    Source("invoice", "Invoices", billing.invoices),
    Source("payment", "Payments", billing.payments),
    Source("renewal", "Renewals", renewals.renewals),
    Source("audit", "Audit trail", audit_events),
)


def kind_choices() -> list[tuple[str, str]]:
    """(kind, label) of every kind of event, in the filter's order."""
    return [(source.kind, source.label) for source in SOURCES]


@dataclass(frozen=True)
class Page:
    events: list[Event]
    next_cursor: Cursor | None  # None on the last page


def page(
    request: WorkspaceRequest,
    client: Client,
    *,
    kinds: Iterable[str] | None = None,
    before: Cursor | None = None,
    limit: int = PAGE_SIZE,
) -> Page:
    """One page of the merged timeline: one query per kind asked for (every kind when none is)."""
    wanted = frozenset(kinds) if kinds else frozenset(kind for kind, _ in kind_choices())
    events: list[Event] = []
    for source in SOURCES:
        if source.kind in wanted:
            # One more than a page from each: tells whether anything is left after this page.
            events += source.events(request, client, frozenset([source.kind]), before, limit + 1)
    events.sort(key=lambda e: e.sort_key, reverse=True)
    shown = events[:limit]
    more = len(events) > limit
    last = shown[-1] if shown else None
    return Page(events=shown, next_cursor=Cursor(last.at, last.kind, last.pk) if more and last else None)
