"""The client portal: the workspace picker, the overview of a client's retainers, and their history.

Every query of a portal page starts from `request.workspace` and is narrowed to
`request.contact.client`. The pages read with a fixed number of queries however many
clients the workspace has, and block lazy loads (`FETCH_RAISE`) so that a template
reaching for something not fetched fails in tests rather than querying once per row.

A period's figures, its burn-down and its utilisation bar are computed as on the
consultant's retainer page (delivery.figures, delivery.charts), so both sides read the same;
the forecast is delivery's (delivery.forecast), the next invoice billing's (billing.preview).
Sign-in is in portal.login.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, TypedDict, cast

from django.core.paginator import Paginator
from django.db import models
from django.db.models import Count, OuterRef, Prefetch, Q, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.http import require_GET

from billing import paylinks
from billing.models import Invoice
from billing.preview import NextInvoice, next_invoices
from billing.selectors import payment_options
from clients.models import Retainer, RetainerTerms
from communication.models import Note
from communication.selectors import with_html
from delivery import agenda, booking, charts, ledger
from delivery.figures import PeriodFigures, period_figures
from delivery.forecast import (
    Forecast,
    Projection,
    RolledLot,
    ends_with,
    forecast,
    origin_periods,
    projection,
    rolled_lots,
)
from delivery.models import Deliverable, LedgerEntry, OverageApproval, Period, WorkItem
from portal.booking import contact_zone
from portal.http import PortalRequest, portal_contacts, portal_view
from renewals.models import Renewal
from retainers.http import AuthenticatedRequest
from retainers.money import format_money
from retainers.pagecache import PageCache

if TYPE_CHECKING:
    from collections.abc import Iterable

    from django_stubs_ext import WithAnnotations

    from communication.selectors import NoteHtml

ZERO = ledger.ZERO
Kind = LedgerEntry.Kind
RECENT_WORK = 6
LATEST_NOTES = 3
HISTORY_PERIODS_PER_PAGE = 6
PAYABLE = (Invoice.Status.OPEN, Invoice.Status.UNCOLLECTIBLE)


@require_GET
def home(request: AuthenticatedRequest) -> HttpResponse:
    """Pick a workspace: a person may be a contact of clients of several consultants."""
    if not request.user.is_authenticated:
        return redirect("portal:login")
    contacts = list(portal_contacts(request.user))
    if len(contacts) == 1:
        return redirect("portal:overview", workspace_slug=contacts[0].workspace.slug)
    return render(request, "portal/home.html", {"contacts": contacts})


# --- The overview ------------------------------------------------------------------------------


@dataclass
class RetainerCard:
    retainer: Retainer
    period: Period | None
    unit: str
    figures: PeriodFigures | None = None
    chart: charts.Burndown | None = None
    outlook: Forecast | None = None
    projection: Projection | None = None
    lots: list[RolledLot] = field(default_factory=list)
    carried_debt: Decimal = ZERO
    deliverables: list[Deliverable] = field(default_factory=list)
    delivered_count: int = 0
    planned_count: int = 0
    next_invoice: NextInvoice | None = None
    ends_on: date | None = None  # last day, when the retainer ends with this period
    next_term_on: date | None = None  # the first day of the accepted renewal's term
    used_pct: int | None = None
    period_last_on: date | None = None
    unit_one: str = ""  # “hour”, “session”
    overage_rate: str = ""
    booked: Decimal | None = None  # units reserved by sessions booked in this period (delivery.booking)
    overage_waiting_id: int | None = None  # a request to approve overage waiting for the client
    overage_waiting_offered: Decimal | None = None
    overage_approved: Decimal = ZERO  # units the client approved beyond the balance this period

    @property
    def is_units(self) -> bool:
        return self.retainer.model != RetainerTerms.Model.DELIVERABLES


def _retainer_cards(request: PortalRequest, today: date, locale: str) -> list[RetainerCard]:
    """One card per retainer of the client in force today (an accepted renewal's next term shows on
    the current one as "next term starts …", not as a second retainer): six queries for all."""
    workspace, client = request.workspace, request.contact.client
    open_periods = Period.objects.for_workspace(workspace).filter(status=Period.Status.OPEN)
    next_terms = Retainer.objects.for_workspace(workspace).live().filter(previous_term=OuterRef("pk"))
    # Overage approval (delivery.approvals): the request waiting for the client, and what it approved.
    approvals = OverageApproval.objects.for_workspace(workspace).filter(
        retainer=OuterRef("pk"), period__status=Period.Status.OPEN
    )
    waiting = approvals.filter(status=OverageApproval.Status.REQUESTED)
    approved = (
        approvals.filter(status=OverageApproval.Status.APPROVED)
        .order_by()
        .values("retainer")
        .annotate(total=Sum("quantity"))
        .values("total")
    )
    retainers = list(
        Retainer.objects.for_workspace(workspace)
        .in_force(on=today)
        .filter(client=client)
        .annotate(
            next_term_on=Subquery(next_terms.order_by("starts_on", "pk").values("starts_on")[:1]),
            overage_waiting_id=Subquery(waiting.values("pk")[:1]),
            overage_waiting_offered=Subquery(waiting.values("offered")[:1]),
            overage_approved=Coalesce(Subquery(approved), ZERO),
        )
        # One call each: django-stubs types prefetch_related's lookups with a single queryset type.
        .prefetch_related(Prefetch("periods", queryset=open_periods, to_attr="open_periods"))
        .order_by("status", "name", "pk")
        .fetch_mode(models.FETCH_RAISE)
    )
    periods = {r.pk: r.open_periods[0] for r in retainers if r.open_periods}
    rows: dict[int, list[tuple]] = defaultdict(list)
    origins: dict[int, dict[int, tuple[date, date]]] = defaultdict(dict)
    entries = LedgerEntry.objects.for_workspace(workspace).filter(period__in=[p.pk for p in periods.values()])
    for period_id, kind, quantity, origin, work_item_id, delivered_on, start, end in origin_periods(
        workspace, entries
    ).values_list(
        "period_id",
        "kind",
        "quantity",
        "origin_seq",
        "work_item_id",
        "work_item__delivered_on",
        "origin_start",
        "origin_end",
    ):
        rows[period_id].append((kind, quantity, origin, work_item_id, delivered_on))
        if start is not None:
            origins[period_id][origin] = (start, end)
    deliverables: dict[int, list[Deliverable]] = defaultdict(list)
    for deliverable in (
        Deliverable.objects.for_workspace(workspace)
        .filter(period__in=[p.pk for p in periods.values()])
        .order_by("pk")
        .fetch_mode(models.FETCH_RAISE)
    ):
        deliverables[deliverable.period_id].append(deliverable)
    previews = next_invoices(retainers, today=today)

    cards = []
    for retainer in retainers:
        unit = retainer.get_unit_display().lower()
        period = periods.get(retainer.pk)
        card = RetainerCard(
            retainer=retainer,
            period=period,
            unit=unit,
            overage_waiting_id=retainer.overage_waiting_id,
            overage_waiting_offered=retainer.overage_waiting_offered,
            overage_approved=retainer.overage_approved,
        )
        card.next_term_on = retainer.next_term_on
        cards.append(card)
        if period is None:
            continue
        period_rows = rows[period.pk]
        figures = period_figures(retainer, period, period_rows, today)
        card.figures = figures
        card.period_last_on = period.end_on - timedelta(days=1)
        card.unit_one = unit.removesuffix("s")
        card.overage_rate = format_money(period.overage_rate_minor, period.currency, locale)
        card.deliverables = deliverables[period.pk]
        card.delivered_count = sum(1 for d in card.deliverables if d.status == Deliverable.Status.DELIVERED)
        card.planned_count = len(card.deliverables) - card.delivered_count
        if ends_with(retainer, period):
            card.ends_on = period.end_on - timedelta(days=1)
        card.next_invoice = previews[retainer.pk]
        if not card.is_units:
            card.outlook = forecast(
                start_on=period.start_on,
                end_on=period.end_on,
                today=today,
                available=None,
                deliverables_done=card.delivered_count,
                deliverables_total=len(card.deliverables),
            )
            continue
        card.lots = rolled_lots(retainer, period, [row[:4] for row in period_rows], origins[period.pk])
        card.carried_debt = -sum(
            (q for kind, q, origin, wi, _ in period_rows if kind == Kind.ROLLOVER_IN and wi is None and q < 0), ZERO
        )
        card.used_pct = figures.utilisation_percent
        card.chart = charts.burndown(
            start_on=period.start_on,
            end_on=period.end_on,
            available=figures.available,
            used_by_day=figures.used_by_day,
            today=today,
            unit=unit,
            width=440,
            height=220,
        )
        if retainer.status == Retainer.Status.ACTIVE:
            card.outlook = forecast(
                start_on=period.start_on,
                end_on=period.end_on,
                today=today,
                available=figures.available,
                used=figures.used,
                unit=unit,
            )
            card.projection = projection(
                card.chart, card.outlook, remaining=figures.remaining, available=figures.available
            )
    return cards


@dataclass
class OpenInvoice:
    invoice: Invoice
    balance: str
    overdue: bool
    pay_url: str


def open_invoices(request: PortalRequest, today: date, locale: str) -> tuple[list[OpenInvoice], list[str]]:
    """The client's invoices with something left to pay, oldest due first, and the totals per currency."""
    invoices = list(
        Invoice.objects.for_workspace(request.workspace)
        .filter(client=request.contact.client, status__in=PAYABLE)
        .exclude(kind=Invoice.Kind.CREDIT_NOTE)
        .order_by("due_on", "pk")
        .fetch_mode(models.FETCH_RAISE)
    )
    rows: list[OpenInvoice] = []
    totals: defaultdict[str, int] = defaultdict(int)
    for invoice in invoices:
        if invoice.owed_minor <= 0:
            continue
        totals[invoice.currency] += invoice.owed_minor
        rows.append(
            OpenInvoice(
                invoice=invoice,
                balance=format_money(invoice.owed_minor, invoice.currency, locale),
                overdue=invoice.is_overdue(on=today),
                pay_url=paylinks.pay_url(invoice),
            )
        )
    return rows, [format_money(total, currency, locale) for currency, total in sorted(totals.items())]


def shared_notes(request: PortalRequest, *, limit: int) -> list[WithAnnotations[Note, NoteHtml]]:
    notes = list(
        Note.objects.for_workspace(request.workspace)
        .filter(client=request.contact.client, visibility=Note.Visibility.SHARED)
        .select_related("author", "session")
        .order_by("-created_at", "-pk")
        .fetch_mode(models.FETCH_RAISE)[:limit]
    )
    return with_html(notes)


class RecentWork(TypedDict):
    unit_label: str  # "hours", "sessions"


@require_GET
@portal_view
def overview(request: PortalRequest) -> HttpResponse:
    """For each live retainer: what is left, what was used, the burn-down and forecast; then recent
    work, what there is to pay, and the latest shared notes. A fixed number of queries."""
    workspace, client = request.workspace, request.contact.client
    today = workspace.today()

    def body() -> str:
        """Everything below the greeting: the client's, not the contact's, so any contact may reuse it."""
        locale = workspace.locale or "en_US"
        cards = _retainer_cards(request, today, locale)
        booked = booking.booked_in_periods(
            [card.period for card in cards if card.period and card.is_units], zone=workspace.tzinfo
        )
        for card in cards:
            card.booked = booked.get(card.retainer.pk)
        recent = cast(
            "list[WithAnnotations[WorkItem, RecentWork]]",  # with the unit label set below
            list(
                WorkItem.objects.for_workspace(workspace)
                .filter(retainer__client=client, removed_at=None)
                .select_related("retainer")
                .order_by("-delivered_on", "-created_at", "-pk")
                .fetch_mode(models.FETCH_RAISE)[:RECENT_WORK]
            ),
        )
        for item in recent:
            item.unit_label = item.retainer.get_unit_display().lower()
        to_pay, outstanding = open_invoices(request, today, locale)
        options = payment_options(workspace)
        renewals = list(
            Renewal.objects.for_workspace(workspace)
            .filter(retainer__client=client, status=Renewal.Status.PROPOSAL_SENT, term_ends_on__gt=today)
            .select_related("retainer")
            .order_by("term_ends_on", "pk")
            .fetch_mode(models.FETCH_RAISE)
        )
        context = {
            "overage_waiting": [card for card in cards if card.overage_waiting_id],
            "cards": cards,
            "next_invoices": [card for card in cards if card.next_invoice],
            "recent": recent,
            "to_pay": to_pay,
            "outstanding": outstanding,
            "pay_label": options.pay_label,
            "notes": shared_notes(request, limit=LATEST_NOTES),
            "renewals": renewals,
            "today": today,
        }
        return render_to_string("portal/overview.html#body", context, request)

    def sessions() -> tuple[list[agenda.Line], bool]:
        """The client's sessions from today on, and whether it can book any: cached like the body."""
        return agenda.upcoming_for_client(workspace, client, today=today), booking.can_book(client)

    parts = PageCache(workspace, version=request.data_version)
    lines, can_book = parts.get("portal-sessions", [client.pk, today], sessions)
    zone = contact_zone(request)
    context = {
        "contact": request.contact,
        "client": client,
        # Other workspaces' contacts are not this workspace's data: not in the cached part.
        "has_other_workspaces": len(request.portal_contacts) > 1,
        "body_html": parts.get("portal-overview", [client.pk, today], body),
        # Worded for this contact (their zone) and this moment (what has ended): never cached as HTML.
        "sessions": agenda.still_ahead(agenda.show(lines, zone=zone, now=timezone.now())),
        "can_book": can_book,
        "zone_label": zone.key,
    }
    return render(request, "portal/overview.html", context)


# --- Delivery history ---------------------------------------------------------------------------


class HistoryPeriod(TypedDict):
    """What the history page annotates on each period, then sets for its template."""

    adjusted: Decimal
    usage: Decimal
    deliverables_total: int
    deliverables_done: int
    unit: str
    is_open: bool
    is_units: bool
    available: Decimal
    used_units: Decimal
    items: list[WorkItem]


@require_GET
@portal_view
def history(request: PortalRequest) -> HttpResponse:
    """The client's work log, period by period, newest first, with the notes shared on each session.

    Paginated by period, so each period's statement is one link and a period stays on one page.
    Removed and replaced entries are hidden (the newest version of an edited entry is shown).
    """
    workspace, client = request.workspace, request.contact.client
    usage = Q(entries__work_item__isnull=False)
    adjustment = Q(entries__kind=Kind.ADJUSTMENT) | Q(entries__kind=Kind.REVERSAL, entries__work_item__isnull=True)
    deliverables = (
        Deliverable.objects.for_workspace(workspace)
        .filter(period=OuterRef("pk"))
        .order_by()
        .values("period")
        .annotate(n=Count("pk"))
        .values("n")
    )
    periods = (
        Period.objects.for_workspace(workspace)
        .filter(retainer__client=client)
        .select_related("retainer")
        .annotate(
            adjusted=Sum("entries__quantity", filter=adjustment, default=ZERO),
            usage=Sum("entries__quantity", filter=usage, default=ZERO),
            # Subqueries, not joins: a second join would multiply the sums above.
            deliverables_total=Coalesce(Subquery(deliverables), 0),
            deliverables_done=Coalesce(Subquery(deliverables.filter(status=Deliverable.Status.DELIVERED)), 0),
        )
        .order_by("-start_on", "retainer__name", "-pk")
        .fetch_mode(models.FETCH_RAISE)
    )
    page = Paginator(periods, HISTORY_PERIODS_PER_PAGE).get_page(request.GET.get("page"))
    notes = (
        Note.objects.for_workspace(workspace)
        .filter(client=client, visibility=Note.Visibility.SHARED)
        .select_related("author")
        .order_by("created_at", "pk")
    )
    items = (
        WorkItem.objects.for_workspace(workspace)
        .filter(period__in=[p.pk for p in page.object_list], removed_at=None)
        .select_related("delivered_by", "deliverable")
        .prefetch_related(Prefetch("notes", queryset=notes, to_attr="shared_notes"))
        .order_by("-delivered_on", "-created_at", "-pk")
        .fetch_mode(models.FETCH_RAISE)
    )
    by_period: dict[int, list[WorkItem]] = defaultdict(list)
    for item in items:
        with_html(item.shared_notes)
        by_period[item.period_id].append(item)
    for period in cast("Iterable[WithAnnotations[Period, HistoryPeriod]]", page.object_list):
        retainer = period.retainer
        period.unit = retainer.get_unit_display().lower()
        period.is_open = period.status == Period.Status.OPEN
        period.is_units = retainer.model != RetainerTerms.Model.DELIVERABLES
        period.available = period.allotted + period.rolled_in + period.adjusted
        period.used_units = -period.usage
        period.items = by_period[period.pk]
    return render(request, "portal/history.html", {"page": page, "today": workspace.today()})
