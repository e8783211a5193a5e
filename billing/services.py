"""Workflows of billing: issuing invoices, the scheduled billing run, payments, credit notes and
credit balances.

Lock order, everywhere (a transaction that needs several takes them in this order, so two never
wait on each other): the workspace's invoice sequence row (`_take_numbers`) first, then invoices,
several in ascending pk order (`_lock_invoices`), then payments; a client's StripeCustomer row is
never locked while an invoice is. A workflow that may need a number takes it before it locks an
invoice, and gives it back by rolling back when it turns out not to need it.

Stripe and WeasyPrint are never called inside a transaction: they run in tasks after commit, and
the delivery sweep (billing/sending.py) does what a lost task did not.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from billing import tax
from billing.invoicing import invoice_lines, invoice_totals
from billing.models import (
    BillingProfile,
    Invoice,
    InvoiceLine,
    InvoiceSequence,
    Payment,
)
from billing.overage import settled_approvals
from billing.tax import TAX_FIELDS
from clients.models import Client, Retainer
from clients.selectors import client_currency
from delivery import services as delivery
from delivery.models import Deliverable, Period
from retainers import audit, tenancy
from retainers.bulk import insert_all
from retainers.fields import MAX_AMOUNT_MINOR, largest_amount
from retainers.models import User, Workspace
from retainers.money import format_money, multiply
from retainers.outbox import queue_email
from retainers.runs import single_run
from retainers.services import consultant_recipients

log = logging.getLogger(__name__)

BILLING_RUN_LOCK = 7_340_001  # pg advisory lock key of the whole billing run
WORKSPACE_LOCK_NAMESPACE = 7_340_002  # with the workspace id: one billing task per workspace at a time
CLOSE_BATCH = 200  # retainers whose periods close in one transaction
DELIVERY_BATCH = 50  # invoices one delivery task renders and sends (billing/tasks.py)


class BillingError(Exception):
    """A billing action that is not allowed; the message is shown to the user."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def profile_for(workspace: Workspace) -> BillingProfile:
    profile, _ = BillingProfile.objects.get_or_create(workspace=workspace)
    return profile


def _take_numbers(workspace_id: int, year: int, count: int) -> list[str]:
    """Reserve `count` consecutive numbers, e.g. 2026-0042. The sequence row stays locked until
    commit, so numbers are gapless: a rollback returns them with everything else. One statement
    (an upsert that creates the year's row or locks and moves it), however many numbers."""
    table = InvoiceSequence._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (workspace_id, year, last_number) VALUES (%s, %s, %s) "
            f"ON CONFLICT (workspace_id, year) DO UPDATE SET last_number = {table}.last_number + EXCLUDED.last_number "
            "RETURNING last_number",
            [workspace_id, year, count],
        )
        (last,) = cursor.fetchone()
    return [f"{year}-{n:04d}" for n in range(last - count + 1, last + 1)]


def _totals(invoice: Invoice, lines: list[InvoiceLine]) -> None:
    totals = invoice_totals(lines, tax_rate_bp=invoice.tax_rate_bp)
    invoice.subtotal_minor, invoice.tax_minor, invoice.total_minor = (
        totals.subtotal_minor,
        totals.tax_minor,
        totals.total_minor,
    )


def _after_issue(invoice_ids: list[int], *, as_of: date | None = None) -> None:
    """After commit: render each PDF, then send or charge it (billing/tasks.py), a batch of
    invoices per task, as of the run's business date. A task lost on the way (broker down, worker
    killed) is not lost work: the delivery sweep finds the invoice undelivered."""
    from billing import tasks

    day = as_of.isoformat() if as_of else None

    def enqueue() -> None:
        try:
            # One producer (one broker connection) for the whole run's invoices, not one per task.
            with tasks.deliver_invoices.app.producer_or_acquire() as producer:
                for start in range(0, len(invoice_ids), DELIVERY_BATCH):
                    batch = invoice_ids[start : start + DELIVERY_BATCH]
                    tasks.deliver_invoices.apply_async((batch, day), producer=producer)
        except Exception:  # the broker: the sweep delivers them (`manage.py deliver_invoices`)
            log.warning(
                "could not queue the delivery of %s invoice(s); the sweep will", len(invoice_ids), exc_info=True
            )

    transaction.on_commit(enqueue)


def after_money_moved(invoice: Invoice, *, now: datetime) -> None:
    """Money moved on an invoice (in this transaction): its stored PDF no longer says what is true,
    and a receipt may be due. After commit a task renders it again and sends the receipts; the
    delivery sweep does it if that task is lost."""
    from billing import tasks

    if invoice.pdf:
        Invoice.objects.filter(pk=invoice.pk).update(pdf_stale_at=now)
        invoice.pdf_stale_at = now
    invoice_id = invoice.pk

    def enqueue() -> None:
        try:
            tasks.follow_up_invoice.delay(invoice_id)
        except Exception:
            log.warning("could not queue the follow-up of invoice %s; the sweep will", invoice_id, exc_info=True)

    transaction.on_commit(enqueue)


def _lock_invoices(*invoice_ids: int) -> dict[int, Invoice]:
    """Lock invoices in the one order (ascending pk) and return them by id."""
    rows = Invoice.objects.select_for_update().filter(pk__in=set(invoice_ids)).order_by("pk")
    return {invoice.pk: invoice for invoice in rows}


# --- Scheduled invoices -------------------------------------------------------------


def due_periods(workspace_id: int, today: date) -> QuerySet[Period]:
    """Periods whose invoice is due and not yet issued: in advance from their first day,
    in arrears once closed."""
    billed = Invoice.objects.filter(workspace_id=workspace_id, period=OuterRef("pk"), kind=Invoice.Kind.SCHEDULED)
    return (
        Period.objects.filter(workspace_id=workspace_id)
        .filter(
            Q(billing_timing="advance", start_on__lte=today)
            | Q(billing_timing="arrears", status=Period.Status.CLOSED, end_on__lte=today)
        )
        .exclude(Exists(billed))
        .select_related("retainer")
        .order_by("start_on", "retainer_id", "seq")
    )


@dataclass(frozen=True)
class Hold:
    """A renewed term's first invoice, held: `unpaid` is the previous term's invoice it waits for."""

    period: Period
    unpaid: Invoice
    days_overdue: int

    @property
    def reason(self) -> str:
        days = f"{self.days_overdue} day{'' if self.days_overdue == 1 else 's'}"
        return f"invoice {self.unpaid.number} of the previous term is unpaid, {days} past due"


def held_first_invoices(workspace_id: int, today: date, *, client_id: int | None = None) -> dict[int, Hold]:
    """The due first invoices of renewed terms that wait, by period id: the previous term has an
    invoice unpaid past due, as the retainer's payment collection says — for as many days as
    `pause_after_unpaid_days` when set (the day delivery would pause), else any day past due when
    its invoices are charged to the card (`auto_charge`); with neither, invoices go out as usual.
    Released by the first run after the previous term's invoices are paid. Two queries."""
    periods = due_periods(workspace_id, today).filter(seq=1, retainer__previous_term__isnull=False)
    if client_id is not None:
        periods = periods.filter(retainer__client_id=client_id)
    periods_list = list(periods)
    if not periods_list:
        return {}
    unpaid: dict[int, list[Invoice]] = {}
    for invoice in (
        Invoice.objects.filter(
            workspace_id=workspace_id,
            retainer_id__in={p.retainer.previous_term_id for p in periods_list},
            status=Invoice.Status.OPEN,
            due_on__lt=today,
        )
        .exclude(kind=Invoice.Kind.CREDIT_NOTE)
        .order_by("due_on", "pk")
    ):
        assert invoice.retainer_id is not None  # filtered on it
        unpaid.setdefault(invoice.retainer_id, []).append(invoice)
    holds = {}
    for period in periods_list:
        retainer = period.retainer
        assert retainer.previous_term_id is not None  # filtered on it
        for invoice in unpaid.get(retainer.previous_term_id, []):
            assert invoice.due_on is not None  # filtered on it
            days = (today - invoice.due_on).days
            waits = (
                days >= retainer.pause_after_unpaid_days if retainer.pause_after_unpaid_days else retainer.auto_charge
            )
            if waits:
                holds[period.pk] = Hold(period, invoice, days)
                break
    return holds


def closing_periods(workspace_id: int, today: date) -> QuerySet[Period]:
    """Last periods of in-advance retainers that ended with overage (approved or not) or extra
    deliverables still to bill: their next invoice never comes, so a closing invoice carries it."""
    successor = Period.objects.filter(retainer=OuterRef("retainer"), seq=OuterRef("seq") + 1)
    billed = Invoice.objects.filter(workspace_id=workspace_id, period=OuterRef("pk"), kind=Invoice.Kind.CLOSING)
    extras = Deliverable.objects.filter(period=OuterRef("pk"), extra=True, status=Deliverable.Status.DELIVERED)
    return (
        Period.objects.filter(
            workspace_id=workspace_id, billing_timing="advance", status=Period.Status.CLOSED, end_on__lte=today
        )
        .filter(
            Q(overage__gt=0, overage_rate_minor__gt=0)
            | Q(approved_overage__gt=0)
            | Q(Exists(extras), extra_deliverable_price_minor__gt=0)
        )
        .exclude(Exists(successor))
        .exclude(Exists(billed))
        .select_related("retainer")
        .order_by("end_on", "retainer_id")
    )


def anything_to_issue(workspace_id: int, today: date) -> bool:
    """Whether the workspace has an invoice due (`due_periods`, held ones included) or a closing
    invoice (`closing_periods`) not yet issued: two small queries (one, joined, plans far worse)."""
    return due_periods(workspace_id, today).exists() or closing_periods(workspace_id, today).exists()


@dataclass
class WorkspaceRun:
    workspace_id: int
    periods_closed: int = 0
    invoices: list[int] = field(default_factory=list)
    skipped: str = ""


@tenancy.per_workspace
def bill_workspace(*, workspace_id: int, as_of: date | None = None, deliver: bool = True) -> WorkspaceRun:
    """Close what ended and issue every invoice that is due in one workspace, as of its local date.

    Idempotent and catching up: each period is invoiced once, with its own dates, however
    late the run. Two runs for the same workspace never overlap (a transaction-level advisory
    lock); the unique (retainer, period, kind) constraint is the last guard. `deliver=False`
    issues without rendering, emailing or charging (seed_demo's history, billed after the fact).
    """
    workspace = Workspace.objects.get(pk=workspace_id)
    today = as_of or workspace.today()
    result = WorkspaceRun(workspace_id)

    # 1. End the paused terms an accepted renewal replaced, then close ended periods and open the
    #    next, a batch of retainers per transaction: set-based inside, and the retainer rows stay
    #    locked for one batch only (people may be logging work).
    delivery.end_replaced_terms(workspace_id=workspace_id, as_of=today)
    ending = list(
        Retainer.objects.filter(
            workspace_id=workspace_id, status=Retainer.Status.ACTIVE, periods__status="open", periods__end_on__lte=today
        )
        .distinct()
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for start in range(0, len(ending), CLOSE_BATCH):
        closed = delivery.close_and_open_periods(retainer_ids=ending[start : start + CLOSE_BATCH], as_of=today)
        result.periods_closed += sum(len(c) for c in closed.values())

    # 2. Issue the invoices that are due, in one transaction: numbers stay gapless. A run that
    #    closed nothing mostly has nothing to issue either (the same-day re-run, the hourly runs
    #    between period ends): one query says so, without a transaction or the lock.
    if not ending and not anything_to_issue(workspace_id, today):
        return result
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [WORKSPACE_LOCK_NAMESPACE, workspace_id])
                if not cursor.fetchone()[0]:
                    result.skipped = "another billing task is running for this workspace"
                    return result
            result.invoices = _issue_due_invoices(workspace, today, deliver=deliver)
    except IntegrityError:
        # Lost a race the lock should have prevented (e.g. a manual insert): already billed.
        log.info("workspace %s: periods already billed by another run", workspace_id)
        result.skipped = "already billed"
    return result


def _issue_due_invoices(workspace: Workspace, today: date, *, deliver: bool = True) -> list[int]:
    scheduled = list(due_periods(workspace.pk, today))
    # Only a renewed term's first period can be held: most runs have none, and skip the query.
    renewed = any(p.seq == 1 and p.retainer.previous_term_id is not None for p in scheduled)
    holds = held_first_invoices(workspace.pk, today) if renewed else {}
    if holds:
        Period.objects.filter(pk__in=list(holds), invoice_held_on=None).update(invoice_held_on=today)
    due = [(p, Invoice.Kind.SCHEDULED) for p in scheduled if p.pk not in holds]
    due += [(p, Invoice.Kind.CLOSING) for p in closing_periods(workspace.pk, today)]
    if not due:
        return []
    periods = [p for p, _ in due]
    profile = profile_for(workspace)
    clients = Client.objects.in_bulk({p.retainer.client_id for p in periods})  # their tax treatments
    previous = {
        (p.retainer_id, p.seq): p
        for p in Period.objects.filter(
            workspace=workspace,
            retainer_id__in={p.retainer_id for p in periods},
            seq__in={p.seq - 1 for p in periods},
            status=Period.Status.CLOSED,
        )
    }
    extras: dict[int, list[Deliverable]] = {}
    for deliverable in Deliverable.objects.filter(
        workspace=workspace,
        extra=True,
        status=Deliverable.Status.DELIVERED,
        period_id__in=[p.pk for p in [*previous.values(), *periods]],
    ):
        extras.setdefault(deliverable.period_id, []).append(deliverable)
    approvals = settled_approvals([workspace.pk], [*previous.values(), *periods])  # closed ones only cover any

    invoices, lines_by_invoice = [], []
    for period, kind in due:
        retainer = period.retainer
        in_advance = period.billing_timing == "advance" and kind == Invoice.Kind.SCHEDULED
        issued_on = period.start_on if in_advance else period.end_on
        if kind == Invoice.Kind.SCHEDULED and period.invoice_held_on is not None:
            issued_on = max(issued_on, today)  # released today: the client gets its full terms to pay
        invoice = Invoice(
            workspace=workspace,
            client_id=retainer.client_id,
            retainer=retainer,
            period=period,
            kind=kind,
            status=Invoice.Status.OPEN,
            currency=period.currency,
            issued_on=issued_on,
            due_on=issued_on + timedelta(days=profile.payment_terms_days),
            period_start_on=period.start_on,
            period_end_on=period.end_on,
            **tax.tax_terms(clients[retainer.client_id], profile).invoice_fields(),
            auto_charge=retainer.auto_charge,
        )
        usage_before = previous.get((period.retainer_id, period.seq - 1))
        lines = invoice_lines(period, usage_before, retainer, extras, kind=kind, approvals=approvals)
        _totals(invoice, lines)
        invoices.append(invoice)
        lines_by_invoice.append(lines)

    def issued(invoice: Invoice) -> date:
        assert invoice.issued_on is not None  # set on each invoice above
        return invoice.issued_on

    # Numbered in the order of their issue dates: a catch-up run issues in-advance invoices (dated
    # at period start) and in-arrears ones (dated at period end) of many periods together.
    order = sorted(range(len(invoices)), key=lambda n: (invoices[n].issued_on, invoices[n].retainer_id, n))
    invoices = [invoices[n] for n in order]
    lines_by_invoice = [lines_by_invoice[n] for n in order]
    numbers: dict[int, list[str]] = {}
    for year in sorted({issued(i).year for i in invoices}):
        numbers[year] = _take_numbers(workspace.pk, year, sum(issued(i).year == year for i in invoices))
    now = timezone.now()
    for invoice in invoices:
        invoice.number = numbers[issued(invoice).year].pop(0)
        invoice.delivery_due_at = now
        invoice.delivered_at = None if deliver else now  # not delivering is a decision, not a loss
        if invoice.total_minor == 0:
            invoice.status, invoice.paid_at = Invoice.Status.PAID, now
    insert_all(invoices)
    all_lines = []
    for invoice, lines in zip(invoices, lines_by_invoice, strict=True):
        for position, line in enumerate(lines):
            line.workspace, line.invoice, line.position = workspace, invoice, position
            all_lines.append(line)
    insert_all(all_lines)
    insert_all(
        [
            audit.event(
                workspace=workspace.pk,
                actor=None,
                action="invoice.issued",
                target=invoice,
                summary=f"Invoice {invoice.number} (billing run)",
                amount_minor=invoice.total_minor,
                currency=invoice.currency,
            )
            for invoice in invoices
        ]
    )
    _apply_carried_credits(workspace.pk, invoices, now=now)
    ids = [invoice.pk for invoice in invoices]
    if deliver:
        _after_issue(ids, as_of=today)
    return ids


@dataclass
class RunSummary:
    started: bool
    workspaces: int = 0
    invoices: int = 0
    periods_closed: int = 0


def workspaces_to_bill() -> list[int]:
    return list(
        Workspace.objects.filter(Exists(Retainer.objects.filter(workspace=OuterRef("pk")).exclude(status="ended")))
        .order_by("pk")
        .values_list("pk", flat=True)
    )


@tenancy.scan("billing run: which workspaces have periods due")
def run_billing(*, as_of: date | None = None, inline: bool = False) -> RunSummary:
    """The billing run: one at a time (a session advisory lock; a second run returns at once),
    fanning out one task per workspace, or billing each inline (the management command)."""
    from billing import tasks

    with single_run(BILLING_RUN_LOCK) as started:
        if not started:
            return RunSummary(started=False)
        summary = RunSummary(started=True)
        for workspace_id in workspaces_to_bill():
            summary.workspaces += 1
            if inline:
                result = bill_workspace(workspace_id=workspace_id, as_of=as_of)
                summary.invoices += len(result.invoices)
                summary.periods_closed += result.periods_closed
            else:
                tasks.bill_workspace.delay(workspace_id, as_of.isoformat() if as_of else None)
        return summary


# --- Invoices by hand, payments, credit notes -------------------------------------------


@transaction.atomic
def create_invoice(
    *, client: Client, lines: list[tuple[str, Decimal, int]], memo: str = "", currency: str | None = None
) -> Invoice:
    """A draft invoice with manual lines (description, quantity, unit price in minor units), in
    `currency` or else the client's (`clients.selectors.client_currency`), taxed as the client is."""
    if not lines:
        raise BillingError("Add at least one line.")
    profile = profile_for(client.workspace)
    invoice = Invoice.objects.create(
        workspace_id=client.workspace_id,
        client=client,
        kind=Invoice.Kind.MANUAL,
        currency=currency or client_currency(client),
        **tax.tax_terms(client, profile).invoice_fields(),
        memo=memo,
    )
    rows = [
        InvoiceLine(
            workspace_id=client.workspace_id,
            invoice=invoice,
            kind=InvoiceLine.Kind.MANUAL,
            description=description,
            quantity=quantity,
            unit_price_minor=unit_price,
            amount_minor=multiply(unit_price, quantity),
            position=n,
        )
        for n, (description, quantity, unit_price) in enumerate(lines)
    ]
    _totals(invoice, rows)
    if invoice.total_minor > MAX_AMOUNT_MINOR:  # the lines' bound holds in LineForm; their sum is checked here
        total = format_money(invoice.total_minor, invoice.currency, client.workspace.locale or "en_US")
        raise BillingError(
            f"The invoice comes to {total}: {largest_amount(invoice.currency)} at most, the most one card "
            "payment can take. Split it into two invoices."
        )
    InvoiceLine.objects.bulk_create(rows)
    invoice.save(update_fields=["subtotal_minor", "tax_minor", "total_minor"])
    return invoice


@transaction.atomic
def issue_invoice(*, invoice: Invoice, actor: User | None) -> Invoice:
    """Number and issue a draft, applying the client's carried credit. No-op if already issued."""
    workspace = Workspace.objects.get(pk=invoice.workspace_id)
    today = workspace.today()
    numbers = _take_numbers(workspace.pk, today.year, 1)  # sequence row first: the fixed lock order
    sources = _carried_credit_ids(workspace.pk, [invoice.client_id])
    locked = _lock_invoices(invoice.pk, *sources)
    invoice = locked[invoice.pk]
    if invoice.status != Invoice.Status.DRAFT:
        transaction.set_rollback(True)  # give the number back
        return invoice
    profile = profile_for(workspace)
    now = timezone.now()
    # The client's tax treatment as it is at issue is the one the invoice keeps.
    for name, value in tax.tax_terms(invoice.client, profile).invoice_fields().items():
        setattr(invoice, name, value)
    _totals(invoice, list(invoice.lines.all()))
    if invoice.total_minor > MAX_AMOUNT_MINOR:  # the client's rate may have risen since the draft was checked
        raise BillingError(
            f"With {invoice.tax_label} the invoice comes to more than {largest_amount(invoice.currency)}, the most "
            "one card payment can take. Split it into two invoices."
        )
    invoice.number, invoice.issued_on = numbers[0], today
    invoice.due_on = today + timedelta(days=profile.payment_terms_days)
    invoice.status = Invoice.Status.OPEN if invoice.total_minor > 0 else Invoice.Status.PAID
    invoice.paid_at = None if invoice.total_minor > 0 else now
    invoice.delivery_due_at, invoice.delivered_at = now, None
    invoice.save(
        update_fields=[
            "number",
            "issued_on",
            "due_on",
            "status",
            "paid_at",
            "delivery_due_at",
            "delivered_at",
            *TAX_FIELDS,
            "subtotal_minor",
            "tax_minor",
            "total_minor",
        ]
    )
    audit_invoice(invoice, "invoice.issued", actor=actor, amount_minor=invoice.total_minor)
    _apply_carried_credits(workspace.pk, [invoice], now=now, locked=[locked[pk] for pk in sources if pk in locked])
    _after_issue([invoice.pk])
    return invoice


def audit_invoice(
    invoice: Invoice,
    action: str,
    *,
    actor: User | None,
    amount_minor: int | None = None,
    summary: str = "",
    changes: Mapping[str, object] | None = None,
) -> None:
    """The audit row of a change to `invoice` (retainers.audit), in the caller's transaction: its
    state, or money that moved on it (`amount_minor` in the invoice's currency)."""
    audit.record(
        workspace=invoice.workspace_id,
        actor=actor,
        action=action,
        target=invoice,
        summary=summary
        or f"{'Credit note' if invoice.kind == Invoice.Kind.CREDIT_NOTE else 'Invoice'} {invoice.number}",
        amount_minor=amount_minor,
        currency=invoice.currency,
        changes=changes,
    )


def settle_status(invoice: Invoice, *, actor: User | None = None) -> None:
    """Status from what was paid, credited and refunded: paid once nothing is owed (a refund is not
    owed again: see Invoice.owed_minor), open again when something is (the consultant asked for
    a refund back, or a refund failed). Saves the invoice's money fields."""
    if invoice.status not in {Invoice.Status.VOID, Invoice.Status.DRAFT}:
        if invoice.owed_minor == 0:
            if invoice.status != Invoice.Status.PAID:
                audit_invoice(invoice, "invoice.paid", actor=actor, changes={"status": [invoice.status, "paid"]})
                invoice.status = Invoice.Status.PAID
                invoice.paid_at = invoice.paid_at or timezone.now()
            invoice.next_charge_on = None
        elif invoice.status == Invoice.Status.PAID:
            audit_invoice(invoice, "invoice.reopened", actor=actor, changes={"status": ["paid", "open"]})
            invoice.status, invoice.paid_at = Invoice.Status.OPEN, None
    # What is carried to the next invoice is part of the credit balance, never more.
    invoice.carry_credit_minor = min(invoice.carry_credit_minor, invoice.credit_balance_minor)
    invoice.save(
        update_fields=[
            "paid_minor",
            "credited_minor",
            "refunded_minor",
            "carry_credit_minor",
            "status",
            "paid_at",
            "next_charge_on",
        ]
    )


def book_payment(invoice: Invoice, payment: Payment, *, receipt: bool = False, actor: User | None = None) -> None:
    """Add a succeeded payment to its invoice (locked by the caller): settle it, mark its PDF for
    rendering again, queue the receipt when the payment paid something (`receipt`), and tell the
    consultant when it paid more than was left (an overpayment: a credit balance to refund or
    apply to the next invoice, never a silent "paid 216,000 of 108,000")."""
    now = timezone.now()
    owed_before = invoice.owed_minor
    invoice.paid_minor += payment.amount_minor
    audit_invoice(
        invoice,
        "credit.applied" if payment.method == Payment.Method.CREDIT else "payment.received",
        actor=actor,
        amount_minor=payment.amount_minor,
        changes={"payment": payment.pk, "method": payment.method, "stripe_id": payment.stripe_id},
    )
    settle_status(invoice, actor=actor)
    if receipt and owed_before > 0:
        payment.receipt_due_at = now
        payment.save(update_fields=["receipt_due_at"])
    if invoice.credit_balance_minor > 0:
        _tell_overpaid(invoice, payment)
    after_money_moved(invoice, now=now)


def _tell_overpaid(invoice: Invoice, payment: Payment) -> None:
    from billing import notices  # notices reaches this module through paylinks

    context = {
        **notices.invoice_context(invoice),
        "payment": payment,
        "amount": notices.money(payment.amount_minor, invoice),
        "credit": notices.money(invoice.credit_balance_minor, invoice),
        "receipted": payment.receipt_due_at is not None,
    }
    for user_id, email in consultant_recipients(invoice.workspace_id):
        queue_email(
            to=email,
            template="invoice_overpaid_consultant",
            context=context,
            workspace=invoice.workspace,
            key=f"payment-{payment.pk}-overpaid-{user_id}",
        )


@transaction.atomic
def record_payment(
    *,
    invoice: Invoice,
    amount_minor: int,
    method: str,
    actor: User | None = None,
    stripe_id: str = "",
    note: str = "",
    receipt: bool = False,
    received_on: date | None = None,
) -> Payment:
    """A payment received (bank transfer marked by hand, or a card payment Stripe confirmed).
    `received_on` dates a payment recorded after the fact: from the invoice's issue day to today.

    Partial payments leave the invoice open. With a Stripe id, recording twice records once;
    money Stripe took is recorded even beyond the balance (an overpayment, see book_payment),
    while a payment typed by hand may not exceed what is owed.
    """
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.status in {Invoice.Status.DRAFT, Invoice.Status.VOID}:
        raise BillingError("Only an issued, not voided invoice can be paid.")
    if amount_minor <= 0:
        raise BillingError("Enter an amount above zero.", field="amount")
    if stripe_id:
        existing = Payment.objects.filter(workspace_id=invoice.workspace_id, stripe_id=stripe_id).first()
        if existing is not None:
            return existing
    elif amount_minor > invoice.owed_minor:
        raise BillingError("That is more than the invoice's balance.", field="amount")
    if received_on is not None:
        today = Workspace.objects.get(pk=invoice.workspace_id).today()
        if received_on > today:
            raise BillingError("A payment cannot be received in the future.", field="received_on")
        if invoice.issued_on and received_on < invoice.issued_on:
            raise BillingError(
                f"The invoice was issued on {invoice.issued_on:%-d %B %Y}: enter that day or later.",
                field="received_on",
            )
    payment = Payment.objects.create(
        workspace_id=invoice.workspace_id,
        invoice=invoice,
        client_id=invoice.client_id,
        kind=Payment.Kind.PAYMENT,
        status=Payment.Status.SUCCEEDED,
        method=method,
        amount_minor=amount_minor,
        currency=invoice.currency,
        stripe_id=stripe_id,
        note=note,
        recorded_by=actor,
        received_on=received_on,
    )
    book_payment(invoice, payment, receipt=receipt, actor=actor)
    return payment


@transaction.atomic
def void_invoice(*, invoice: Invoice, actor: User | None) -> Invoice:
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.status not in {Invoice.Status.OPEN, Invoice.Status.DRAFT}:
        raise BillingError("Only an open or draft invoice can be voided.")
    if invoice.paid_minor:
        raise BillingError("This invoice has payments: refund them or issue a credit note instead.")
    _refuse_while_charging(invoice)
    now = timezone.now()
    audit_invoice(invoice, "invoice.voided", actor=actor, changes={"status": [invoice.status, "void"]})
    invoice.status, invoice.voided_at, invoice.next_charge_on = Invoice.Status.VOID, now, None
    invoice.save(update_fields=["status", "voided_at", "next_charge_on"])
    after_money_moved(invoice, now=now)  # its PDF no longer asks for payment
    return invoice


def _refuse_while_charging(invoice: Invoice) -> None:
    """A card charge in flight may still succeed: the invoice must stay payable until it ends."""
    if invoice.payments.filter(kind=Payment.Kind.PAYMENT, status=Payment.Status.PENDING).exists():
        raise BillingError("A card payment of this invoice is in progress: wait until it succeeds or fails.")


@transaction.atomic
def mark_uncollectible(*, invoice: Invoice, actor: User | None) -> Invoice:
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.status != Invoice.Status.OPEN:
        raise BillingError("Only an open invoice can be marked uncollectible.")
    _refuse_while_charging(invoice)
    audit_invoice(
        invoice,
        "invoice.uncollectible",
        actor=actor,
        amount_minor=invoice.owed_minor,
        changes={"status": [invoice.status, "uncollectible"]},
    )
    invoice.status, invoice.next_charge_on = Invoice.Status.UNCOLLECTIBLE, None
    invoice.save(update_fields=["status", "next_charge_on"])
    after_money_moved(invoice, now=timezone.now())
    return invoice


@transaction.atomic
def create_credit_note(*, invoice: Invoice, amount_minor: int, reason: str, actor: User | None) -> Invoice:
    """Correct an issued invoice without editing it: a numbered credit note for up to its total.

    The credit reduces what the original still asks for (`credited_minor`). The number is taken
    before the invoice is locked (the one lock order); a refusal rolls both back."""
    workspace = Workspace.objects.get(pk=invoice.workspace_id)
    today = workspace.today()
    [number] = _take_numbers(workspace.pk, today.year, 1)
    original = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if original.kind == Invoice.Kind.CREDIT_NOTE or original.status in {Invoice.Status.DRAFT, Invoice.Status.VOID}:
        raise BillingError("Credit notes are for issued invoices.")
    credited = sum(-c.total_minor for c in original.credit_notes.all())
    if amount_minor <= 0 or amount_minor > original.total_minor - credited:
        raise BillingError("The credit must be above zero and at most what is left to credit.", field="amount")
    if not reason.strip():
        raise BillingError("Say why: the reason is printed on the credit note.", field="reason")
    now = timezone.now()
    # The credit's lines are net of tax at the original's rate: credit the gross amount exactly.
    net = int((Decimal(amount_minor) * 10000 / (10000 + original.tax_rate_bp)).quantize(Decimal("1"), ROUND_HALF_UP))
    note = Invoice.objects.create(
        workspace_id=original.workspace_id,
        client_id=original.client_id,
        retainer_id=original.retainer_id,
        kind=Invoice.Kind.CREDIT_NOTE,
        credit_for=original,
        number=number,
        status=Invoice.Status.PAID,
        currency=original.currency,
        issued_on=today,
        due_on=today,
        **{field: getattr(original, field) for field in TAX_FIELDS},  # the original's tax, as issued
        subtotal_minor=-net,
        tax_minor=-(amount_minor - net),
        total_minor=-amount_minor,
        memo=reason.strip(),
        paid_at=now,
        delivery_due_at=now,
    )
    InvoiceLine.objects.create(
        workspace_id=original.workspace_id,
        invoice=note,
        kind=InvoiceLine.Kind.MANUAL,
        description=f"Credit for invoice {original.number}: {reason.strip()}"[:255],
        quantity=Decimal("1"),
        unit_price_minor=-net,
        amount_minor=-net,
    )
    original.credited_minor += amount_minor
    audit_invoice(
        original,
        "credit_note.issued",
        actor=actor,
        amount_minor=amount_minor,
        changes={"credit_note": note.pk, "number": number, "reason": reason.strip()},
    )
    audit_invoice(
        note,
        "credit_note.issued",
        actor=actor,
        amount_minor=amount_minor,
        changes={"credit_for": original.pk, "number": original.number, "reason": reason.strip()},
    )
    settle_status(original, actor=actor)
    after_money_moved(original, now=now)
    _after_issue([note.pk])
    return note


# --- Credit balances: what an overpaid invoice holds, refunded (billing/refunds.py) or moved on ---


def _carried_credit_ids(workspace_id: int, client_ids: list[int]) -> list[int]:
    return list(
        Invoice.objects.filter(workspace_id=workspace_id, client_id__in=client_ids, carry_credit_minor__gt=0)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def _apply_carried_credits(
    workspace_id: int, invoices: list[Invoice], *, now: datetime, locked: list[Invoice] | None = None
) -> None:
    """Move the credit carried by clients' overpaid invoices onto their invoices just issued (in
    this transaction), oldest credit first, in the same currency. One query when there is none."""
    if locked is None:
        sources = _carried_credit_ids(workspace_id, sorted({i.client_id for i in invoices}))
        locked = list(_lock_invoices(*sources).values()) if sources else []
    for source in locked:
        for target in invoices:
            if source.carry_credit_minor <= 0:
                break
            if (
                target.client_id != source.client_id
                or target.currency != source.currency
                or target.kind == Invoice.Kind.CREDIT_NOTE
                or target.owed_minor <= 0
            ):
                continue
            amount = min(source.carry_credit_minor, target.owed_minor, source.credit_balance_minor)
            source.carry_credit_minor -= amount
            _move_credit(source, target, amount=amount, actor=None, now=now)


def excess_sources(invoice: Invoice, amount_minor: int) -> list[tuple[Payment, int]]:
    """Which payments an excess of `amount_minor` is taken back from: the newest first (the payment
    that overpaid), each at most what is left to refund of it."""
    from billing.refunds import refundable_minor  # refunds calls this module's services

    taken, left = [], amount_minor
    payments = Payment.objects.filter(
        invoice=invoice, kind=Payment.Kind.PAYMENT, status=Payment.Status.SUCCEEDED
    ).order_by("-created_at", "-pk")
    for payment in payments:
        if left <= 0:
            break
        part = min(refundable_minor(payment), left)
        if part > 0:
            taken.append((payment, part))
            left -= part
    return taken


def _move_credit(source: Invoice, target: Invoice, *, amount: int, actor: User | None, now: datetime) -> None:
    """Move `amount` of an overpaid invoice's credit balance onto another invoice of its client: a
    credit-out on the source (a refund of the overpaying payment that moves no money) and a
    credit-in on the target (a payment), so both invoices' totals add up. Both locked by the caller."""
    for paid, part in excess_sources(source, amount):
        out = Payment.objects.create(
            workspace_id=source.workspace_id,
            invoice=source,
            client_id=source.client_id,
            kind=Payment.Kind.REFUND,
            status=Payment.Status.SUCCEEDED,
            method=Payment.Method.CREDIT,
            amount_minor=part,
            currency=source.currency,
            refund_of=paid,
            note=f"Credit moved to invoice {target.number}",
            recorded_by=actor,
            created_at=now,
        )
        source.paid_minor -= part
        credit = Payment.objects.create(
            workspace_id=target.workspace_id,
            invoice=target,
            client_id=target.client_id,
            kind=Payment.Kind.PAYMENT,
            status=Payment.Status.SUCCEEDED,
            method=Payment.Method.CREDIT,
            amount_minor=part,
            currency=target.currency,
            credit_from=out,
            note=f"Credit from invoice {source.number}",
            recorded_by=actor,
            created_at=now,
        )
        audit_invoice(
            source,
            "credit.moved",
            actor=actor,
            amount_minor=part,
            changes={"to_invoice": target.pk, "to_number": target.number, "refund": out.pk},
        )
        book_payment(target, credit, actor=actor)
    settle_status(source, actor=actor)
    after_money_moved(source, now=now)


def apply_credit_balance(*, invoice: Invoice, actor: User | None) -> Invoice | None:
    """Apply an overpaid invoice's credit balance to the client's next invoice: at once to their
    oldest open invoice in the same currency (returned), and what is left, or all of it when there
    is none, when their next invoice is issued (carried). Idempotent: a credit carried or moved is
    not applied twice."""
    target_id = (
        Invoice.objects.filter(
            workspace_id=invoice.workspace_id,
            client_id=invoice.client_id,
            currency=invoice.currency,
            status=Invoice.Status.OPEN,
        )
        .exclude(kind=Invoice.Kind.CREDIT_NOTE)
        .exclude(pk=invoice.pk)
        .order_by("due_on", "pk")
        .values_list("pk", flat=True)
        .first()
    )
    with transaction.atomic():
        locked = _lock_invoices(invoice.pk, *([target_id] if target_id else []))
        source = locked[invoice.pk]
        free = source.free_credit_minor
        if source.kind == Invoice.Kind.CREDIT_NOTE or free <= 0:
            raise BillingError("This invoice has no credit balance left to apply.")
        target = locked.get(target_id) if target_id else None
        if target is not None and (target.status != Invoice.Status.OPEN or target.owed_minor <= 0):
            target = None  # paid meanwhile: carry the credit instead
        now = timezone.now()
        if target is not None:
            _move_credit(source, target, amount=min(free, target.owed_minor), actor=actor, now=now)
            free = source.free_credit_minor
        if free > 0:
            audit_invoice(source, "credit.carried", actor=actor, amount_minor=free)
            source.carry_credit_minor += free
            source.save(update_fields=["carry_credit_minor"])
        return target


@transaction.atomic
def ask_refund_back(*, invoice: Invoice, actor: User | None) -> Invoice:
    """The consultant's "ask for the refunded amount again": refunds count as owed once more, so
    the invoice is open (and chased by dunning) for them."""
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.refunded_minor <= 0 or invoice.balance_minor <= 0:
        raise BillingError("Nothing refunded on this invoice is left to ask for.")
    audit_invoice(invoice, "refund.asked_back", actor=actor, amount_minor=invoice.refunded_minor)
    invoice.refunded_minor = 0
    settle_status(invoice, actor=actor)
    after_money_moved(invoice, now=timezone.now())
    return invoice
