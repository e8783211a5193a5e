"""Workflows of billing: issuing invoices, the scheduled billing run, payments and credit notes.

Lock order, everywhere: the workspace's invoice sequence row, then invoices, then payments.
Stripe and WeasyPrint are never called inside a transaction: they run in tasks after commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from billing.models import (
    BillingProfile,
    Invoice,
    InvoiceLine,
    InvoiceSequence,
    Payment,
)
from clients.models import Client, Retainer
from delivery import services as delivery
from delivery.models import Deliverable, Period
from retainers.fields import MAX_AMOUNT_MINOR, largest_amount
from retainers.models import User, Workspace
from retainers.money import format_money, multiply
from retainers.runs import single_run

log = logging.getLogger(__name__)

BILLING_RUN_LOCK = 7_340_001  # pg advisory lock key of the whole billing run
WORKSPACE_LOCK_NAMESPACE = 7_340_002  # with the workspace id: one billing task per workspace at a time
CLOSE_BATCH = 200  # retainers whose periods close in one transaction


class BillingError(Exception):
    """A billing action that is not allowed; the message is shown to the user."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def profile_for(workspace: Workspace) -> BillingProfile:
    profile, _ = BillingProfile.objects.get_or_create(workspace=workspace)
    return profile


def tax_on(subtotal_minor: int, rate_bp: int) -> int:
    return int((Decimal(subtotal_minor) * rate_bp / 10000).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


def _take_numbers(workspace_id: int, year: int, count: int) -> list[str]:
    """Reserve `count` consecutive numbers, e.g. 2026-0042. The sequence row stays locked until
    commit, so numbers are gapless: a rollback returns them with everything else."""
    InvoiceSequence.objects.get_or_create(workspace_id=workspace_id, year=year)
    sequence = InvoiceSequence.objects.select_for_update().get(workspace_id=workspace_id, year=year)
    first = sequence.last_number + 1
    sequence.last_number += count
    sequence.save(update_fields=["last_number"])
    return [f"{year}-{n:04d}" for n in range(first, first + count)]


def _totals(invoice: Invoice, lines: list[InvoiceLine]) -> None:
    invoice.subtotal_minor = sum(line.amount_minor for line in lines)
    invoice.tax_minor = tax_on(invoice.subtotal_minor, invoice.tax_rate_bp)
    invoice.total_minor = invoice.subtotal_minor + invoice.tax_minor


def _after_issue(invoice_ids: list[int]) -> None:
    """After commit: render each PDF, then send or charge it (billing/tasks.py)."""
    from billing import tasks

    def enqueue() -> None:
        # One producer (one broker connection) for the whole run's invoices, not one per task.
        with tasks.deliver_invoice.app.producer_or_acquire() as producer:
            for invoice_id in invoice_ids:
                tasks.deliver_invoice.apply_async((invoice_id,), producer=producer)

    transaction.on_commit(enqueue)


# --- Scheduled invoices -------------------------------------------------------------


def _lines_for(
    period: Period, previous: Period | None, retainer: Retainer, extras: dict[int, list[Deliverable]], *, kind: str
) -> list[InvoiceLine]:
    """The lines of a retainer period's invoice.

    In advance: this period's fee, plus the overage and extra deliverables of the period
    that just ended. In arrears: this period's fee, overage and extras, at the period's end.
    A closing invoice bills what the last period of an in-advance retainer used beyond its
    fee, since no next invoice will carry it.
    """
    lines = []
    if kind == Invoice.Kind.SCHEDULED:
        last_day = period.end_on - timedelta(days=1)
        lines.append(
            InvoiceLine(
                kind=InvoiceLine.Kind.FEE,
                description=f"{retainer.name}: {period.start_on:%d %b %Y} – {last_day:%d %b %Y}",
                quantity=Decimal("1"),
                unit_price_minor=period.price_minor,
                amount_minor=period.price_minor,
            )
        )
    usage = period if period.billing_timing == "arrears" or kind == Invoice.Kind.CLOSING else previous
    if usage is not None and usage.overage > 0 and usage.overage_rate_minor > 0:
        unit = retainer.get_unit_display().lower()
        lines.append(
            InvoiceLine(
                kind=InvoiceLine.Kind.OVERAGE,
                description=f"Overage: {usage.overage} {unit} beyond the allotment, {usage.start_on:%d %b} – "
                f"{usage.end_on - timedelta(days=1):%d %b %Y}",
                quantity=usage.overage,
                unit_price_minor=usage.overage_rate_minor,
                amount_minor=multiply(usage.overage_rate_minor, usage.overage),
            )
        )
    if usage is not None and usage.extra_deliverable_price_minor > 0:
        for deliverable in extras.get(usage.pk, []):
            lines.append(
                InvoiceLine(
                    kind=InvoiceLine.Kind.EXTRA_DELIVERABLE,
                    description=f"Extra deliverable: {deliverable.name}",
                    quantity=Decimal("1"),
                    unit_price_minor=usage.extra_deliverable_price_minor,
                    amount_minor=usage.extra_deliverable_price_minor,
                )
            )
    return lines


def due_periods(workspace_id: int, today: date):
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


def closing_periods(workspace_id: int, today: date):
    """Last periods of in-advance retainers that ended with overage or extra deliverables
    still to bill: their next invoice never comes, so a closing invoice carries it."""
    successor = Period.objects.filter(retainer=OuterRef("retainer"), seq=OuterRef("seq") + 1)
    billed = Invoice.objects.filter(workspace_id=workspace_id, period=OuterRef("pk"), kind=Invoice.Kind.CLOSING)
    extras = Deliverable.objects.filter(period=OuterRef("pk"), extra=True, status=Deliverable.Status.DELIVERED)
    return (
        Period.objects.filter(
            workspace_id=workspace_id, billing_timing="advance", status=Period.Status.CLOSED, end_on__lte=today
        )
        .filter(Q(overage__gt=0, overage_rate_minor__gt=0) | Q(Exists(extras), extra_deliverable_price_minor__gt=0))
        .exclude(Exists(successor))
        .exclude(Exists(billed))
        .select_related("retainer")
        .order_by("end_on", "retainer_id")
    )


@dataclass
class WorkspaceRun:
    workspace_id: int
    periods_closed: int = 0
    invoices: list[int] = field(default_factory=list)
    skipped: str = ""


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

    # 1. Close ended periods and open the next, a batch of retainers per transaction: set-based
    #    inside, and the retainer rows stay locked for one batch only (people may be logging work).
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

    # 2. Issue the invoices that are due, in one transaction: numbers stay gapless.
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
    due = [(p, Invoice.Kind.SCHEDULED) for p in due_periods(workspace.pk, today)]
    due += [(p, Invoice.Kind.CLOSING) for p in closing_periods(workspace.pk, today)]
    if not due:
        return []
    periods = [p for p, _ in due]
    profile = profile_for(workspace)
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
        workspace=workspace, extra=True, status=Deliverable.Status.DELIVERED, period__in=[*previous.values(), *periods]
    ):
        extras.setdefault(deliverable.period_id, []).append(deliverable)

    invoices, lines_by_invoice = [], []
    for period, kind in due:
        retainer = period.retainer
        in_advance = period.billing_timing == "advance" and kind == Invoice.Kind.SCHEDULED
        issued_on = period.start_on if in_advance else period.end_on
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
            tax_label=profile.tax_label,
            tax_rate_bp=profile.tax_rate_bp,
            auto_charge=retainer.auto_charge,
        )
        lines = _lines_for(period, previous.get((period.retainer_id, period.seq - 1)), retainer, extras, kind=kind)
        _totals(invoice, lines)
        invoices.append(invoice)
        lines_by_invoice.append(lines)

    # Numbered in the order of their issue dates: a catch-up run issues in-advance invoices (dated
    # at period start) and in-arrears ones (dated at period end) of many periods together.
    order = sorted(range(len(invoices)), key=lambda n: (invoices[n].issued_on, invoices[n].retainer_id, n))
    invoices = [invoices[n] for n in order]
    lines_by_invoice = [lines_by_invoice[n] for n in order]
    numbers: dict[int, list[str]] = {}
    for year in sorted({i.issued_on.year for i in invoices}):
        numbers[year] = _take_numbers(workspace.pk, year, sum(i.issued_on.year == year for i in invoices))
    for invoice in invoices:
        invoice.number = numbers[invoice.issued_on.year].pop(0)
        if invoice.total_minor == 0:
            invoice.status, invoice.paid_at = Invoice.Status.PAID, timezone.now()
    Invoice.objects.bulk_create(invoices)
    all_lines = []
    for invoice, lines in zip(invoices, lines_by_invoice, strict=True):
        for position, line in enumerate(lines):
            line.workspace, line.invoice, line.position = workspace, invoice, position
            all_lines.append(line)
    InvoiceLine.objects.bulk_create(all_lines)
    ids = [invoice.pk for invoice in invoices]
    if deliver:
        _after_issue(ids)
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
def create_invoice(*, client: Client, lines: list[tuple[str, Decimal, int]], memo: str = "") -> Invoice:
    """A draft invoice with manual lines (description, quantity, unit price in minor units)."""
    if not lines:
        raise BillingError("Add at least one line.")
    profile = profile_for(client.workspace)
    invoice = Invoice.objects.create(
        workspace_id=client.workspace_id,
        client=client,
        kind=Invoice.Kind.MANUAL,
        currency=client.workspace.currency,
        tax_label=profile.tax_label,
        tax_rate_bp=profile.tax_rate_bp,
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
    """Number and issue a draft. No-op if already issued."""
    workspace = Workspace.objects.get(pk=invoice.workspace_id)
    today = workspace.today()
    numbers = _take_numbers(workspace.pk, today.year, 1)  # sequence row first: the fixed lock order
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.status != Invoice.Status.DRAFT:
        transaction.set_rollback(True)  # give the number back
        return invoice
    profile = profile_for(workspace)
    invoice.number, invoice.issued_on = numbers[0], today
    invoice.due_on = today + timedelta(days=profile.payment_terms_days)
    invoice.status = Invoice.Status.OPEN if invoice.total_minor > 0 else Invoice.Status.PAID
    invoice.save(update_fields=["number", "issued_on", "due_on", "status"])
    _after_issue([invoice.pk])
    return invoice


def settle_status(invoice: Invoice) -> None:
    """Status from what was paid: paid in full, or open again after a refund."""
    if invoice.status in {Invoice.Status.VOID, Invoice.Status.DRAFT}:
        return
    if invoice.paid_minor + invoice.credited_minor >= invoice.total_minor:
        invoice.status = Invoice.Status.PAID
        invoice.paid_at = invoice.paid_at or timezone.now()
        invoice.next_charge_on = None
    elif invoice.status == Invoice.Status.PAID:
        invoice.status, invoice.paid_at = Invoice.Status.OPEN, None
    invoice.save(update_fields=["paid_minor", "credited_minor", "status", "paid_at", "next_charge_on"])


@transaction.atomic
def record_payment(
    *,
    invoice: Invoice,
    amount_minor: int,
    method: str,
    actor: User | None = None,
    stripe_id: str = "",
    note: str = "",
) -> Payment:
    """A payment received (bank transfer marked by hand, or a card payment Stripe confirmed).

    Partial payments leave the invoice open. With a Stripe id, recording twice records once.
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
    elif amount_minor > invoice.balance_minor:
        raise BillingError("That is more than the invoice's balance.", field="amount")
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
    )
    invoice.paid_minor += amount_minor
    settle_status(invoice)
    return payment


@transaction.atomic
def void_invoice(*, invoice: Invoice, actor: User | None) -> Invoice:
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.status not in {Invoice.Status.OPEN, Invoice.Status.DRAFT}:
        raise BillingError("Only an open or draft invoice can be voided.")
    if invoice.paid_minor:
        raise BillingError("This invoice has payments: refund them or issue a credit note instead.")
    _refuse_while_charging(invoice)
    invoice.status, invoice.voided_at, invoice.next_charge_on = Invoice.Status.VOID, timezone.now(), None
    invoice.save(update_fields=["status", "voided_at", "next_charge_on"])
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
    invoice.status, invoice.next_charge_on = Invoice.Status.UNCOLLECTIBLE, None
    invoice.save(update_fields=["status", "next_charge_on"])
    return invoice


@transaction.atomic
def create_credit_note(*, invoice: Invoice, amount_minor: int, reason: str, actor: User | None) -> Invoice:
    """Correct an issued invoice without editing it: a numbered credit note for up to its total.

    The credit reduces what the original still asks for (`credited_minor`)."""
    original = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if original.kind == Invoice.Kind.CREDIT_NOTE or original.status in {Invoice.Status.DRAFT, Invoice.Status.VOID}:
        raise BillingError("Credit notes are for issued invoices.")
    credited = sum(-c.total_minor for c in original.credit_notes.all())
    if amount_minor <= 0 or amount_minor > original.total_minor - credited:
        raise BillingError("The credit must be above zero and at most what is left to credit.", field="amount")
    if not reason.strip():
        raise BillingError("Say why: the reason is printed on the credit note.", field="reason")
    workspace = Workspace.objects.get(pk=original.workspace_id)
    today = workspace.today()
    [number] = _take_numbers(workspace.pk, today.year, 1)
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
        tax_label=original.tax_label,
        tax_rate_bp=original.tax_rate_bp,
        subtotal_minor=-net,
        tax_minor=-(amount_minor - net),
        total_minor=-amount_minor,
        memo=reason.strip(),
        paid_at=timezone.now(),
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
    settle_status(original)
    _after_issue([note.pk])
    return note
