"""The next invoice of a retainer, before it is issued: what the dashboard and the portal show.

`next_invoice(retainer, today=...)` builds the invoice the billing run will issue next, with the
run's own builder (`billing.invoicing.invoice_lines` and `invoice_totals`) over the period as
closing it would leave it (`delivery.ledger.plan_period_close`): with no further work recorded,
the preview equals that invoice to the minor unit and line by line. `next_invoices` does the same
for many retainers in a fixed number of queries.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db.models import Case, DateField, Exists, F, OuterRef, Q, QuerySet, Value, When
from django.db.models.functions import Greatest

from billing import tax
from billing.invoicing import invoice_lines, invoice_totals
from billing.models import BillingProfile, Invoice
from billing.overage import Covered
from clients.models import Amendment, Client, Retainer, RetainerTerms
from delivery import ledger
from delivery.forecast import ends_with
from delivery.models import Deliverable, LedgerEntry, OverageApproval, Period
from delivery.periods import period_bounds
from delivery.services import approved_quantity


@dataclass(frozen=True)
class PreviewLine:
    description: str
    quantity: Decimal
    unit_price_minor: int
    amount_minor: int
    kind: str


@dataclass(frozen=True)
class NextInvoice:
    retainer_id: int
    kind: str  # Invoice.Kind: scheduled, or closing (the last period's overage of an in-advance retainer)
    issue_on: date
    period_start_on: date
    period_end_on: date  # exclusive, as on the invoice
    currency: str
    subtotal_minor: int
    tax_minor: int
    total_minor: int
    tax_rate_bp: int
    tax_label: str
    lines: tuple[PreviewLine, ...]
    # A renewed term's first invoice the run held (billing.services.held_first_invoices): it is
    # issued, with these lines, by the first run after the previous term's unpaid invoice is paid.
    held: bool = False

    @property
    def tax_note(self) -> str:
        """How to read the total beside it: "incl. VAT" when the workspace charges tax, else nothing."""
        return f"incl. {self.tax_label}" if self.tax_rate_bp else ""

    @property
    def includes_usage(self) -> bool:
        """Whether it bills use beyond the fee (overage, extra deliverables) recorded so far."""
        return any(line.kind != "fee" for line in self.lines)


def next_invoice(retainer: Retainer, *, today: date) -> NextInvoice | None:
    """The invoice the billing run issues next for this retainer, as it would be with no further
    work recorded; None when none is coming (paused, ended, or the term ends with nothing to bill)."""
    return next_invoices([retainer], today=today).get(retainer.pk)


def next_invoices(retainers: Iterable[Retainer], *, today: date) -> dict[int, NextInvoice | None]:
    """`next_invoice` for many retainers (of one or more workspaces), by retainer id: seven queries
    (the clients' tax treatments, unless the retainers come with their clients loaded, and the
    overage approvals among them), eight when a period is not billed yet, however many retainers."""
    retainers = [r for r in retainers]
    result: dict[int, NextInvoice | None] = {r.pk: None for r in retainers}
    active = {r.pk: r for r in retainers if r.status == Retainer.Status.ACTIVE}
    if not active:
        return result
    ws = {r.workspace_id for r in active.values()}  # every read below is scoped by workspace too
    scheduled = Invoice.objects.filter(period=OuterRef("pk"), kind=Invoice.Kind.SCHEDULED)
    open_periods = {
        p.retainer_id: p
        for p in Period.objects.filter(workspace_id__in=ws, retainer_id__in=active, status=Period.Status.OPEN).annotate(
            billed=Exists(scheduled)
        )
    }
    # An in-advance period not billed yet (the run has not run since it began): its own invoice is
    # next, carrying the overage and extras of the period before it.
    unbilled = {rid: p for rid, p in open_periods.items() if p.billing_timing == "advance" and not p.billed}
    previous = (
        {
            p.retainer_id: p
            for p in Period.objects.filter(
                workspace_id__in=ws,
                retainer_id__in=list(unbilled),
                seq__in={p.seq - 1 for p in unbilled.values()},
                status=Period.Status.CLOSED,
            )
            if unbilled[p.retainer_id].seq == p.seq + 1
        }
        if unbilled
        else {}
    )
    entries: dict[int, list[tuple[str, Decimal, int, bool]]] = defaultdict(list)
    for period_id, kind, quantity, origin, work_item_id in LedgerEntry.objects.filter(
        workspace_id__in=ws, period__in=list(open_periods.values())
    ).values_list("period_id", "kind", "quantity", "origin_seq", "work_item_id"):
        entries[period_id].append((kind, quantity, origin, work_item_id is not None))
    extras: dict[int, list[Deliverable]] = defaultdict(list)
    for deliverable in Deliverable.objects.filter(
        workspace_id__in=ws,
        period__in=[*open_periods.values(), *previous.values()],
        extra=True,
        status=Deliverable.Status.DELIVERED,
    ).order_by("pk"):
        extras[deliverable.period_id].append(deliverable)
    pending = {
        a.retainer_id: a
        for a in Amendment.objects.filter(workspace_id__in=ws, retainer_id__in=list(active), applied_at=None)
    }
    # Approved overage: an open period's approvals cover what its close would let them (below); a
    # closed one's what its close did.
    approvals: dict[int, list[OverageApproval]] = defaultdict(list)
    settled: dict[int, list[tuple[OverageApproval, Decimal]]] = defaultdict(list)
    for approval in (
        OverageApproval.objects.filter(workspace_id__in=ws, status=OverageApproval.Status.APPROVED)
        .filter(
            Q(period__in=list(open_periods.values()), closed_at=None)
            | Q(period__in=list(previous.values()), used__gt=0)
        )
        .order_by("answered_at", "pk")
    ):
        if approval.closed_at is None:
            approvals[approval.period_id].append(approval)
        else:
            settled[approval.period_id].append((approval, approval.used))
    profiles = {p.workspace_id: p for p in BillingProfile.objects.filter(workspace_id__in=ws)}
    # Lists that show the client beside each retainer (the dashboard's rows) have it loaded already.
    clients = {r.client_id: r.client for r in active.values() if Retainer.client.is_cached(r)}
    missing = {r.client_id for r in active.values()} - clients.keys()
    if missing:
        clients.update((c.pk, c) for c in Client.objects.filter(workspace_id__in=ws, pk__in=missing))

    for rid, retainer in active.items():
        period = open_periods.get(rid)
        if period is None:
            continue
        profile = profiles.get(retainer.workspace_id) or BillingProfile(workspace_id=retainer.workspace_id)
        invoiced: Period
        held = False
        if rid in unbilled:
            invoiced, kind, issue_on = period, Invoice.Kind.SCHEDULED, period.start_on
            if period.invoice_held_on is not None:  # dated the day it is released, as the run dates it
                held, issue_on = True, max(period.start_on, today)
            lines = invoice_lines(period, previous.get(rid), retainer, extras, kind=kind, approvals=settled)
        else:
            has_next = not ends_with(retainer, period)
            closed, covered = _as_closed(retainer, period, entries[period.pk], approvals[period.pk], has_next=has_next)
            issue_on = period.end_on
            if period.billing_timing == RetainerTerms.Timing.ARREARS:
                invoiced, kind = closed, Invoice.Kind.SCHEDULED
                lines = invoice_lines(closed, None, retainer, extras, kind=kind, approvals=covered)
            elif has_next:
                renewed = _with_next_terms(retainer, period, pending.get(rid))
                invoiced, kind = _next_period(renewed, period), Invoice.Kind.SCHEDULED
                lines = invoice_lines(invoiced, closed, renewed, extras, kind=kind, approvals=covered)
            else:
                invoiced, kind = closed, Invoice.Kind.CLOSING
                lines = invoice_lines(closed, None, retainer, extras, kind=kind, approvals=covered)
                if not lines:
                    continue
        terms = tax.tax_terms(clients[retainer.client_id], profile)  # the client's treatment, as the run applies it
        totals = invoice_totals(lines, tax_rate_bp=terms.rate_bp)
        result[rid] = NextInvoice(
            retainer_id=rid,
            kind=kind,
            issue_on=issue_on,
            period_start_on=invoiced.start_on,
            period_end_on=invoiced.end_on,
            currency=invoiced.currency,
            subtotal_minor=totals.subtotal_minor,
            tax_minor=totals.tax_minor,
            total_minor=totals.total_minor,
            tax_rate_bp=terms.rate_bp,
            tax_label=terms.label,
            lines=tuple(
                PreviewLine(line.description, line.quantity, line.unit_price_minor, line.amount_minor, line.kind)
                for line in lines
            ),
            held=held,
        )
    return result


@dataclass(frozen=True)
class IssueOnSql:
    """`NextInvoice.issue_on` as SQL over retainers annotated with their open period, for sorting a
    list by it in the database (billing.preview owns the date; the consistency tests hold them equal).

    `expression` is the date for every retainer but those where `closing` holds: an in-advance
    retainer whose term ends with its open period, already billed. Its next invoice is a closing
    one, which exists only when the period's overage or extras bill something (its end date) and
    else is none: `resolve` asks `next_invoices` for those few rows and returns the expression
    with their answer folded in.
    """

    expression: Case
    closing: Q

    def resolve(self, retainers: QuerySet[Retainer], *, today: date) -> Case:
        """`expression`, exact for every row of `retainers`: the closing rows' own preview decides
        (a fixed number of queries, whatever their number)."""
        candidates = list(retainers.filter(self.closing).order_by())
        previews = next_invoices(candidates, today=today)
        without = [pk for pk, preview in previews.items() if preview is None]
        if not without:
            return self.expression
        return Case(When(pk__in=without, then=None), default=self.expression, output_field=DateField())


def issue_on_sql(*, period: str, today: date) -> IssueOnSql:
    """The next invoice's issue date of each retainer as `next_invoices` dates it, for retainers
    annotated with `{period}_id`, `{period}_start_on`, `{period}_end_on`, `{period}_timing` and
    `{period}_held_on` (their open period's; NULL without one). Mirrors `next_invoices` branch by
    branch: only active retainers with an open period; an in-advance period not billed yet is
    invoiced on its first day (a held one on the day it is released: today at the earliest); one in
    arrears, or one followed by another (delivery.forecast.ends_with), on its end date."""
    billed = Invoice.objects.filter(period=OuterRef(f"{period}_id"), kind=Invoice.Kind.SCHEDULED)
    start_on, end_on = F(f"{period}_start_on"), F(f"{period}_end_on")
    advance = Q(**{f"{period}_timing": RetainerTerms.Timing.ADVANCE})
    arrears = Q(**{f"{period}_timing": RetainerTerms.Timing.ARREARS})
    has_next = Q(cancel_at_period_end=False) & (Q(**{f"{period}_end_on__lt": F("term_ends_on")}) | Q(auto_renew=True))
    eligible = Q(status=Retainer.Status.ACTIVE) & Q(**{f"{period}_id__isnull": False})
    unbilled = eligible & advance & ~Exists(billed)
    held = Q(**{f"{period}_held_on__isnull": False})
    expression = Case(
        When(~eligible, then=None),
        When(unbilled & held, then=Greatest(start_on, Value(today), output_field=DateField())),
        When(unbilled, then=start_on),
        When(arrears | has_next, then=end_on),
        default=end_on,  # the closing case: `resolve` sets those without an invoice to NULL
        output_field=DateField(),
    )
    closing = eligible & advance & Exists(billed) & ~has_next
    return IssueOnSql(expression, closing)


def _as_closed(
    retainer: Retainer,
    period: Period,
    entries: list[tuple[str, Decimal, int, bool]],
    approvals: list[OverageApproval],
    *,
    has_next: bool,
) -> tuple[Period, Covered]:
    """A copy of the open period with the overage and approved overage closing it today would record
    (not saved), and what each of its `approvals` (approved, oldest answer first) would cover, as
    `delivery.services._close_round` computes and settles them."""
    plan = ledger.plan_period_close(
        retainer=retainer,
        seq=period.seq,
        entries=entries,
        has_next=has_next,
        approved=approved_quantity(approvals),
    )
    closed = copy.copy(period)
    closed.overage, closed.used, closed.approved_overage = plan.overage, plan.used, plan.approved_overage
    shares = ledger.share_approved([a.quantity for a in approvals], plan.approved_overage)
    return closed, {period.pk: list(zip(approvals, shares, strict=True))}


def _with_next_terms(retainer: Retainer, period: Period, amendment: Amendment | None) -> Retainer:
    """The retainer with the terms its next period opens with: a pending amendment's when it takes
    effect by the end of this period, as closing applies it (delivery.services._close_round)."""
    if amendment is None or amendment.effective_on > period.end_on:
        return retainer
    renewed = copy.copy(retainer)
    for name, value in amendment.terms().items():
        setattr(renewed, name, value)
    return renewed


def _next_period(retainer: Retainer, period: Period) -> Period:
    """The period closing this one opens, with its price snapshot (not saved), as
    delivery.services._open_periods builds it."""
    start_on, end_on = period_bounds(retainer.anchor_on, retainer.cadence, period.anchor_index + 1)
    return Period(
        workspace_id=retainer.workspace_id,
        retainer_id=retainer.pk,
        seq=period.seq + 1,
        anchor_index=period.anchor_index + 1,
        start_on=start_on,
        end_on=end_on,
        currency=retainer.currency,
        billing_timing=retainer.billing_timing,
        price_minor=retainer.price_minor,
        overage_rate_minor=retainer.overage_rate_minor,
        extra_deliverable_price_minor=retainer.extra_deliverable_price_minor,
    )
