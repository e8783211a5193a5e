"""The dashboard's reads. Every figure is computed by PostgreSQL (annotations, correlated
subqueries, GROUP BY), so the page takes the same fixed number of queries for 10 clients or
1,000 and no Python loop walks all the retainers.

Dates are the workspace's: "today", the end of today and the month edges are computed in its
time zone, and timestamps are grouped by month AT TIME ZONE the workspace's zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, TypedDict

from django.db.models import (
    FETCH_RAISE,
    BigIntegerField,
    Case,
    Count,
    DateField,
    DecimalField,
    Exists,
    ExpressionWrapper,
    F,
    FilteredRelation,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
    Window,
)
from django.db.models.functions import Coalesce, Greatest, Lower, TruncDate, TruncMonth

from billing.models import Invoice, InvoiceState, Payment
from billing.preview import issue_on_sql
from clients.models import Client, Retainer, RetainerTerms, health_expression
from communication.models import Message, Task
from delivery.models import Deliverable, Period, WorkItem
from renewals.models import Renewal
from retainers.models import Workspace

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

QUIET_DAYS = 30  # a client with no session or message this long has gone quiet (unless it has its own cadence)
RENEWAL_WINDOW_DAYS = 30
FAILED_PAYMENT_DAYS = 30
CHART_MONTHS = 12

Status = Retainer.Status
Model = RetainerTerms.Model


def start_of_day(day: date, workspace: Workspace) -> datetime:
    """The instant a local day begins in the workspace's zone (DST-safe: midnight always exists there or
    is resolved by zoneinfo's fold=0)."""
    return datetime.combine(day, time(0), tzinfo=workspace.tzinfo)


def month_start(day: date, months_back: int = 0) -> date:
    index = day.year * 12 + day.month - 1 - months_back
    return date(index // 12, index % 12 + 1, 1)


# --- The clients table -------------------------------------------------------------------------


class RetainerRow(TypedDict):
    """The figures retainer_rows annotates on each retainer."""

    open_period: Period
    period_end_on: date | None
    renewal_id: int | None
    renewal_status: str | None
    next_term_starts_on: date | None
    health: str
    used_share: Decimal | None
    remaining: Decimal | None
    days_left_until: date | None
    open_period_id: int | None
    open_period_start_on: date | None
    open_period_end_on: date | None
    open_period_timing: str | None
    open_period_held_on: date | None
    deliverables_done: int
    deliverables_total: int


def retainer_rows(
    workspace: Workspace, *, today: date | None = None
) -> QuerySet[WithAnnotations[Retainer, RetainerRow]]:
    """One row per agreement in force (`Retainer.objects.in_force`: an accepted renewal's next term
    is the row's `next_term_starts_on`, not a row of its own) with its client and every figure the table
    shows, sorts or filters by. The open period is joined (at most one per retainer:
    `period_one_open`), so the several figures built on its end date read one column instead of
    each running a subquery; correlated subqueries each hit a unique index: this term's renewal
    (`renewal_one_per_term`)."""
    this_term = Renewal.objects.for_workspace(workspace).filter(
        retainer=OuterRef("pk"), term_ends_on=OuterRef("term_ends_on")
    )
    deliverables = Deliverable.objects.for_workspace(workspace).filter(
        retainer=OuterRef("pk"), period__status=Period.Status.OPEN
    )
    units = ~Q(model=Model.DELIVERABLES)
    paused = Q(status=Status.PAUSED)

    def count(queryset: QuerySet) -> Coalesce:
        grouped = queryset.order_by().values("retainer").annotate(n=Count("pk")).values("n")[:1]
        return Coalesce(Subquery(grouped), 0)

    next_terms = Retainer.objects.for_workspace(workspace).filter(previous_term=OuterRef("pk")).live()
    return (
        Retainer.objects.for_workspace(workspace)
        .in_force(on=today or workspace.today())
        .select_related("client")
        .fetch_mode(FETCH_RAISE)  # a lazy load in a row would be a query per row: fail loudly instead
        .annotate(open_period=FilteredRelation("periods", condition=Q(periods__status=Period.Status.OPEN)))
        .annotate(
            period_end_on=F("open_period__end_on"),
            # What billing.preview.issue_on_sql reads to date the next invoice (the "Next invoice" sort).
            open_period_id=F("open_period__id"),
            open_period_start_on=F("open_period__start_on"),
            open_period_end_on=F("open_period__end_on"),
            open_period_timing=F("open_period__billing_timing"),
            open_period_held_on=F("open_period__invoice_held_on"),
            renewal_id=Subquery(this_term.values("pk")[:1]),
            renewal_status=Subquery(this_term.values("status")[:1]),
            next_term_starts_on=Subquery(next_terms.order_by("starts_on", "pk").values("starts_on")[:1]),
            health=health_expression(),
            used_share=Case(
                When(units & Q(period_available__gt=0), then=F("period_used") / F("period_available")),
                output_field=DecimalField(),
            ),
            remaining=Case(When(units, then=F("balance")), output_field=DecimalField()),
            # Days left sort like the period's end; a paused retainer's period is on hold.
            days_left_until=Case(When(~paused, then=F("period_end_on")), output_field=DateField()),
            # Only deliverables retainers run these (CASE evaluates lazily).
            deliverables_done=Case(
                When(~units, then=count(deliverables.filter(status=Deliverable.Status.DELIVERED))), default=Value(0)
            ),
            deliverables_total=Case(When(~units, then=count(deliverables)), default=Value(0)),
        )
    )


ROW_SORTS = {
    "client": (Lower("client__name").asc(), Lower("name").asc(), "pk"),
    "-client": (Lower("client__name").desc(), Lower("name").desc(), "-pk"),
    # Rows without the figure (deliverables, paused, term ending) go last in either direction.
    "utilization": (F("used_share").asc(nulls_last=True),),
    "-utilization": (F("used_share").desc(nulls_last=True),),
    "remaining": (F("remaining").asc(nulls_last=True),),
    "-remaining": (F("remaining").desc(nulls_last=True),),
    "days": (F("days_left_until").asc(nulls_last=True),),
    "-days": (F("days_left_until").desc(nulls_last=True),),
    # By the date the preview shows (billing.preview.issue_on_sql, annotated by filter_rows); the
    # amount is billing.preview's, read for the page's rows after sorting.
    "invoice": (F("next_invoice_on").asc(nulls_last=True),),
    "-invoice": (F("next_invoice_on").desc(nulls_last=True),),
    "renewal": (F("term_ends_on").asc(),),
    "-renewal": (F("term_ends_on").desc(),),
}
TIE_BREAK = (Lower("client__name").asc(), Lower("name").asc(), "pk")


def filter_rows(
    rows: QuerySet[WithAnnotations[Retainer, RetainerRow]],
    *,
    q: str,
    health: str,
    renewal: str,
    sort: str,
    today: date,
) -> QuerySet[WithAnnotations[Retainer, RetainerRow]]:
    if q:
        rows = rows.filter(Q(client__name__icontains=q) | Q(name__icontains=q))
    if health:
        rows = rows.filter(health=health)
    if renewal == "none":
        rows = rows.filter(renewal_status=None)
    elif renewal:
        rows = rows.filter(renewal_status=renewal)
    if sort.lstrip("-") == "invoice":
        # The next invoice's date as the preview dates it, the few closing invoices asked of the preview.
        issue_on = issue_on_sql(period="open_period", today=today)
        rows = rows.alias(next_invoice_on=issue_on.resolve(rows, today=today))
    order = ROW_SORTS.get(sort, ROW_SORTS["client"])
    return rows.order_by(*order, *(TIE_BREAK if sort.lstrip("-") != "client" else ()))


# --- Needs attention ---------------------------------------------------------------------------


def capped(queryset: QuerySet, limit: int) -> tuple[list, int]:
    """The first `limit` rows and how many match in all, in one query (a window count over the match)."""
    rows = list(queryset.annotate(match_count=Window(Count("pk")))[:limit])
    return rows, (rows[0].match_count if rows else 0)


def over_allotment(workspace: Workspace) -> QuerySet[Retainer]:
    return (
        Retainer.objects.for_workspace(workspace)
        .live()
        .over()
        .select_related("client")
        .fetch_mode(FETCH_RAISE)
        .order_by("balance", "pk")
    )


def low_balance(workspace: Workspace) -> QuerySet[Retainer]:
    return (
        Retainer.objects.for_workspace(workspace)
        .live()
        .low()
        .select_related("client")
        .fetch_mode(FETCH_RAISE)
        .order_by(F("balance") / F("period_available"), "pk")
    )


def overdue_invoices(workspace: Workspace, *, today: date) -> QuerySet[Invoice]:
    return (
        Invoice.objects.for_workspace(workspace)
        .filter(status=Invoice.Status.OPEN, due_on__lt=today)
        .select_related("client")
        .fetch_mode(FETCH_RAISE)
        .order_by("due_on", "pk")
    )


def failed_payments(workspace: Workspace, *, now: datetime) -> QuerySet[Invoice]:
    """Open invoices with a failed payment in the last 30 days and no success after it: one row per
    invoice (a card retried three times is one thing to chase), with the latest failure."""
    payments = Payment.objects.for_workspace(workspace).filter(kind=Payment.Kind.PAYMENT)
    later_success = payments.filter(
        invoice=OuterRef("invoice"), status=Payment.Status.SUCCEEDED, created_at__gt=OuterRef("created_at")
    )
    failures = (
        payments.filter(
            invoice=OuterRef("pk"),
            status=Payment.Status.FAILED,
            created_at__gte=now - timedelta(days=FAILED_PAYMENT_DAYS),
        )
        .exclude(Exists(later_success))
        .order_by("-created_at", "-pk")
    )
    return (
        Invoice.objects.for_workspace(workspace)
        .filter(status=Invoice.Status.OPEN)
        .filter(Exists(failures))
        .annotate(
            failed_at=Subquery(failures.values("created_at")[:1]),
            failure_message=Subquery(failures.values("failure_message")[:1]),
        )
        .select_related("client")
        .fetch_mode(FETCH_RAISE)
        .order_by("-failed_at", "-pk")
    )


def undelivered_invoices(workspace: Workspace) -> QuerySet[Invoice]:
    """Invoices whose delivery (or PDF after a payment) failed in a way no retry fixes by itself:
    the sweep keeps trying, the consultant should know (billing/sending.py)."""
    return (
        Invoice.objects.for_workspace(workspace)
        .exclude(delivery_error="")
        .exclude(status__in=[Invoice.Status.DRAFT, Invoice.Status.VOID])
        .select_related("client")
        .fetch_mode(FETCH_RAISE)
        .order_by("delivery_due_at", "pk")
    )


def credit_balances(workspace: Workspace) -> QuerySet[Invoice]:
    """Overpaid invoices whose credit balance the consultant has not yet refunded or applied (what is
    carried to the next invoice is decided)."""
    excess = F("paid_minor") - F("total_minor") + F("credited_minor")
    return (
        Invoice.objects.for_workspace(workspace)
        .in_state(InvoiceState.OVERPAID, today=date.min)
        .alias(excess=excess)
        .filter(excess__gt=F("carry_credit_minor"))
        .select_related("client")
        .fetch_mode(FETCH_RAISE)
        .order_by("-paid_at", "-pk")
    )


def failed_refunds(workspace: Workspace, *, now: datetime) -> QuerySet[Payment]:
    """Refunds that failed in the last 30 days with no refund of the same payment after them."""
    later = Payment.objects.filter(
        refund_of=OuterRef("refund_of"),
        kind=Payment.Kind.REFUND,
        status__in=[Payment.Status.PENDING, Payment.Status.SUCCEEDED],
        created_at__gt=OuterRef("created_at"),
    )
    return (
        Payment.objects.for_workspace(workspace)
        .filter(
            kind=Payment.Kind.REFUND,
            status=Payment.Status.FAILED,
            created_at__gte=now - timedelta(days=FAILED_PAYMENT_DAYS),
        )
        .exclude(Exists(later))
        .select_related("invoice", "client")
        .fetch_mode(FETCH_RAISE)
        .order_by("-created_at", "-pk")
    )


def renewals_to_propose(workspace: Workspace, *, today: date) -> QuerySet[Retainer]:
    """Active retainers whose term ends within 30 days with no proposal sent for it: the renewal
    is still upcoming, or not opened yet. Cancelled retainers end anyway, so they are left out."""
    this_term = Renewal.objects.for_workspace(workspace).filter(
        retainer=OuterRef("pk"), term_ends_on=OuterRef("term_ends_on")
    )
    return (
        Retainer.objects.for_workspace(workspace)
        .filter(
            status=Status.ACTIVE,
            cancel_at_period_end=False,
            term_ends_on__gt=today,
            term_ends_on__lte=today + timedelta(days=RENEWAL_WINDOW_DAYS),
        )
        .exclude(Exists(this_term.exclude(status=Renewal.Status.UPCOMING)))
        .annotate(renewal_id=Subquery(this_term.values("pk")[:1]))
        .select_related("client")
        .fetch_mode(FETCH_RAISE)
        .order_by("term_ends_on", "pk")
    )


def tasks_due(workspace: Workspace, *, today: date) -> QuerySet[Task]:
    """Open tasks due by the end of today in the workspace's zone, overdue ones first."""
    return (
        Task.objects.for_workspace(workspace)
        .filter(status=Task.Status.OPEN, due_at__lt=start_of_day(today + timedelta(days=1), workspace))
        .select_related("client", "assignee")
        .fetch_mode(FETCH_RAISE)
        .order_by("due_at", "pk")
    )


def client_names(workspace: Workspace, client_ids: set[int]) -> dict[int, str]:
    """The names of a few clients by id: one query, none when there are none to name."""
    if not client_ids:
        return {}
    return dict(Client.objects.for_workspace(workspace).filter(pk__in=client_ids).values_list("pk", "name"))


def quiet_clients(workspace: Workspace, *, today: date) -> QuerySet[Client]:
    """Active clients with a live retainer and no session or message for 30 days (or their own
    check-in cadence), counted from when they were added if nothing happened since."""
    zone = workspace.tzinfo
    # The latest session of each of the client's retainers (a backward scan of `workitem_day_idx`
    # that stops at the first row), then the latest of those with MAX (which skips retainers
    # without any): sorting all of a client's sessions instead costs a sort per client, 40 ms at
    # 1,000 clients with a year of history.
    latest_session = (
        WorkItem.objects.for_workspace(workspace)
        .filter(retainer=OuterRef("pk"), removed_at=None)
        .order_by("-delivered_on")
        .values("delivered_on")[:1]
    )
    sessions = (
        Retainer.objects.for_workspace(workspace)
        .filter(client=OuterRef("pk"))
        .order_by()
        .values("client")
        .annotate(last_session_on=Max(Subquery(latest_session)))
        .values("last_session_on")
    )
    thread = Message.objects.for_workspace(workspace).filter(client=OuterRef("pk"))
    live = Retainer.objects.for_workspace(workspace).live().filter(client=OuterRef("pk"))
    return (
        Client.objects.for_workspace(workspace)
        .filter(status=Client.Status.ACTIVE)
        .filter(Exists(live))
        .annotate(
            # GREATEST skips NULLs in PostgreSQL: with neither a session nor a message, the date added counts.
            # One expression, not three annotations: each annotation used is its own subplan per row.
            last_touch_on=Greatest(
                Subquery(sessions[:1]),
                TruncDate(Subquery(thread.order_by("-created_at").values("created_at")[:1]), tzinfo=zone),
                TruncDate("created_at", tzinfo=zone),
            ),
            # date - integer is a date in PostgreSQL.
            quiet_since_on=ExpressionWrapper(
                Value(today) - Coalesce("checkin_every_days", Value(QUIET_DAYS)), output_field=DateField()
            ),
        )
        .filter(last_touch_on__lte=F("quiet_since_on"))
        .fetch_mode(FETCH_RAISE)
        .order_by("last_touch_on", Lower("name"), "pk")
    )


# --- Money -------------------------------------------------------------------------------------


def round_half_up(value: Decimal) -> int:
    return int(value.to_integral_value(ROUND_HALF_UP))


@dataclass(frozen=True)
class Recurring:
    currency: str
    mrr_minor: int
    live: int
    paused: int


def recurring_revenue(workspace: Workspace, *, today: date) -> list[Recurring]:
    """Monthly recurring revenue of the retainers whose term covers `today`, per currency, in one
    GROUP BY: during a renewal overlap only the term in force counts, never both.

    Summed as a year's worth (monthly ×12, quarterly ×4, yearly ×1: exact integers) and divided
    by 12 once, so a quarterly £1,000 is £333.33 and three of them are £1,000.00, not £999.99.
    """
    annual = Case(
        When(cadence=RetainerTerms.Cadence.MONTHLY, then=F("price_minor") * Value(12)),
        When(cadence=RetainerTerms.Cadence.QUARTERLY, then=F("price_minor") * Value(4)),
        default=F("price_minor"),
        output_field=BigIntegerField(),
    )
    groups = (
        Retainer.objects.for_workspace(workspace)
        .current(on=today)
        .values("currency")
        .annotate(annual=Sum(annual), live=Count("pk"), paused=Count("pk", filter=Q(status=Status.PAUSED)))
        .order_by("currency")
    )
    return [Recurring(g["currency"], round_half_up(Decimal(g["annual"]) / 12), g["live"], g["paused"]) for g in groups]


class Collected(TypedDict):
    month: datetime  # the local month's start
    currency: str
    net_minor: int


def collected_by_month(workspace: Workspace, *, today: date) -> list[Collected]:
    """Money collected per local month and currency over the last 12 months (this one included):
    succeeded payments less succeeded refunds, dated when they happened. One GROUP BY."""
    first = start_of_day(month_start(today, CHART_MONTHS - 1), workspace)
    end = start_of_day(month_start(month_start(today) + timedelta(days=32)), workspace)
    signed = Case(
        When(kind=Payment.Kind.REFUND, then=-F("amount_minor")),
        default=F("amount_minor"),
        output_field=BigIntegerField(),
    )
    return list(
        Payment.objects.for_workspace(workspace)
        .filter(status=Payment.Status.SUCCEEDED, created_at__gte=first, created_at__lt=end)
        .exclude(method=Payment.Method.CREDIT)  # a credit moved between invoices is not money collected
        .annotate(month=TruncMonth("created_at", tzinfo=workspace.tzinfo))
        .values("month", "currency")
        .annotate(net_minor=Sum(signed))
        .order_by("month", "currency")
    )
