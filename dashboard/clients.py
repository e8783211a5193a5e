"""The client page: where the relationship stands, then its tabs (Work, Billing, Communication,
Renewals, Timeline).

Composition, not business: the summary shows each app's own figures (the dashboard row's
retainer figures, billing's outstanding and overdue money, billing.preview's next invoice,
communication's open tasks and last message, delivery's last session), and each tab shows the
sections the apps build (clients' contacts card, delivery's retainers and bookings, billing's
invoices and payments, communication's notes, messages and tasks, renewals', the merged
timeline). Each tab is a URL of its own: a link loads the whole page with that tab, and htmx swaps
only the tabs (`#client-tabs`) and pushes the URL. Each part makes a fixed number of queries, so
every tab does too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from billing import selectors as billing
from billing.models import Invoice
from billing.preview import next_invoices
from clients.models import Client
from clients.selectors import contacts_section
from clients.timeline import Cursor
from communication import selectors as communication
from dashboard import queries, timeline
from dashboard.views import Links, Row, make_row
from delivery import agenda
from delivery import selectors as delivery
from renewals import selectors as renewals
from retainers.http import WorkspaceRequest, workspace_view

if TYPE_CHECKING:
    from collections.abc import Mapping

    from communication.models import Message
    from delivery.models import WorkItem

# (tab, label, URL name), in the order the page shows them; the first is the bare URL's.
TABS = (
    ("work", "Work", "dashboard:client_work"),
    ("billing", "Billing", "dashboard:client_billing"),
    ("communication", "Communication", "dashboard:client_communication"),
    ("renewals", "Renewals", "dashboard:client_renewals"),
    ("timeline", "Timeline", "dashboard:client_timeline"),
)
DEFAULT_TAB = TABS[0][0]
TABS_TARGET = "client-tabs"  # the element htmx swaps when a tab or a page of a tab's list is asked for


@dataclass(frozen=True)
class Tab:
    key: str
    label: str
    url: str
    current: bool


@dataclass(frozen=True)
class Summary:
    """Where the relationship stands, each figure as its owner computes it."""

    rows: list[Row]  # each agreement in force, as the dashboard's table shows it
    next_invoice: Row | None  # the row whose invoice is issued first
    money: list[Mapping[str, object]]  # billing.selectors.outstanding_totals: outstanding and overdue per currency
    tasks: communication.OpenTasks
    last_message: Message | None
    last_session: WorkItem | None


def client_summary(request: WorkspaceRequest, client: Client) -> Summary:
    """The summary header: a fixed number of queries (the retainers, billing.preview's seven or
    eight when one is active, the money, the tasks, the last message and session)."""
    workspace = request.workspace
    today = workspace.today()
    retainers = list(queries.retainer_rows(workspace, today=today).filter(client=client).order_by(*queries.TIE_BREAK))
    previews = next_invoices(retainers, today=today)
    locale, links = workspace.locale or "en_US", Links(request)
    rows = [make_row(r, today=today, locale=locale, links=links, next_invoice=previews[r.pk]) for r in retainers]
    coming = [(preview.issue_on, preview.retainer_id) for preview in previews.values() if preview is not None]
    first = min(coming, default=None)
    return Summary(
        rows=rows,
        next_invoice=next((row for row in rows if first and row.retainer.pk == first[1]), None),
        money=billing.outstanding_totals(Invoice.objects.for_workspace(workspace).filter(client=client), today=today),
        tasks=communication.open_tasks(workspace, client),
        last_message=communication.last_message(workspace, client),
        last_session=delivery.last_session(workspace, client),
    )


def _client(request: WorkspaceRequest, client_id: int) -> Client:
    return get_object_or_404(Client.objects.for_workspace(request.workspace), pk=client_id)


def _tab_context(request: WorkspaceRequest, client: Client, tab: str) -> dict[str, object]:
    """What the tab's sections show: only that tab's, so a tab costs its own queries."""
    page = request.GET.get("page")
    if tab == "work":
        return {
            "retainers_section": delivery.client_section(request, client, page=page),
            "bookings_section": agenda.client_section(request, client),
        }
    if tab == "billing":
        return {
            "billing_section": billing.client_section(
                request, client, page=page, payments_page=request.GET.get("payments")
            )
        }
    if tab == "communication":
        return {
            **contacts_section(request, client),
            "communication_section": communication.client_section(request, client),
        }
    if tab == "renewals":
        return {"renewals_section": renewals.client_section(request, client, page=page)}
    choices = timeline.kind_choices()
    known = {kind for kind, _ in choices}
    kinds = [kind for kind in request.GET.getlist("kind") if kind in known]
    result = timeline.page(request, client, kinds=kinds or None, before=Cursor.decode(request.GET.get("before")))
    return {
        "choices": choices,
        "kinds": kinds,
        "events": result.events,
        "next_cursor": result.next_cursor.encode() if result.next_cursor else "",
        "paged": bool(request.GET.get("before")),
    }


def _page(request: WorkspaceRequest, client_id: int, tab: str) -> HttpResponse:
    client = _client(request, client_id)
    slug = request.workspace.slug
    tabs = [Tab(key, label, reverse(name, args=[slug, client.pk]), key == tab) for key, label, name in TABS]
    context: dict[str, object] = {
        "client": client,
        "tab": tab,
        "tabs": tabs,
        "tab_label": next(t.label for t in tabs if t.current),
        **_tab_context(request, client, tab),
    }
    template = "dashboard/client_detail.html"
    htmx = request.htmx
    if htmx and not htmx.boosted and not htmx.history_restore_request:
        if htmx.target == TABS_TARGET:  # with a <title> htmx puts on the document
            return render(request, f"{template}#client-tabs", {**context, "tabs_only": True})
        if tab == "timeline":  # "Load more" and the filter swap the timeline's events only
            return render(request, "dashboard/_client_timeline.html#timeline-page", context)
    context["summary"] = client_summary(request, client)
    return render(request, template, context)


@require_GET
@workspace_view
def client_detail(request: WorkspaceRequest, client_id: int) -> HttpResponse:
    """The summary and the first tab (Work)."""
    return _page(request, client_id, DEFAULT_TAB)


@require_GET
@workspace_view
def client_work(request: WorkspaceRequest, client_id: int) -> HttpResponse:
    """Retainers, record work, deliveries (`?page=`) and bookings."""
    return _page(request, client_id, "work")


@require_GET
@workspace_view
def client_billing(request: WorkspaceRequest, client_id: int) -> HttpResponse:
    """Billing details, what is owed, invoices (`?page=`) and payments (`?payments=`)."""
    return _page(request, client_id, "billing")


@require_GET
@workspace_view
def client_communication(request: WorkspaceRequest, client_id: int) -> HttpResponse:
    """Contacts, messages, tasks, notes and the check-in cadence."""
    return _page(request, client_id, "communication")


@require_GET
@workspace_view
def client_renewals(request: WorkspaceRequest, client_id: int) -> HttpResponse:
    """The client's renewals (`?page=`)."""
    return _page(request, client_id, "renewals")


@require_GET
@workspace_view
def client_timeline(request: WorkspaceRequest, client_id: int) -> HttpResponse:
    """Everything that happened with the client, newest first, filtered by kind; "Load more"
    (`?before=`) fetches the next page, with htmx only its events."""
    return _page(request, client_id, "timeline")
