"""The dashboard: the first page after sign-in.

Clients table, needs attention, money and the quick-add. The figures come from
`dashboard.queries` (SQL, a fixed number of queries); this module turns them into the rows
and sentences the template shows. htmx asks for one part at a time: the table rows when the
filters, sort or page change, and the rows and the attention list after a session is
recorded with the quick-add (its response triggers `work-recorded`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from billing.preview import NextInvoice, next_invoices
from billing.services import held_first_invoices
from clients.models import Retainer, RetainerTerms
from dashboard import charts, onboarding, queries
from dashboard.forms import RowFilterForm
from delivery import agenda
from delivery.forms import workspace_quick_add_form
from retainers import services as core
from retainers.http import WorkspaceRequest, workspace_view
from retainers.money import format_money
from retainers.pagecache import PageCache
from retainers.units import format_units

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

    from dashboard.queries import RetainerRow

PER_PAGE = 100
ATTENTION_PER_KIND = 5

RENEWAL_BADGES = {
    "upcoming": ("Upcoming", "badge-info"),
    "proposal_sent": ("Proposal sent", "badge-info"),
    "accepted": ("Accepted", "badge-success"),
    "declined": ("Declined", "badge-danger"),
    "renewed": ("Auto-renewed", "badge-success"),
    "lapsed": ("Lapsed", "badge-muted"),
}


def _locale(request: WorkspaceRequest) -> str:
    return request.workspace.locale or "en_US"


def _url(name: str, request: WorkspaceRequest, *args: object, query: dict[str, str] | None = None) -> str:
    url = reverse(name, args=[request.workspace.slug, *args])
    return f"{url}?{urlencode(query)}" if query else url


def _days(n: int) -> str:
    return f"{n} day{'s' if n != 1 else ''}"


def _day(day: date, today: date) -> str:
    """5 Mar, or 5 Mar 2027 when not this year."""
    return f"{day.day} {day:%b}" + (f" {day:%Y}" if day.year != today.year else "")


# --- The clients table -------------------------------------------------------------------------


def _units(quantity: Decimal, retainer: Retainer) -> str:
    """'6.50 h' or '3 sessions'."""
    if retainer.unit == RetainerTerms.Unit.HOURS:
        return f"{quantity:.2f} h"
    return f"{format_units(quantity)} session{'' if quantity == 1 else 's'}"


class Links:
    """URLs of the page's rows by id: reverse() once per page and kind, then format.

    A full page has 100 rows with three links each; through reverse() (or {% url %}) those
    cost more than the rows' SQL. Each name's last argument is the id, at the end of its path.
    """

    def __init__(self, request: WorkspaceRequest) -> None:
        self.slug = request.workspace.slug
        self._prefixes: dict[str, tuple[str, str]] = {}

    def __call__(self, name: str, pk: int) -> str:
        if name not in self._prefixes:
            head, _, tail = reverse(name, args=[self.slug, 0]).rpartition("/0/")
            self._prefixes[name] = (head, tail)
        head, tail = self._prefixes[name]
        return f"{head}/{pk}/{tail}"


@dataclass(frozen=True)
class Row:
    """One line of the table, every cell ready to print: the template only places them."""

    retainer: Retainer
    client_name: str
    client_url: str
    name: str
    url: str
    paused: bool
    percent: int | None
    bar: str  # the .w-NN class, in steps of 5
    tone: str  # the .bar modifier
    remaining: str  # "6.50 h left"
    remaining_badge: str  # set when over or low
    days_left: int | None
    invoice_on: str  # "1 Apr 2026", or "" when there is no next invoice…
    invoice_amount: str  # "£1,500.00"
    invoice_note: str  # …and why not
    invoice_held: bool  # the first invoice of a renewed term, waiting for the previous term's to be paid
    renewal_on: str
    renewal_label: str
    renewal_badge: str
    renewal_url: str
    renewal_note: str  # when no renewal is open for this term
    next_term_note: str  # "Next term starts 1 Apr": an accepted renewal, shown on the term in force


def make_row(
    retainer: WithAnnotations[Retainer, RetainerRow],
    *,
    today: date,
    locale: str,
    links: Links,
    next_invoice: NextInvoice | None,
) -> Row:
    state = retainer.health
    if retainer.model == RetainerTerms.Model.DELIVERABLES:
        done, total = retainer.deliverables_done, retainer.deliverables_total
        share = Decimal(done) / total if total else None
        remaining = f"{done} of {total} delivered" if total else "No deliverables"
    else:
        share = retainer.utilisation  # retainers.units.utilisation, as every page shows it
        balance = retainer.balance
        remaining = f"{_units(-balance, retainer)} over" if balance < 0 else f"{_units(balance, retainer)} left"
    if share is None:
        percent, bar = None, "w-0"
    else:
        percent = int((share * 100).to_integral_value(ROUND_HALF_UP))
        bar = f"w-{min(int((share * 20).to_integral_value(ROUND_HALF_UP)), 20) * 5}"
    end = retainer.days_left_until
    label, badge = RENEWAL_BADGES.get(retainer.renewal_status or "", ("", ""))
    paused = retainer.status == Retainer.Status.PAUSED
    invoice_on = next_invoice.issue_on if next_invoice else None
    amount = ""
    if next_invoice is not None:
        amount = format_money(next_invoice.total_minor, next_invoice.currency, locale)
        if next_invoice.tax_note:
            amount += f" {next_invoice.tax_note}"
        if retainer.billing_timing == RetainerTerms.Timing.ARREARS:
            amount += " in arrears"
    if retainer.renewal_id:
        renewal_note = ""
    elif retainer.cancel_at_period_end:
        renewal_note = "Cancelled"
    elif retainer.auto_renew:
        renewal_note = "Renews automatically"
    else:
        renewal_note = "Not opened yet"
    return Row(
        retainer=retainer,
        client_name=retainer.client.name,
        client_url=links("dashboard:client_detail", retainer.client_id),
        name=retainer.name,
        url=links("delivery:retainer_detail", retainer.pk),
        paused=paused,
        percent=percent,
        bar=bar,
        tone={"over": "bar-danger", "low": "bar-warning", "healthy": "bar-success"}.get(state, ""),
        remaining=remaining,
        remaining_badge={"over": "badge-danger", "low": "badge-warning"}.get(state, ""),
        days_left=max((end - today).days, 0) if end else None,
        invoice_on=f"{invoice_on.day} {invoice_on:%b %Y}" if invoice_on else "",
        invoice_amount=amount,
        invoice_note="Paused" if paused else "None: the term ends",
        invoice_held=next_invoice is not None and next_invoice.held,
        renewal_on=f"{retainer.term_ends_on.day} {retainer.term_ends_on:%b %Y}",
        renewal_label=label,
        renewal_badge=badge,
        renewal_url=links("renewals:renewal_detail", retainer.renewal_id) if retainer.renewal_id else "",
        renewal_note=renewal_note,
        next_term_note=next_term_note(retainer.next_term_starts_on),
    )


def next_term_note(starts_on: date | None) -> str:
    return f"Next term starts {starts_on.day} {starts_on:%b}" if starts_on else ""


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    numeric: bool
    url: str
    aria_sort: str  # "ascending", "descending" or ""
    next_direction: str  # for the link's accessible name


COLUMN_LABELS = {
    "client": ("Client", False),
    "utilization": ("Used", False),
    "remaining": ("Remaining", True),
    "days": ("Days left", True),
    "invoice": ("Next invoice", False),
    "renewal": ("Renewal", False),
}


def _columns(request: WorkspaceRequest, chosen: dict[str, str]) -> list[Column]:
    """Sortable headers: a click sorts by the column (its useful end first), a second click reverses it."""
    params = {k: v for k, v in chosen.items() if v and v != RowFilterForm.DEFAULTS.get(k)}
    params.pop("sort", None)
    columns = []
    for key, (label, numeric) in COLUMN_LABELS.items():
        first = RowFilterForm.COLUMNS[key]
        current = chosen["sort"]
        if current.lstrip("-") == key:
            target = current[1:] if current.startswith("-") else f"-{current}"
            aria = "descending" if current.startswith("-") else "ascending"
        else:
            target, aria = first, ""
        query = {**params, "sort": target} if target != RowFilterForm.DEFAULTS["sort"] else params
        url = _url("dashboard", request, query=query)
        direction = "descending" if target.startswith("-") else "ascending"
        columns.append(Column(key, label, numeric, url, aria, direction))
    return columns


def filters_context(request: WorkspaceRequest) -> dict[str, Any]:
    filters = RowFilterForm(request.GET)
    return {"filters": filters, "chosen": filters.values()}


def rows_context(request: WorkspaceRequest, *, today: date) -> dict[str, object]:
    context = filters_context(request)
    chosen = context["chosen"]
    rows = queries.filter_rows(queries.retainer_rows(request.workspace, today=today), **chosen, today=today)
    page = Paginator(rows, PER_PAGE).get_page(request.GET.get("page"))
    locale, links = _locale(request), Links(request)
    retainers = list(page)
    previews = next_invoices(retainers, today=today)  # a fixed number of queries for the page's rows
    return {
        **context,
        "filtered": any(chosen[name] for name in ("q", "health", "renewal")),
        "page_obj": page,
        "rows": [
            make_row(retainer, today=today, locale=locale, links=links, next_invoice=previews[retainer.pk])
            for retainer in retainers
        ],
        "columns": _columns(request, chosen),
        "rows_url": request.get_full_path(),
    }


# --- Needs attention ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    title: str
    detail: str
    url: str


@dataclass
class Kind:
    """One kind of thing to act on. `noun` is how one of them is called in a count, with its plural:
    ("overdue invoice", "overdue invoices") reads "1 overdue invoice", "3 overdue invoices"."""

    key: str
    label: str
    badge: str
    count: int
    items: list[Item]
    all_url: str = ""  # where to see them all, when the list is capped
    noun: tuple[str, str] = ("", "")

    @property
    def more(self) -> int:
        return self.count - len(self.items)

    def _counted(self, n: int) -> str:
        one, many = self.noun
        return f"{n} {one if n == 1 else many}"

    @property
    def counted(self) -> str:
        """The badge: "1 overdue invoice"."""
        return self._counted(self.count)

    @property
    def more_counted(self) -> str:
        """Past the first few: "2 more overdue invoices"."""
        return self._counted(self.more).replace(" ", " more ", 1)


def _retainer_title(retainer: Retainer) -> str:
    return f"{retainer.client.name} · {retainer.name}"


def attention_context(request: WorkspaceRequest, *, today: date) -> dict[str, object]:
    """Each kind of thing to act on, with its count and its first few: one query per kind."""
    workspace, locale, links = request.workspace, _locale(request), Links(request)
    n = ATTENTION_PER_KIND
    kinds: list[Kind] = []

    def money(minor: int, currency: str) -> str:
        return format_money(minor, currency, locale)

    rows, count = queries.capped(queries.over_allotment(workspace), n)
    items = [
        Item(_retainer_title(r), f"{_units(-r.balance, r)} over the allotment", links("delivery:retainer_detail", r.pk))
        for r in rows
    ]
    show_all = _url("dashboard", request, query={"health": "over"})
    kinds.append(
        Kind("over", "Over the allotment", "badge-danger", count, items, show_all, ("over the allotment",) * 2)
    )

    rows, count = queries.capped(queries.low_balance(workspace), n)
    items = [
        Item(
            _retainer_title(r),
            f"{_units(r.balance, r)} left of {_units(r.period_available, r)}",
            links("delivery:retainer_detail", r.pk),
        )
        for r in rows
    ]
    show_all = _url("dashboard", request, query={"health": "low"})
    kinds.append(Kind("low", "Low balance", "badge-warning", count, items, show_all, ("low balance", "low balances")))

    rows, count = queries.capped(queries.overdue_invoices(workspace, today=today), n)
    items = [
        Item(
            f"{invoice.client.name} · {invoice.number or 'Draft'}",
            f"{money(invoice.owed_minor, invoice.currency)} due {_day(invoice.due_on, today)}, "
            f"{_days((today - invoice.due_on).days)} overdue",
            links("billing:invoice_detail", invoice.pk),
        )
        for invoice in rows
    ]
    show_all = _url("billing:invoice_list", request, query={"status": "overdue"})
    kinds.append(
        Kind(
            "overdue",
            "Overdue invoices",
            "badge-danger",
            count,
            items,
            show_all,
            ("overdue invoice", "overdue invoices"),
        )
    )

    # A renewed term's first invoice the billing run holds (the same holds the client page explains):
    # it goes out once the previous term's unpaid invoice is paid, so that invoice is what to chase.
    holds = sorted(
        held_first_invoices(workspace.pk, today).values(),
        key=lambda h: (-h.days_overdue, h.period.start_on, h.period.pk),
    )
    names = queries.client_names(workspace, {hold.period.retainer.client_id for hold in holds[:n]})
    items = [
        Item(
            f"{names[hold.period.retainer.client_id]} · {hold.period.retainer.name}",
            f"First invoice of the term from {_day(hold.period.start_on, today)} held: {hold.reason}",
            links("billing:invoice_detail", hold.unpaid.pk),
        )
        for hold in holds[:n]
    ]
    kinds.append(
        Kind("held", "Held invoices", "badge-warning", len(holds), items, noun=("held invoice", "held invoices"))
    )

    rows, count = queries.capped(queries.failed_payments(workspace, now=timezone.now()), n)
    items = [
        Item(
            f"{invoice.client.name} · {invoice.number or 'Draft'}",
            f"{money(invoice.owed_minor, invoice.currency)} unpaid: payment failed "
            f"{_day(timezone.localdate(invoice.failed_at), today)}"
            + (f" ({invoice.failure_message})" if invoice.failure_message else ""),
            links("billing:invoice_detail", invoice.pk),
        )
        for invoice in rows
    ]
    kinds.append(
        Kind("failed", "Failed payments", "badge-danger", count, items, noun=("failed payment", "failed payments"))
    )

    rows, count = queries.capped(queries.undelivered_invoices(workspace), n)
    items = [
        Item(
            f"{invoice.client.name} · {invoice.number}",
            f"Not delivered: {invoice.delivery_error}" if not invoice.delivered_at else invoice.delivery_error,
            links("billing:invoice_detail", invoice.pk),
        )
        for invoice in rows
    ]
    kinds.append(Kind("undelivered", "Invoices not delivered", "badge-danger", count, items))

    rows, count = queries.capped(queries.credit_balances(workspace), n)
    items = [
        Item(
            f"{invoice.client.name} · {invoice.number}",
            f"Overpaid: {money(invoice.credit_balance_minor, invoice.currency)} to refund or apply to the next invoice",
            links("billing:invoice_detail", invoice.pk),
        )
        for invoice in rows
    ]
    show_all = _url("billing:invoice_list", request, query={"status": "overpaid"})
    kinds.append(Kind("overpaid", "Credit balances", "badge-warning", count, items, show_all))

    rows, count = queries.capped(queries.failed_refunds(workspace, now=timezone.now()), n)
    items = [
        Item(
            f"{refund.client.name} · {refund.invoice.number}",
            f"Refund of {money(refund.amount_minor, refund.currency)} failed "
            f"{_day(timezone.localdate(refund.created_at), today)}"
            + (f" ({refund.failure_message})" if refund.failure_message else ""),
            links("billing:invoice_detail", refund.invoice_id),
        )
        for refund in rows
    ]
    kinds.append(Kind("refunds", "Failed refunds", "badge-danger", count, items))

    rows, count = queries.capped(queries.renewals_to_propose(workspace, today=today), n)
    items = []
    for retainer in rows:
        left = _days((retainer.term_ends_on - today).days)
        if retainer.renewal_id:
            state, url = "no proposal sent", links("renewals:renewal_detail", retainer.renewal_id)
        else:
            state, url = "renewal not opened yet", links("delivery:retainer_detail", retainer.pk)
        detail = f"Renews {_day(retainer.term_ends_on, today)} (in {left}), {state}"
        items.append(Item(_retainer_title(retainer), detail, url))
    kinds.append(
        Kind(
            "renewals",
            "Renewals to propose",
            "badge-warning",
            count,
            items,
            _url("renewals:renewal_list", request),
            ("renewal to propose", "renewals to propose"),
        )
    )

    rows, count = queries.capped(queries.tasks_due(workspace, today=today), n)
    items = []
    for task in rows:
        due_on = timezone.localdate(task.due_at)  # the view runs in the workspace's zone
        when = (
            f"due today {timezone.localtime(task.due_at):%H:%M}"
            if due_on == today
            else f"overdue since {_day(due_on, today)}"
        )
        who = f" · {task.assignee.get_short_name()}" if task.assignee else ""
        items.append(Item(f"{task.client.name} · {task.title}", when + who, links("communication:task_edit", task.pk)))
    show_all = _url("communication:task_list", request, query={"state": "due"})
    kinds.append(Kind("tasks", "Tasks due", "badge-info", count, items, show_all, ("task due", "tasks due")))

    rows, count = queries.capped(queries.quiet_clients(workspace, today=today), n)
    items = []
    for client in rows:
        quiet = _days((today - client.last_touch_on).days)
        cadence = f" (check-ins every {_days(client.checkin_every_days)})" if client.checkin_every_days else ""
        detail = f"No session or message for {quiet}{cadence}"
        items.append(Item(client.name, detail, links("dashboard:client_detail", client.pk)))
    kinds.append(
        Kind("quiet", "Gone quiet", "badge-muted", count, items, noun=("client gone quiet", "clients gone quiet"))
    )

    return {"attention": kinds, "attention_total": sum(kind.count for kind in kinds)}


# --- Money -------------------------------------------------------------------------------------


@dataclass
class Money:
    currency: str
    mrr: str = ""
    collected: str = ""
    chart: charts.RevenueChart | None = None
    live: int = 0
    paused: int = 0


def money_context(request: WorkspaceRequest, *, today: date) -> dict[str, object]:
    """MRR, collected this month and the 12-month chart, per currency (never added across).
    Two queries: the MRR GROUP BY and the month × currency GROUP BY (this month is its last bar)."""
    workspace, locale = request.workspace, _locale(request)
    months = [queries.month_start(today, back) for back in range(queries.CHART_MONTHS - 1, -1, -1)]
    by_currency: dict[str, Money] = {}

    def money(currency: str) -> Money:
        return by_currency.setdefault(currency, Money(currency))

    for recurring in queries.recurring_revenue(workspace, today=today):
        entry = money(recurring.currency)
        entry.mrr = format_money(recurring.mrr_minor, recurring.currency, locale)
        entry.live, entry.paused = recurring.live, recurring.paused
    nets: dict[str, dict[date, int]] = {}
    for group in queries.collected_by_month(workspace, today=today):
        nets.setdefault(group["currency"], {})[timezone.localdate(group["month"])] = group["net_minor"]
    if not by_currency and not nets:
        money(workspace.currency)  # an empty workspace still shows its own currency at zero
    for currency in nets:
        money(currency)
    for currency, entry in by_currency.items():
        net = nets.get(currency, {})
        entry.collected = format_money(net.get(months[-1], 0), currency, locale)
        entry.mrr = entry.mrr or format_money(0, currency, locale)
        entry.chart = charts.revenue_chart(currency=currency, months=months, net_by_month=net, locale=locale)
    # The workspace's own currency first, then the busiest.
    ordered = sorted(by_currency.values(), key=lambda m: (m.currency != workspace.currency, -m.live, m.currency))
    return {
        "money": ordered,
        "live_count": sum(m.live for m in ordered),
        "paused_count": sum(m.paused for m in ordered),
        "month_start": months[-1],
    }


# --- The page ----------------------------------------------------------------------------------
#
# The rows, the attention list and the money figures are cached as rendered HTML (or, for the
# money, as the few figures the page prints) under the workspace's data version: any write in the
# workspace moves it, so a cached part is never stale (retainers.pagecache). The key adds the local
# date, since rows and items are worded relative to today, and for the rows the query string.


def rows_html(request: WorkspaceRequest, parts: PageCache, *, today: date) -> str:
    return parts.get(
        "dashboard-rows",
        [today, request.get_full_path()],
        lambda: render_to_string("dashboard/dashboard.html#rows", rows_context(request, today=today), request),
    )


def attention_part(request: WorkspaceRequest, parts: PageCache, *, today: date) -> dict[str, object]:
    def build() -> dict[str, object]:
        context = attention_context(request, today=today)
        html = render_to_string("dashboard/dashboard.html#attention", context, request)
        return {"attention_html": html, "attention_total": context["attention_total"]}

    return parts.get("dashboard-attention", [today], build)


def bookings_context(request: WorkspaceRequest, parts: PageCache, *, today: date) -> dict[str, object]:
    """Today's bookings, the rest of the week's and those to settle: the lines are cached under the data
    version like the other parts; whether each has started is worked out per request."""
    week = parts.get("dashboard-bookings", [today], lambda: agenda.week(request.workspace, today=today))
    zone, now = request.workspace.tzinfo, timezone.now()
    return {
        "bookings_today": agenda.show(week.today, zone=zone, now=now),
        "bookings_later": agenda.show(week.later, zone=zone, now=now),
        "bookings_to_settle": agenda.show(week.to_settle, zone=zone, now=now),
        "next_url": request.get_full_path(),
    }


@require_GET
@workspace_view
def dashboard(request: WorkspaceRequest) -> HttpResponse:
    today = request.workspace.today()
    parts = PageCache(request.workspace, version=request.data_version)
    partial = request.htmx and not request.htmx.history_restore_request
    if partial and request.htmx.target == "attention":
        response = HttpResponse(attention_part(request, parts, today=today)["attention_html"])
    elif partial:
        response = HttpResponse(rows_html(request, parts, today=today))
    else:
        form = workspace_quick_add_form(request.workspace, parts=parts)
        form.set_focus(None)  # the first page after sign-in: no field grabs the focus
        context = {
            "today": today,
            "quick_form": form,
            "next_url": request.get_full_path(),
            # For owners and admins, who can take every step. In a list: the page cache takes None for
            # a miss, and a finished checklist is None.
            "onboarding": parts.get("dashboard-onboarding", [], lambda: [onboarding.checklist(request.workspace)])[0]
            if request.membership.is_admin
            else None,
            **filters_context(request),
            "rows_html": rows_html(request, parts, today=today),
            **attention_part(request, parts, today=today),
            **parts.get("dashboard-money", [today], lambda: money_context(request, today=today)),
            **bookings_context(request, parts, today=today),
        }
        response = render(request, "dashboard/dashboard.html", context)
    patch_vary_headers(response, ["HX-Request", "HX-Target"])  # one URL, a page or one of its parts
    return response


@require_POST
@workspace_view(admin=True)
def onboarding_dismiss(request: WorkspaceRequest) -> HttpResponse:
    """Close the getting-started checklist for the whole workspace."""
    core.dismiss_onboarding(workspace=request.workspace)
    return redirect("dashboard", request.workspace.slug)
