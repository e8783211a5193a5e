"""Dunning: failed automatic charges retried on the workspace's schedule, overdue notices and
reminders, and retainers paused on unpaid invoices. The daily run (`manage.py run_dunning`,
beat) does both, idempotently and catching up."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from billing import stripe_api
from billing.charges import STALE_PENDING_AFTER, charge_invoice
from billing.models import BillingProfile, Invoice, Payment
from billing.notices import invoice_context, pdf_attachment, tell_overdue
from billing.paylinks import client_email
from billing.services import profile_for
from clients.models import Retainer
from delivery import services as delivery
from retainers import tenancy
from retainers.daily import claim_days
from retainers.models import DailyRun, Email, Workspace
from retainers.outbox import queue_email
from retainers.services import consultant_recipients

log = logging.getLogger(__name__)


@dataclass
class DunningSummary:
    charges: int = 0
    overdue_notices: int = 0
    reminders: int = 0
    paused: int = 0
    errors: int = 0


def _today(invoice: Invoice, as_of: date | None, days: dict[int, date] | None) -> date:
    """The business date an invoice is dunned as of: the command's `--as-of`, the local day its
    workspace was claimed for, or its workspace's date now."""
    if as_of is not None:
        return as_of
    if days is not None:
        return days[invoice.workspace_id]
    return invoice.workspace.today()


def due_charge_ids(as_of: date | None = None, *, days: dict[int, date] | None = None) -> list[int]:
    """Open auto-charge invoices whose retry date has come in their workspace (or as of `as_of`),
    and those whose charge has been in flight so long that its task must have died. With `days`
    ({workspace id: local date}, the workspaces claimed for today), only those workspaces'."""
    horizon = as_of or (timezone.now().date() + timedelta(days=1))  # no workspace is further ahead than UTC+14h
    stale = Payment.objects.filter(
        method=Payment.Method.CARD,
        status=Payment.Status.PENDING,
        created_at__lt=timezone.now() - STALE_PENDING_AFTER,
    ).values("invoice_id")
    candidates = (
        Invoice.objects.filter(
            Q(status=Invoice.Status.OPEN, auto_charge=True, next_charge_on__lte=horizon)
            # A charge in flight is settled whatever became of the invoice meanwhile (paid by hand:
            # if the card paid too, that is an overpayment to flag, not to lose).
            | Q(pk__in=stale, status__in=[Invoice.Status.OPEN, Invoice.Status.PAID, Invoice.Status.UNCOLLECTIBLE])
        )
        .select_related("workspace")
        .order_by("pk")
    )
    if days is not None:
        candidates = candidates.filter(workspace_id__in=list(days))
    return [
        invoice.pk
        for invoice in candidates
        if invoice.next_charge_on is None or invoice.next_charge_on <= _today(invoice, as_of, days)
    ]


def retry_due_charges(as_of: date | None = None, *, days: dict[int, date] | None = None) -> DunningSummary:
    """Retry every charge that is due, in this process. Idempotent: a retry done is not due again."""
    summary = DunningSummary()
    for invoice_id in due_charge_ids(as_of, days=days):
        try:
            retry_charge(invoice_id, as_of=as_of)
            summary.charges += 1
        except stripe_api.StripeUnavailable:
            log.warning("dunning: Stripe unavailable for invoice %s; the next run retries", invoice_id)
            summary.errors += 1
    return summary


@tenancy.per_row("billing.Invoice")
def retry_charge(invoice_id: int, *, as_of: date | None = None) -> None:
    invoice = Invoice.objects.select_related("workspace", "client").get(pk=invoice_id)
    if not charge_invoice(invoice, as_of=as_of):
        # The card can no longer be charged (removed, Stripe disconnected): stop retrying.
        Invoice.objects.filter(pk=invoice_id).update(next_charge_on=None)


def send_overdue_reminders(as_of: date | None = None, *, days: dict[int, date] | None = None) -> DunningSummary:
    """Tell both sides once when an invoice is overdue, remind the client on the workspace's
    offsets (days after due, each once), and pause retainers set to pause on unpaid invoices.

    Idempotent and catching up: each notice is claimed with a conditional UPDATE and keyed in
    the outbox. After downtime, only the latest reminder that came due is sent (the ones it
    replaces are not sent late). With `days`, only the workspaces claimed for those local dates.
    """
    summary = DunningSummary()
    horizon = as_of or (timezone.now().date() + timedelta(days=1))  # no workspace is further ahead than UTC+14h
    overdue = (
        Invoice.objects.filter(status=Invoice.Status.OPEN, due_on__lt=horizon)
        .exclude(kind=Invoice.Kind.CREDIT_NOTE)
        .select_related("workspace", "client", "retainer")
        .order_by("workspace_id", "pk")
    )
    if days is not None:
        overdue = overdue.filter(workspace_id__in=list(days))
    profiles: dict[int, BillingProfile] = {}
    for invoice in overdue.iterator(chunk_size=500):
        today = _today(invoice, as_of, days)
        if not invoice.is_overdue(on=today):
            continue
        if invoice.workspace_id not in profiles:
            profiles[invoice.workspace_id] = profile_for(invoice.workspace)
        profile = profiles[invoice.workspace_id]
        if invoice.overdue_notified_at is None:
            with transaction.atomic():
                summary.overdue_notices += tell_overdue(invoice, today=today)
        summary.reminders += _send_reminder(invoice, profile=profile, today=today)
        if _pause_for_unpaid(invoice, today=today):
            summary.paused += 1
    return summary


def _send_reminder(invoice: Invoice, *, profile: BillingProfile, today: date) -> bool:
    assert invoice.due_on is not None  # only overdue invoices come here
    offsets = sorted({int(days) for days in profile.reminder_offsets or [] if int(days) > 0})
    came_due = [days for days in offsets if invoice.due_on + timedelta(days=days) <= today]
    if len(came_due) <= invoice.reminders_sent:
        return False
    with transaction.atomic():
        # Claim: one run moves the counter; a concurrent run's UPDATE matches nothing.
        claimed = Invoice.objects.filter(pk=invoice.pk, reminders_sent=invoice.reminders_sent).update(
            reminders_sent=len(came_due)
        )
        to = client_email(invoice)
        if not claimed or not to:
            return False
        queue_email(
            to=to,
            template="invoice_overdue",
            client_id=invoice.client_id,
            context={
                **invoice_context(invoice),
                "days_overdue": (today - invoice.due_on).days,
                "is_overdue": True,
                "reminder": True,
            },
            workspace=invoice.workspace,
            key=f"invoice-{invoice.pk}-reminder-{came_due[-1]}",
            attachments=pdf_attachment(invoice),
        )
    return True


def _pause_for_unpaid(invoice: Invoice, *, today: date) -> bool:
    """Pause the invoice's retainer once when the invoice is its `pause_after_unpaid_days` overdue.

    Once per invoice: the notice to the consultant is the record that it was done, so resuming
    the retainer by hand is not undone by the next run.
    """
    assert invoice.due_on is not None  # only overdue invoices come here
    retainer = invoice.retainer
    if (
        retainer is None
        or retainer.pause_after_unpaid_days is None
        or retainer.status != Retainer.Status.ACTIVE
        or invoice.due_on + timedelta(days=retainer.pause_after_unpaid_days) > today
    ):
        return False
    marker = f"invoice-{invoice.pk}-paused"
    with transaction.atomic():
        if Email.objects.filter(key__startswith=marker + "-").exists():
            return False
        try:
            retainer = delivery.pause_retainer(retainer=retainer, on=today)
        except delivery.DeliveryError:
            return False  # paused or ended meanwhile
        context = {**invoice_context(invoice), "retainer": retainer, "days_overdue": (today - invoice.due_on).days}
        for user_id, email in consultant_recipients(invoice.workspace_id):
            queue_email(
                to=email,
                template="retainer_paused",
                context=context,
                workspace=invoice.workspace,
                key=f"{marker}-{user_id}",
            )
    return True


@tenancy.scan("dunning run: due charges and overdue invoices of every workspace")
def run_dunning(*, as_of: date | None = None, inline: bool = False, now: datetime | None = None) -> DunningSummary:
    """The dunning run: charge retries (inline, or one task each) and the overdue notices.

    Beat runs it hourly: each workspace is processed once per local day, after
    `DAILY_JOBS_LOCAL_HOUR` in its time zone (`retainers.daily`). With `as_of` (the command's
    `--as-of`), every workspace is processed as of that date, whatever the hour; each notice and
    retry is still done once."""
    from billing import tasks

    days = None
    if as_of is None:
        days = claim_days(DailyRun.Job.DUNNING, Workspace.objects.values_list("pk", flat=True), now=now)
    summary = DunningSummary()
    if inline:
        summary = retry_due_charges(as_of, days=days)
    else:
        for invoice_id in due_charge_ids(as_of, days=days):
            tasks.retry_charge.delay(invoice_id, as_of.isoformat() if as_of else None)
            summary.charges += 1
    notices = send_overdue_reminders(as_of, days=days)
    summary.overdue_notices, summary.reminders, summary.paused = (
        notices.overdue_notices,
        notices.reminders,
        notices.paused,
    )
    return summary
