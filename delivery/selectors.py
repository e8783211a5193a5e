"""Delivery's read-models for pages other apps compose: the client page's "Retainers" section."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, TypedDict, cast

from django.core.paginator import Page, Paginator
from django.db.models import Case, IntegerField, OuterRef, Subquery, Value, When

from clients.models import Client, Retainer
from delivery.forms import QuickAddForm
from delivery.models import Period, WorkItem
from retainers.http import WorkspaceRequest
from retainers.models import Workspace

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

RECENT_DELIVERIES = 10  # a page of the client page's deliveries (`?page=` on its Work tab)


class RetainerRow(TypedDict):
    """What the section adds to each retainer: the annotations, then the figures set below."""

    period_end_on: date | None
    ended_last: int
    days_left: int | None
    utilisation_pct: int | None
    unit_label: str


def client_section(
    request: WorkspaceRequest,
    client: Client,
    *,
    form: QuickAddForm | None = None,
    saved: str | None = None,
    next_url: str | None = None,
    page: str | None = None,
) -> dict[str, object]:
    """The client page's "Retainers" section, with page `page` of the client's deliveries: a fixed
    number of queries however much data there is."""
    workspace = request.workspace
    open_period = Period.objects.for_workspace(workspace).filter(retainer=OuterRef("pk"), status=Period.Status.OPEN)
    rows = list(
        Retainer.objects.for_workspace(workspace)
        .filter(client=client)
        .annotate(
            period_end_on=Subquery(open_period.values("end_on")[:1]),
            ended_last=Case(
                When(status=Retainer.Status.ENDED, then=Value(1)), default=Value(0), output_field=IntegerField()
            ),
        )
        .order_by("ended_last", "-starts_on", "-pk")
    )
    retainers = cast("list[WithAnnotations[Retainer, RetainerRow]]", rows)  # with the figures set below
    today = workspace.today()
    for retainer in retainers:
        retainer.days_left = max((retainer.period_end_on - today).days, 0) if retainer.period_end_on else None
        retainer.utilisation_pct = retainer.utilisation_percent
        retainer.unit_label = retainer.get_unit_display().lower()
    recent: Page = Paginator(
        WorkItem.objects.for_workspace(workspace)
        .filter(retainer__client=client, removed_at=None)
        .select_related("retainer", "delivered_by")
        .order_by("-delivered_on", "-created_at", "-pk"),
        RECENT_DELIVERIES,
    ).get_page(page)
    # Work is logged to the term in force: an accepted renewal's next term is not offered until it starts.
    # (Retainer.objects.in_force's rule, on the rows already read: the client's terms are all here.)
    started_next = {r.previous_term_id for r in retainers if r.previous_term_id and r.starts_on <= today}
    active = [
        r
        for r in retainers
        if r.status == Retainer.Status.ACTIVE
        and r.pk not in started_next
        and not (r.previous_term_id and r.starts_on > today)
    ]
    if form is None and active:
        in_force = Retainer.objects.for_workspace(workspace).filter(client=client).in_force(on=today)
        form = QuickAddForm(retainers=in_force, today=today)
        if len(active) == 1:
            form.fields["retainer"].initial = active[0].pk
        if saved:
            form.set_focus("retainer")
    return {
        "client": client,
        "retainers": retainers,
        "recent": recent,
        "form": form,
        "saved": saved,
        "next_url": next_url or request.get_full_path(),
    }


def last_session(workspace: Workspace, client: Client) -> WorkItem | None:
    """The client's latest delivered work (not removed), with its retainer: one query."""
    return (
        WorkItem.objects.for_workspace(workspace)
        .filter(retainer__client=client, removed_at=None)
        .select_related("retainer")
        .order_by("-delivered_on", "-created_at", "-pk")
        .first()
    )
