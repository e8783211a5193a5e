"""Renewals' read-models for pages other apps compose: the client page's renewals section."""

from __future__ import annotations

from django.core.paginator import Paginator

from clients.models import Client
from renewals.models import Renewal
from retainers.http import WorkspaceRequest

SECTION_ROWS = 10  # a page of renewals on the client page's Renewals tab


def client_section(request: WorkspaceRequest, client: Client, *, page: str | None = None) -> dict[str, object]:
    """Page `page` of the client's current and past renewals, newest first: two queries."""
    renewals = Paginator(
        Renewal.objects.for_workspace(request.workspace)
        .filter(retainer__client=client)
        .select_related("retainer", "next_retainer")
        .order_by("-term_ends_on", "-pk"),
        SECTION_ROWS,
    ).get_page(page)
    return {"client": client, "renewals": renewals}
