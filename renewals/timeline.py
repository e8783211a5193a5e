"""Renewals' events on the client's timeline (dashboard.timeline merges them): each renewal as it stands."""

from __future__ import annotations

from django.db.models.functions import Coalesce
from django.urls import reverse

from clients.models import Client
from clients.timeline import Cursor, Event
from renewals.models import Renewal
from retainers.http import WorkspaceRequest


def renewals(
    request: WorkspaceRequest, client: Client, kinds: frozenset[str], before: Cursor | None, limit: int
) -> list[Event]:
    """One event per renewal, at its latest step (opened, sent, answered), one query."""
    rows = (
        Renewal.objects.for_workspace(request.workspace)
        .filter(retainer__client=client)
        .select_related("retainer")
        .annotate(event_at=Coalesce("responded_at", "sent_at", "created_at"))
    )
    if before is not None:
        rows = rows.filter(before.q("renewal", "event_at"))
    return [
        Event(
            at=renewal.event_at,
            kind="renewal",
            title=f"Renewal of {renewal.retainer.name}: {renewal.get_status_display().lower()}",
            url=reverse("renewals:renewal_detail", args=[request.workspace.slug, renewal.pk]),
            detail=f"Term ends {renewal.term_ends_on:%d %b %Y}",
            pk=renewal.pk,
        )
        for renewal in rows.order_by("-event_at", "-pk")[:limit]
    ]
