"""The demo workspace's back office: invoices and payments, notes, messages, tasks and renewals.

Played after the delivery history (demo/northwind.py), through the product's own services:
the billing run bills the history as it would have run day by day, payments are recorded by
hand as bank transfers (the demo has no Stripe account), the renewals run opens what is due
and Alice sends Carol her proposal, and the reminders job runs once. Dates are pinned to the
workspace's today and the draws come from the seed's `random.Random`, so the demo is the
same on every run of the same day.

What the services cannot know is set afterwards, here and nowhere else:

- when: a service stamps "now", but the demo's invoices, payments, notes and messages
  happened over the past months. Their timestamps are moved to their day in the story.
- what was sent: everything the seed queued in the outbox is marked sent (it went out
  back then), and the history is billed with `deliver=False` (no PDF, email or card charge
  after commit). Otherwise the first `make run` would email every client its whole history.
  Invoice PDFs are rendered when first downloaded.

Every invoice past its due date is paid but one: Globex has paid nothing since it, and its
coaching is paused. Acme's invoice of this period is paid in part. So the dashboard and the
portal have something to chase, and exactly one thing overdue.
"""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta

from django.db.models import F, Max
from django.utils import timezone

from billing import services as billing
from billing.models import Invoice, Payment
from clients.models import Client, Contact
from communication import reminders
from communication import services as communication
from communication.models import Message, Note
from delivery.models import Period, WorkItem
from renewals import services as renewals
from renewals.models import Renewal
from retainers import audit
from retainers.models import Email, Membership, User, Workspace

PAYMENT_TERMS_DAYS = 30  # net 30: an invoice of the current period is never overdue yet, whatever today is
PAID_AFTER_DAYS = (2, 25)  # always inside the terms: every invoice due before today is paid, bar the overdue one
OVERDUE_CLIENT = "Globex Ltd"
PART_PAID_CLIENT = "Acme Corp"


def latest_email_id() -> int:
    """Where the outbox stands before seeding: what is queued after this id, the seed queued."""
    return Email.objects.aggregate(latest=Max("pk"))["latest"] or 0


def play_back_office(*, workspace: Workspace, alice: User, bob: User, rng: random.Random, today: date) -> None:
    """Bill and collect the history, write the notes, open the renewals, then the thread and the tasks.

    In this order because the renewal's evidence reads the payments and the shared notes.
    """
    clients = {client.name: client for client in Client.objects.for_workspace(workspace).select_related("workspace")}
    acme = clients["Acme Corp"]
    set_up_billing(workspace)
    invoices = bill_history(workspace, rng=rng, today=today)
    overdue = next(
        (
            i
            for i in reversed(invoices)
            if i.client.name == OVERDUE_CLIENT and i.due_on is not None and i.due_on < today
        ),
        None,
    )
    collect_payments(invoices, overdue=overdue, actor=alice, rng=rng, today=today)
    session = latest_session(acme, today=today)
    write_notes(clients, alice=alice, bob=bob, session=session, overdue=overdue, today=today)
    renewal = open_renewals(workspace, client=acme, actor=alice)
    write_thread(acme, alice=alice, today=today)
    add_tasks(clients, alice=alice, bob=bob, session=session, renewal=renewal, overdue=overdue, today=today)
    # Reminders that fell due in the story (low balances, the overdue task) go out now, and are
    # marked sent with the rest, instead of on the first run of the job.
    reminders.remind_workspace(workspace=workspace, now=timezone.now())


def at(workspace: Workspace, day: date, hour: int, minute: int = 0) -> datetime:
    """That time of the day in the workspace's zone."""
    return datetime.combine(day, time(hour, minute), tzinfo=workspace.tzinfo)


def happened_at(workspace: Workspace, day: date, hour: int, minute: int = 0) -> datetime:
    """When something of the story happened: that time, or now if that time is still to come today."""
    return min(at(workspace, day, hour, minute), timezone.now())


# --- Billing ------------------------------------------------------------------------------------


def set_up_billing(workspace: Workspace) -> None:
    """Who Northwind is on its invoices, UK VAT, net 30 and bank details (the billing settings page
    writes the profile the same way; there is no service for it)."""
    profile = billing.profile_for(workspace)
    profile.legal_name = "Northwind Advisory Ltd"
    profile.address = "12 Harbour Street\nBristol BS1 4QA\nUnited Kingdom"
    profile.tax_id = "GB 123 4567 89"
    profile.tax_label, profile.tax_rate_bp = "VAT", 2000
    profile.payment_terms_days = PAYMENT_TERMS_DAYS
    profile.payment_instructions = (
        "Bank transfer to Northwind Advisory Ltd, sort code 12-34-56, account 12345678. "
        "Please quote the invoice number."
    )
    profile.save()


def bill_history(workspace: Workspace, *, rng: random.Random, today: date) -> list[Invoice]:
    """Issue every invoice of the history with the billing run, as it ran on each day a period
    began or ended, so invoice numbers follow the issue dates (one catch-up run as of today
    numbers them by period start, arrears and in-advance invoices interleaved). They were
    emailed on their issue day, so that is when they were created and sent."""
    bounds = Period.objects.for_workspace(workspace).values_list("start_on", "end_on")
    days = sorted({day for pair in bounds for day in pair if day <= today})
    issued: list[int] = []
    for day in days:  # already delivered on their day: no PDF, email or charge now
        with audit.recorded_at(happened_at(workspace, day, 9)):
            issued += billing.bill_workspace(workspace_id=workspace.pk, as_of=day, deliver=False).invoices
    invoices = list(
        Invoice.objects.filter(pk__in=issued).select_related("workspace", "client").order_by("issued_on", "pk")
    )
    for invoice in invoices:
        assert invoice.issued_on is not None  # issued by the billing run
        issued_at = happened_at(workspace, invoice.issued_on, 9, rng.randint(0, 40))
        Invoice.objects.filter(pk=invoice.pk).update(created_at=issued_at, sent_at=issued_at)
    return invoices


def collect_payments(
    invoices: list[Invoice], *, overdue: Invoice | None, actor: User, rng: random.Random, today: date
) -> None:
    """Each client pays by bank transfer a few days after the invoice, recorded by Alice.

    Inside the terms, so only the invoices of the last few weeks may still be open (not due
    yet). The overdue client has paid nothing since `overdue`; the part-paid client's latest
    invoice gets half.
    """
    part_paid = next((i for i in reversed(invoices) if i.client.name == PART_PAID_CLIENT), None)
    for invoice in invoices:
        assert invoice.issued_on is not None  # issued by the billing run
        paid_on = invoice.issued_on + timedelta(days=rng.randint(*PAID_AFTER_DAYS))
        paid_at = happened_at(invoice.workspace, min(paid_on, today), rng.randint(9, 17), rng.randint(0, 59))
        if invoice.status != Invoice.Status.OPEN or stopped_paying(invoice, since=overdue):
            continue
        if invoice == part_paid:  # half, in whole pounds
            amount, note = invoice.balance_minor // 200 * 100, f"Part payment, ref {invoice.number}"
        elif paid_on <= today:
            amount, note = invoice.balance_minor, f"Bank transfer, ref {invoice.number}"
        else:
            continue
        with audit.recorded_at(paid_at):
            payment = billing.record_payment(
                invoice=invoice, amount_minor=amount, method=Payment.Method.BANK_TRANSFER, actor=actor, note=note
            )
        Payment.objects.filter(pk=payment.pk).update(created_at=paid_at)
        Invoice.objects.filter(pk=invoice.pk, paid_at__isnull=False).update(paid_at=paid_at)


def stopped_paying(invoice: Invoice, *, since: Invoice | None) -> bool:
    if since is None or invoice.client_id != since.client_id:
        return False
    assert invoice.issued_on is not None and since.issued_on is not None  # issued by the billing run
    return invoice.issued_on >= since.issued_on


# --- Notes, the message thread, tasks --------------------------------------------------------


def latest_session(client: Client, *, today: date) -> WorkItem | None:
    """The client's last session before today: its notes are shared, and it is followed up today."""
    return (
        WorkItem.objects.filter(
            workspace_id=client.workspace_id,
            retainer__client=client,
            billable=True,
            removed_at=None,
            delivered_on__lt=today,
        )
        .order_by("-delivered_on", "-pk")
        .first()
    )


def write_notes(
    clients: dict[str, Client],
    *,
    alice: User,
    bob: User,
    session: WorkItem | None,
    overdue: Invoice | None,
    today: date,
) -> None:
    """Private notes for the team and shared ones the client reads in the portal, in Markdown."""
    acme, private, shared = clients["Acme Corp"], Note.Visibility.PRIVATE, Note.Visibility.SHARED
    notes: list[tuple[Client, User, str, str, WorkItem | None, date, int]] = [
        (acme, alice, private, ACME_ACCOUNT_PLAN, None, today - timedelta(days=24), 8),
        (acme, alice, shared, ACME_GO_LIVE, None, today - timedelta(days=9), 15),
        (clients["Initech"], bob, shared, INITECH_CALENDAR, None, today - timedelta(days=12), 11),
        (clients["Vandelay Industries"], bob, private, VANDELAY_OVERAGE, None, today - timedelta(days=31), 14),
    ]
    if session is not None:
        notes.append((acme, alice, shared, SESSION_SUMMARY, session, session.delivered_on, 17))
    if overdue is not None:
        assert overdue.due_on is not None  # chosen for being past it
        body = GLOBEX_PAUSE.format(number=overdue.number, due_on=f"{overdue.due_on.day} {overdue.due_on:%B}")
        notes.append((overdue.client, alice, private, body, None, today - timedelta(days=2), 10))
    for client, author, visibility, body, on_session, day, hour in notes:
        note = communication.create_note(
            client=client, author=author, body=body, visibility=visibility, session=on_session
        )
        written_at = happened_at(client.workspace, day, hour, 30)
        Note.objects.filter(pk=note.pk).update(created_at=written_at, updated_at=written_at)


def write_thread(acme: Client, *, alice: User, today: date) -> None:
    """Alice and Carol over the last week; Carol's latest message is waiting to be read."""
    carol = Contact.objects.get(workspace_id=acme.workspace_id, client=acme, portal_access=True)
    for days_ago, hour, minute, author, body in THREAD:
        sent_at = happened_at(acme.workspace, today - timedelta(days=days_ago), hour, minute)
        # Whoever answers has read what came before.
        if author == "carol":
            communication.mark_read_by_client(client=acme, now=sent_at - timedelta(minutes=12))
            message = communication.send_contact_message(contact=carol, body=body)
            Message.objects.filter(pk=message.pk).update(created_at=sent_at, read_by_client_at=sent_at)
        else:
            communication.mark_read_by_team(client=acme, now=sent_at - timedelta(minutes=7))
            message = communication.send_team_message(client=acme, author=alice, body=body)
            Message.objects.filter(pk=message.pk).update(created_at=sent_at, read_by_team_at=sent_at)


def add_tasks(
    clients: dict[str, Client],
    *,
    alice: User,
    bob: User,
    session: WorkItem | None,
    renewal: Renewal | None,
    overdue: Invoice | None,
    today: date,
) -> None:
    """Follow-ups: one overdue, one due today (suggested after Acme's last session), one next week,
    and one on the renewal."""
    workspace = clients["Acme Corp"].workspace
    if overdue is not None:
        communication.create_task(
            client=overdue.client,
            title=f"Call Hank about invoice {overdue.number} before coaching resumes",
            due_at=at(workspace, today - timedelta(days=3), 9),
            actor=alice,
            assignee=alice,
        )
    if session is not None:
        days = (today - session.delivered_on).days
        communication.suggest_follow_up(session=session, days=days, actor=alice)
    communication.create_task(
        client=clients["Initech"],
        title="Agree next month's newsletter topics with Peter",
        due_at=at(workspace, today + timedelta(days=7), 10),
        actor=alice,
        assignee=bob,
    )
    if renewal is not None:
        communication.create_task(
            client=renewal.retainer.client,
            title="Ask Carol whether the board has read the renewal proposal",
            due_at=at(workspace, today + timedelta(days=5), 11),
            actor=alice,
            assignee=alice,
            renewal=renewal,
        )


# --- Renewals ---------------------------------------------------------------------------------


def open_renewals(workspace: Workspace, *, client: Client, actor: User) -> Renewal | None:
    """The daily renewals run as of today opens every renewal due; Alice proposes the client a
    full year (its first term was cut short to end with its financial year) and sends it."""
    renewals.process_workspace(workspace_id=workspace.pk)
    renewal = (
        Renewal.objects.filter(workspace=workspace, retainer__client=client, status=Renewal.Status.UPCOMING)
        .select_related("retainer__client")
        .first()
    )
    if renewal is None:  # a short history: the term does not end soon
        return None
    renewal = renewals.save_proposal(
        renewal=renewal,
        terms={"term_periods": 12},
        proposal_text=f"{renewal.proposal_text} {PROPOSAL_FULL_YEAR}",
        actor=actor,
    )
    return renewals.send_proposal(renewal=renewal, actor=actor)


# --- The outbox ---------------------------------------------------------------------------------


def mark_emails_sent(workspace: Workspace, *, after_id: int) -> int:
    """Everything the seed queued went out when it happened: mark it sent, so the worker sends
    nothing on its first run. Only emails to the demo's own people, in case anyone else's
    email was queued meanwhile."""
    addresses = {
        *Membership.objects.for_workspace(workspace).values_list("user__email", flat=True),
        *Contact.objects.for_workspace(workspace).values_list("email", flat=True),
        *Client.objects.for_workspace(workspace).exclude(billing_email="").values_list("billing_email", flat=True),
    }
    return Email.objects.filter(pk__gt=after_id, status=Email.Status.QUEUED, to__in=addresses).update(
        status=Email.Status.SENT, sent_at=F("created_at")
    )


# --- The words ------------------------------------------------------------------------------------

ACME_ACCOUNT_PLAN = """\
**Account plan**

- Carol runs operations; Dev Patel signs the invoices and watches the overage line.
- The warehouse amendment took them to 25 hours. Usage since then says it was the right call.
- Renewal: keep rollover, ask about a quarterly review with the board.
"""

ACME_GO_LIVE = """\
## Warehouse go-live checklist

1. Pick-rate baseline agreed (120 lines an hour by the end of the quarter)
2. Shift rota signed off by the shift leads
3. Supplier scorecards in place for the top ten suppliers
4. First weekly KPI review booked

Anything missing? Reply in *Messages* and I will add it.
"""

SESSION_SUMMARY = """\
**What we covered**

- Went through the open actions from last time: two closed, one moved to next week.
- Agreed who owns the supplier scorecard: Carol's team, with a first draft from us.

**Next steps**

1. Carol to share the draft shift rota.
2. Alice to send the scorecard template.
"""

INITECH_CALENDAR = """\
**Editorial calendar, next month**

| Week | Piece |
|---|---|
| 1 | Monthly performance report |
| 2 | Article: *Five TPS habits worth keeping* |
| 3 | Article: customer story with the Austin office |
| 4 | Newsletter issue |
"""

VANDELAY_OVERAGE = """\
Art went over the allotment in the first quarter (the import audit). Under the **carry** policy
the excess came off the next quarter; explained it on the call and he was fine with it.
Keep an eye on it before the next quarter starts.
"""

GLOBEX_PAUSE = """\
Hank asked to pause coaching until the leadership offsite is rescheduled.
Invoice {number} (due {due_on}) is still unpaid: **chase it before we resume.**
"""

PROPOSAL_FULL_YEAR = "This time for a full year: the first term was shorter so that it ends with your financial year."

THREAD = [  # days before today, hour, minute, who, what: plain text, as messages are shown
    (6, 16, 10, "alice", (
        "Hi Carol, the notes from our last session are in the portal under “Shared notes”. "
        "I have also added a go-live checklist for the warehouse."
    )),
    (5, 9, 5, "carol", (
        "Thanks Alice. Could we hold next week's check-in at the warehouse, so you can walk the floor "
        "with the shift leads?"
    )),
    (5, 11, 30, "alice", "Good idea. Tuesday at 10:00 on site works for me; I'll bring the pick-rate numbers."),
    (1, 17, 45, "carol", (
        "Tuesday is perfect. Dev asks whether the overage hours could go on a separate invoice line "
        "for the warehouse budget. Is that possible?"
    )),
]  # fmt: skip
