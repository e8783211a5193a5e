"""The client portal: sign-in by emailed code, the overview of a client's retainers, and their history.

Every query of a portal page starts from `request.workspace` and is narrowed to
`request.contact.client`. The pages read with a fixed number of queries however many
clients the workspace has, and block lazy loads (`FETCH_RAISE`) so that a template
reaching for something not fetched fails in tests rather than querying once per row.

A period's figures, its burn-down and its utilization bar are computed as on the
consultant's retainer page (delivery.views, delivery.charts), so both sides read the same.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from allauth.account.views import ConfirmLoginCodeView, RequestLoginCodeView
from django.contrib.auth import logout
from django.core.paginator import Paginator
from django.db import models
from django.db.models import Count, OuterRef, Prefetch, Q, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from billing import payments
from billing.models import BillingProfile, Invoice
from billing.services import tax_on
from clients.models import Amendment, Retainer, RetainerTerms
from communication.models import Note
from communication.selectors import with_html
from delivery import charts, ledger
from delivery.figures import PeriodFigures, period_figures
from delivery.models import Deliverable, LedgerEntry, Period, WorkItem
from delivery.periods import period_bounds
from portal.http import PortalRequest, portal_contacts, portal_view
from renewals.models import Renewal
from retainers.forms import format_units
from retainers.http import AuthenticatedRequest
from retainers.money import format_money, multiply
from retainers.pagecache import PageCache

ZERO = ledger.ZERO
Kind = LedgerEntry.Kind
RECENT_WORK = 6
LATEST_NOTES = 3
HISTORY_PERIODS_PER_PAGE = 6
PAYABLE = (Invoice.Status.OPEN, Invoice.Status.UNCOLLECTIBLE)


class PortalLoginView(RequestLoginCodeView):
    """Step one: the contact enters their email and gets a one-time code (allauth login by code)."""

    template_name = "portal/login.html"

    def get_initial(self) -> dict[str, str]:
        return {"email": self.request.GET.get("email", "")}

    def get_success_url(self) -> str:
        return reverse("portal:login_code") + "?next=" + reverse("portal:home")

    def dispatch(self, request: HttpRequest, *args: object, **kwargs: object):
        if request.user.is_authenticated:
            return redirect("portal:home")
        return super().dispatch(request, *args, **kwargs)


class PortalLoginCodeView(ConfirmLoginCodeView):
    """Step two: the code from the email signs them in."""

    template_name = "portal/login_code.html"


@require_POST
def portal_logout(request: HttpRequest) -> HttpResponse:
    logout(request)
    return redirect("portal:login")


@require_GET
def home(request: AuthenticatedRequest) -> HttpResponse:
    """Pick a workspace: a person may be a contact of clients of several consultants."""
    if not request.user.is_authenticated:
        return redirect("portal:login")
    contacts = list(portal_contacts(request.user))
    if len(contacts) == 1:
        return redirect("portal:overview", workspace_slug=contacts[0].workspace.slug)
    return render(request, "portal/home.html", {"contacts": contacts})


# --- Words for people ----------------------------------------------------------------------


def units(quantity: Decimal, unit: str) -> str:
    """Hours with two decimals (“3.50”), sessions as whole numbers (“3”)."""
    return f"{quantity:.2f}" if unit == RetainerTerms.Unit.HOURS else format_units(quantity)


def ordinal(day: int) -> str:
    """1st, 2nd, 3rd, 4th … 11th, 12th, 13th … 21st, 22nd, 23rd … 31st."""
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def day_name(day: date) -> str:
    return f"{day.day} {day:%B}"


def period_name(start_on: date, end_on: date, cadence: str, *, this_year: int) -> str:
    """“March” (or “March 2025”) for a calendar month, else “the period from 15 Jan”."""
    last = end_on - timedelta(days=1)
    if cadence == RetainerTerms.Cadence.MONTHLY and start_on.day == 1 and last.month == start_on.month:
        return f"{start_on:%B}" + (f" {start_on.year}" if start_on.year != this_year else "")
    return f"the period from {start_on.day} {start_on:%b}" + (f" {start_on.year}" if start_on.year != this_year else "")


# --- The forecast ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Forecast:
    """Where the period is heading at the pace so far.

    `kind` is one of: not_started, ended, over, used_up, no_units, no_usage, runout (the
    units run out before the period ends, on `runout_on`), share (at the period end
    `share` per cent of them will have been used), deliverables.
    """

    kind: str
    message: str
    runout_on: date | None = None
    share: int | None = None
    elapsed_days: int = 0
    days: int = 0
    days_to_zero: Decimal | None = None  # from the period start, at the pace so far (fractional)


def forecast(
    *,
    start_on: date,
    end_on: date,
    today: date,
    available: Decimal | None,
    used: Decimal = ZERO,
    unit: str = "hours",
    deliverables_done: int = 0,
    deliverables_total: int = 0,
) -> Forecast:
    """The forecast of the period [start_on, end_on) as of `today` (the workspace's date).

    The pace is what was used per day over the days so far, today included (the burn-down
    counts today's work in too). `available=None` is a deliverables retainer: its forecast
    is what is still to come. Pure: no database, no clock.
    """
    days = max((end_on - start_on).days, 1)
    elapsed = min(max((today - start_on).days + 1, 0), days)
    your = f"your {unit}"
    base = {"elapsed_days": elapsed, "days": days}
    days_left = max((end_on - today).days, 0)
    left = f"{days_left} day{'s' if days_left != 1 else ''} left"

    if today < start_on:
        return Forecast("not_started", f"The period starts on {day_name(start_on)}.", **base)
    if available is None:
        if deliverables_total == 0:
            return Forecast("deliverables", "No deliverables are planned this period.", **base)
        if deliverables_done >= deliverables_total:
            return Forecast("deliverables", f"All {deliverables_total} deliverables of this period are done.", **base)
        to_come = deliverables_total - deliverables_done
        message = f"{deliverables_done} of {deliverables_total} deliverables done; {to_come} to come" + (
            f", with {left}." if today < end_on else "."
        )
        return Forecast("deliverables", message, **base)

    remaining = available - used
    if remaining < 0:
        return Forecast("over", f"You are {units(-remaining, unit)} {unit} over this period's balance.", **base)
    if remaining == 0:
        if used <= 0:
            return Forecast("no_units", f"There are no {unit} to use this period.", **base)
        return Forecast("used_up", f"You have used all {units(available, unit)} {unit} of this period.", **base)
    if today >= end_on:
        return Forecast("ended", f"This period has ended with {units(remaining, unit)} {unit} unused.", **base)
    if used <= 0:
        return Forecast("no_usage", f"No {unit} used yet this period: all {units(available, unit)} are left.", **base)

    # At `used / elapsed` a day, the balance reaches zero `available * elapsed / used` days in.
    days_to_zero = available * elapsed / used
    if days_to_zero < days:
        runout_on = start_on + timedelta(days=math.ceil(days_to_zero) - 1)
        last = end_on - timedelta(days=1)
        when = f"the {ordinal(runout_on.day)}" if start_on.month == last.month else day_name(runout_on)
        return Forecast(
            "runout",
            f"At this pace {your} run out on {when}.",
            runout_on=runout_on,
            days_to_zero=days_to_zero,
            **base,
        )
    share = int((used * days * 100 / elapsed / available).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return Forecast(
        "share",
        f"At this pace you will use {share}% of {your} this period.",
        share=share,
        days_to_zero=days_to_zero,
        **base,
    )


@dataclass(frozen=True)
class Projection:
    """The dotted line from today's point on the burn-down to where the pace leads."""

    x1: str
    y1: str
    x2: str
    y2: str
    marker_x: str | None  # the run-out day, when it falls inside the period
    # "Run out" is written right of the marker in the chart's left half, clear of the y axis labels.
    label_after_marker: bool = False


def projection(
    chart: charts.Burndown, outlook: Forecast, *, remaining: Decimal, available: Decimal
) -> Projection | None:
    """Extend the chart's actual line at the pace so far, in the chart's own coordinates.

    Uses only what `charts.burndown` exposes: the plot's left/right edges, the zero line and
    today's point (remaining `remaining`), so the y scale is taken from those two points.
    """
    if outlook.kind not in {"runout", "share"} or remaining <= 0 or outlook.days_to_zero is None:
        return None
    left, right = float(chart.left), float(chart.right)
    zero_y, last_x, last_y = float(chart.zero_y), float(chart.last_x), float(chart.last_y)

    def x(day: float) -> float:
        return left + (right - left) * day / outlook.days

    if outlook.kind == "runout":
        end_x = x(float(outlook.days_to_zero))
        return Projection(
            chart.last_x,
            chart.last_y,
            f"{end_x:.1f}",
            chart.zero_y,
            f"{end_x:.1f}",
            label_after_marker=end_x < (left + right) / 2,
        )
    # At the period end: available less the pace times the whole period.
    end_remaining = available - available * outlook.days / outlook.days_to_zero
    end_y = zero_y + (last_y - zero_y) * float(end_remaining / remaining)
    return Projection(f"{last_x:.1f}", f"{last_y:.1f}", f"{right:.1f}", f"{end_y:.1f}", None)


# --- Rolled-in units ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RolledLot:
    origin_seq: int
    origin: str  # “March”
    rolled_in: Decimal
    left: Decimal
    expires_on: date | None  # last day the units can be used; None: they keep rolling over
    unit: str = RetainerTerms.Unit.HOURS

    @property
    def text(self) -> str:
        """“3.50 hours roll in from March and expire on 30 June.”"""
        amount = f"{units(self.rolled_in, self.unit)} {self.unit}"
        if self.left <= 0:
            return f"{amount} rolled in from {self.origin}, all used."
        expiry = f"expire on {day_name(self.expires_on)}" if self.expires_on else "keep rolling over"
        if self.left == self.rolled_in:
            return f"{amount} roll in from {self.origin} and {expiry}."
        return f"{amount} roll in from {self.origin}; {units(self.left, self.unit)} are left and {expiry}."


def ends_with(retainer: Retainer, period: Period) -> bool:
    """Whether the retainer ends when this period closes (cancelled, or its term ends without renewal)."""
    return retainer.cancel_at_period_end or (period.end_on >= retainer.term_ends_on and not retainer.auto_renew)


def period_end(retainer: Retainer, period: Period, seq: int) -> date:
    """The end (exclusive) of the retainer's period `seq`, this one or one to come."""
    if seq <= period.seq:
        return period.end_on
    # Later periods are counted from the anchor (which a pause moves to this period's end).
    return period_bounds(retainer.anchor_on, retainer.cadence, period.anchor_index + seq - period.seq)[1]


def origin_name(retainer: Retainer, period: Period, origin: int, origins: dict[int, tuple[date, date]]) -> str:
    """The period units came from, for people: “March”."""
    if origin not in origins:
        return f"period {origin}"
    start_on, end_on = origins[origin]
    return period_name(start_on, end_on, retainer.cadence, this_year=period.start_on.year)


def origin_periods(workspace, ledger_entries):
    """Annotate ledger entries with the bounds of their origin period (the period units came from)."""
    origin = Period.objects.for_workspace(workspace).filter(retainer=OuterRef("retainer"), seq=OuterRef("origin_seq"))
    return ledger_entries.annotate(
        origin_start=Subquery(origin.values("start_on")[:1]), origin_end=Subquery(origin.values("end_on")[:1])
    )


def rolled_lots(
    retainer: Retainer,
    period: Period,
    rows: list[tuple[str, Decimal, int, int | None]],
    origins: dict[int, tuple[date, date]],
) -> list[RolledLot]:
    """The rolled-in lots of the open period: how much each brought, what is left, when it expires.

    What is left is `ledger.consume` of the period's usage, oldest lot first, as the close
    will take it; a lot expires at the close of the period `rollover_expiry_periods` after
    its origin (or at this period's close when the retainer ends with it).
    """
    lot_rows = [(kind, quantity, origin, work_item_id is not None) for kind, quantity, origin, work_item_id in rows]
    lots, used = ledger.lots_of(lot_rows, period.seq)
    left, _ = ledger.consume(lots, used)
    rolled: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for kind, quantity, origin, work_item_id in rows:
        if kind == Kind.ROLLOVER_IN and work_item_id is None and origin < period.seq:
            rolled[origin] += quantity
    ends_here = ends_with(retainer, period)
    expiry_periods = retainer.rollover_expiry_periods
    result = []
    for origin in sorted(rolled):
        if rolled[origin] <= 0:
            continue
        if ends_here or retainer.model != RetainerTerms.Model.ROLLOVER:
            expires_on = period.end_on - timedelta(days=1)
        elif expiry_periods is not None:
            expires_on = period_end(retainer, period, max(origin + expiry_periods, period.seq)) - timedelta(days=1)
        else:
            expires_on = None
        name = origin_name(retainer, period, origin, origins)
        result.append(RolledLot(origin, name, rolled[origin], left.get(origin, ZERO), expires_on, retainer.unit))
    return result


# --- The overview ------------------------------------------------------------------------------


@dataclass
class NextInvoice:
    on: date
    amount: str
    includes_overage: bool


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
    used_pct: int | None = None
    # The figures as people read them (hours with two decimals, sessions whole).
    period_last_on: date | None = None
    remaining: str = ""
    used: str = ""
    available: str = ""
    expiring: str = ""
    unit_one: str = ""  # “hour”, “session”
    overage_rate: str = ""
    carried_debt_text: str = ""

    @property
    def is_units(self) -> bool:
        return self.retainer.model != RetainerTerms.Model.DELIVERABLES


def next_invoice(
    retainer: Retainer,
    period: Period,
    figures: PeriodFigures,
    *,
    pending: Amendment | None,
    delivered_extras: int,
    tax_rate_bp: int,
    locale: str,
) -> NextInvoice | None:
    """An estimate of the retainer's next scheduled invoice, as the billing run will issue it.

    In advance: at the period end, the next period's fee (a pending amendment's, if it takes
    effect by then) plus this period's overage and extras so far. In arrears: at the period
    end, this period's fee, overage and extras. None when no further fee is due.
    """
    if retainer.status != Retainer.Status.ACTIVE:
        return None
    ends_here = ends_with(retainer, period)
    if period.billing_timing == RetainerTerms.Timing.ADVANCE:
        if ends_here:
            return None
        terms = pending if pending is not None and pending.effective_on <= period.end_on else retainer
        fee, currency = terms.price_minor, terms.currency
    else:
        fee, currency = period.price_minor, period.currency
    extra = 0
    if figures.overage > 0 and retainer.overage_policy == RetainerTerms.Overage.BILL:
        extra += multiply(period.overage_rate_minor, figures.overage)
    extra += delivered_extras * period.extra_deliverable_price_minor
    subtotal = fee + extra
    return NextInvoice(
        on=period.end_on,
        amount=format_money(subtotal + tax_on(subtotal, tax_rate_bp), currency, locale),
        includes_overage=extra > 0,
    )


def _retainer_cards(request: PortalRequest, today: date, locale: str) -> list[RetainerCard]:
    """One card per live retainer of the client: six queries for all of them."""
    workspace, client = request.workspace, request.contact.client
    open_periods = Period.objects.for_workspace(workspace).filter(status=Period.Status.OPEN)
    pending = Amendment.objects.for_workspace(workspace).filter(applied_at=None)
    retainers = list(
        Retainer.objects.for_workspace(workspace)
        .live()
        .filter(client=client)
        .prefetch_related(
            Prefetch("periods", queryset=open_periods, to_attr="open_periods"),
            Prefetch("amendments", queryset=pending, to_attr="pending_amendments"),
        )
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
    profile = BillingProfile.objects.filter(workspace=workspace).first()
    tax_rate_bp = profile.tax_rate_bp if profile else 0

    cards = []
    for retainer in retainers:
        unit = retainer.get_unit_display().lower()
        period = periods.get(retainer.pk)
        card = RetainerCard(retainer=retainer, period=period, unit=unit)
        cards.append(card)
        if period is None:
            continue
        period_rows = rows[period.pk]
        figures = period_figures(retainer, period, period_rows, today)
        card.figures = figures
        card.period_last_on = period.end_on - timedelta(days=1)
        card.remaining, card.used, card.available, card.expiring = (
            units(figures.remaining, retainer.unit),
            units(figures.used, retainer.unit),
            units(figures.available, retainer.unit),
            units(figures.expiring, retainer.unit),
        )
        card.unit_one = unit.removesuffix("s")
        card.overage_rate = format_money(period.overage_rate_minor, period.currency, locale)
        card.deliverables = deliverables[period.pk]
        card.delivered_count = sum(1 for d in card.deliverables if d.status == Deliverable.Status.DELIVERED)
        card.planned_count = len(card.deliverables) - card.delivered_count
        if ends_with(retainer, period):
            card.ends_on = period.end_on - timedelta(days=1)
        card.next_invoice = next_invoice(
            retainer,
            period,
            figures,
            pending=retainer.pending_amendments[0] if retainer.pending_amendments else None,
            delivered_extras=sum(1 for d in card.deliverables if d.extra and d.status == Deliverable.Status.DELIVERED),
            tax_rate_bp=tax_rate_bp,
            locale=locale,
        )
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
        if card.carried_debt:
            card.carried_debt_text = (
                f"{units(card.carried_debt, retainer.unit)} {unit} used beyond last period's balance "
                "were carried into this one."
            )
        if figures.utilization is not None:
            card.used_pct = int(figures.utilization * 100 + Decimal("0.5"))
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
    rows, totals = [], defaultdict(int)
    for invoice in invoices:
        if invoice.balance_minor <= 0:
            continue
        totals[invoice.currency] += invoice.balance_minor
        rows.append(
            OpenInvoice(
                invoice=invoice,
                balance=format_money(invoice.balance_minor, invoice.currency, locale),
                overdue=invoice.is_overdue(on=today),
                pay_url=payments.pay_url(invoice),
            )
        )
    return rows, [format_money(total, currency, locale) for currency, total in sorted(totals.items())]


def shared_notes(request: PortalRequest, *, limit: int) -> list[Note]:
    notes = list(
        Note.objects.for_workspace(request.workspace)
        .filter(client=request.contact.client, visibility=Note.Visibility.SHARED)
        .select_related("author", "session")
        .order_by("-created_at", "-pk")
        .fetch_mode(models.FETCH_RAISE)[:limit]
    )
    return with_html(notes)


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
        recent = list(
            WorkItem.objects.for_workspace(workspace)
            .filter(retainer__client=client, removed_at=None)
            .select_related("retainer")
            .order_by("-delivered_on", "-created_at", "-pk")
            .fetch_mode(models.FETCH_RAISE)[:RECENT_WORK]
        )
        for item in recent:
            item.amount = units(item.quantity, item.retainer.unit)
            item.unit_label = item.retainer.get_unit_display().lower()
        to_pay, outstanding = open_invoices(request, today, locale)
        renewals = list(
            Renewal.objects.for_workspace(workspace)
            .filter(retainer__client=client, status=Renewal.Status.PROPOSAL_SENT, term_ends_on__gt=today)
            .select_related("retainer")
            .order_by("term_ends_on", "pk")
            .fetch_mode(models.FETCH_RAISE)
        )
        context = {
            "cards": cards,
            "next_invoices": [card for card in cards if card.next_invoice],
            "recent": recent,
            "to_pay": to_pay,
            "outstanding": outstanding,
            "notes": shared_notes(request, limit=LATEST_NOTES),
            "renewals": renewals,
            "today": today,
        }
        return render_to_string("portal/overview.html#body", context, request)

    context = {
        "contact": request.contact,
        "client": client,
        # Other workspaces' contacts are not this workspace's data: not in the cached part.
        "has_other_workspaces": len(request.portal_contacts) > 1,
        "body_html": PageCache(workspace).get("portal-overview", [client.pk, today], body),
    }
    return render(request, "portal/overview.html", context)


# --- Delivery history ---------------------------------------------------------------------------


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
    for period in page.object_list:
        retainer = period.retainer
        period.unit = retainer.get_unit_display().lower()
        period.last_on = period.end_on - timedelta(days=1)
        period.is_open = period.status == Period.Status.OPEN
        period.is_units = retainer.model != RetainerTerms.Model.DELIVERABLES
        period.available = units(period.allotted + period.rolled_in + period.adjusted, retainer.unit)
        period.used_units = units(-period.usage, retainer.unit)
        period.items = by_period[period.pk]
        for item in period.items:
            item.amount = units(item.quantity, retainer.unit)
    return render(request, "portal/history.html", {"page": page, "today": workspace.today()})
