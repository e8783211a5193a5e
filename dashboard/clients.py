"""The client page and the client's timeline: the consultant's view of one relationship.

Composition, not business: each app's read-model builds its part (clients' contacts card,
delivery's retainers and bookings, billing's payment history, communication's notes, messages and tasks,
renewals'), in page order, and each part's template is included by the page. Each part makes a
fixed number of queries, so the page does too.
"""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from billing import selectors as billing
from clients.models import Client
from clients.selectors import contacts_section
from clients.timeline import Cursor
from communication import selectors as communication
from dashboard import timeline
from delivery import agenda
from delivery import selectors as delivery
from renewals import selectors as renewals
from retainers.http import WorkspaceRequest, workspace_view


def _client(request: WorkspaceRequest, client_id: int) -> Client:
    return get_object_or_404(Client.objects.for_workspace(request.workspace), pk=client_id)


@require_GET
@workspace_view
def client_detail(request: WorkspaceRequest, client_id: int) -> HttpResponse:
    client = _client(request, client_id)
    context = {
        **contacts_section(request, client),
        "retainers_section": delivery.client_section(request, client),
        "bookings_section": agenda.client_section(request, client),
        "billing_section": billing.client_section(request, client),
        "communication_section": communication.client_section(request, client),
        "renewals_section": renewals.client_section(request, client),
    }
    return render(request, "dashboard/client_detail.html", context)


@require_GET
@workspace_view
def client_timeline(request: WorkspaceRequest, client_id: int) -> HttpResponse:
    """Everything that happened with the client, newest first; "Load more" fetches the next page with htmx."""
    client = _client(request, client_id)
    choices = timeline.kind_choices()
    known = {kind for kind, _ in choices}
    kinds = [kind for kind in request.GET.getlist("kind") if kind in known]
    before = Cursor.decode(request.GET.get("before"))
    result = timeline.page(request, client, kinds=kinds or None, before=before)
    context = {
        "client": client,
        "choices": choices,
        "kinds": kinds,
        "events": result.events,
        "next_cursor": result.next_cursor.encode() if result.next_cursor else "",
        "paged": bool(request.GET.get("before")),
    }
    template = "dashboard/client_timeline.html"
    if request.htmx and not request.htmx.boosted:
        template += "#timeline-page"
    return render(request, template, context)
