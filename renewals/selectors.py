"""Renewals' read-models for pages other apps compose: the client page's renewals section."""

from __future__ import annotations

from clients.models import Client
from renewals.models import Renewal
from retainers.http import WorkspaceRequest

SECTION_ROWS = 10


def client_section(request: WorkspaceRequest, client: Client) -> dict[str, object]:
    """The client's current and past renewals, newest first: one query."""
    renewals = list(
        Renewal.objects.for_workspace(request.workspace)
        .filter(retainer__client=client)
        .select_related("retainer", "next_retainer")
        .order_by("-term_ends_on", "-pk")[: SECTION_ROWS + 1]
    )
    return {"client": client, "renewals": renewals[:SECTION_ROWS], "more": len(renewals) > SECTION_ROWS}
