"""Delivery's events on the client's timeline (dashboard.timeline merges them): the sessions delivered."""

from __future__ import annotations

from django.urls import reverse

from clients.models import Client
from clients.timeline import Cursor, Event
from delivery.models import WorkItem
from retainers.http import WorkspaceRequest
from retainers.units import format_units


def _units(item: WorkItem) -> str:
    return f"{format_units(item.quantity)} {item.retainer.get_unit_display().lower()}"


def sessions(
    request: WorkspaceRequest, client: Client, kinds: frozenset[str], before: Cursor | None, limit: int
) -> list[Event]:
    """Sessions as they were recorded (reversed and replaced ones are left out), one query."""
    items = WorkItem.objects.for_workspace(request.workspace).filter(retainer__client=client, removed_at=None)
    if before is not None:
        items = items.filter(before.q("session", "created_at"))
    slug = request.workspace.slug
    return [
        Event(
            at=item.created_at,
            kind="session",
            title=f"Session: {item.description}",
            url=reverse("delivery:retainer_detail", kwargs={"workspace_slug": slug, "retainer_id": item.retainer_id}),
            detail=f"{item.delivered_on:%d %b %Y} · {_units(item)} · {item.retainer.name}"
            + ("" if item.billable else " · not billable"),
            pk=item.pk,
        )
        for item in items.select_related("retainer").order_by("-created_at", "-pk")[:limit]
    ]
