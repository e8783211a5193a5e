"""seed_demo: the demo through the services, and bench workspaces in bulk that keep the same books.

The strongest checks compare the two ways of writing: the demo's stories played into the
bulk writer must give the very rows the services gave, and bulk-written bench retainers
replayed through the real services must end with the same books, period by period.
The demo's back office (invoices, payments, notes, messages, tasks, renewals) is checked for
what a new user sees, and for leaving the worker nothing to send on the first `make run`.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal as D
from io import StringIO
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.db.models import Count, F, Q, Sum
from django.urls import reverse
from django.utils import timezone

from billing.models import Invoice, InvoiceLine, Payment, StripeAccount
from clients import services as client_services
from clients.models import Amendment, Client, Contact, Plan, Retainer
from communication import services as communication
from communication.markdown import plain_text
from communication.models import Message, Note, Task
from dashboard import queries as dashboard
from delivery import services
from delivery.models import Deliverable, LedgerEntry, Period, WorkItem
from delivery.periods import add_months, period_bounds
from demo import bench, catalog, northwind
from demo.mirror import MemoryBooks
from demo.story import ServiceBooks, Story, play
from renewals.models import Renewal
from retainers.models import Email, Membership, User, Workspace
from tests import factories

pytestmark = pytest.mark.django_db
ZERO = D("0")
SMALL = {"workspaces": 3, "clients": 5, "months": 4}
MODELS = [
    User,
    Workspace,
    Membership,
    Plan,
    Client,
    Contact,
    Retainer,
    Amendment,
    Period,
    LedgerEntry,
    WorkItem,
    Deliverable,
    Invoice,
    InvoiceLine,
    Payment,
    Note,
    Message,
    Task,
    Renewal,
    Email,
]


def seed(**options) -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out, **options)
    return out.getvalue()


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in MODELS}


def bench_workspaces() -> list[Workspace]:
    return list(Workspace.objects.filter(slug__startswith="bench-").order_by("slug"))


# --- invariants, for books written either way ---------------------------------------------


def assert_books_balance(workspaces: list[Workspace]) -> None:
    """The ledger's rules, checked over every retainer of the workspaces."""
    retainers = list(Retainer.objects.filter(workspace__in=workspaces))
    assert retainers
    sums: dict[tuple[int, str], D] = defaultdict(lambda: ZERO)
    delivered: dict[int, D] = defaultdict(lambda: ZERO)
    for period_id, kind, has_item, total in (
        LedgerEntry.objects.filter(workspace__in=workspaces)
        .values_list("period_id", "kind", Q(work_item__isnull=False))
        .annotate(total=Sum("quantity"))
    ):
        sums[period_id, kind] += total
        if has_item:
            delivered[period_id] += total
    periods = defaultdict(list)
    for period in Period.objects.filter(workspace__in=workspaces).order_by("retainer_id", "seq"):
        periods[period.retainer_id].append(period)

    for retainer in retainers:
        mine = periods[retainer.pk]
        assert [p.seq for p in mine] == list(range(1, len(mine) + 1))
        open_periods = [p for p in mine if p.status == Period.Status.OPEN]
        if retainer.status == Retainer.Status.ENDED:
            assert open_periods == []
            assert (retainer.balance, retainer.period_used, retainer.period_available) == (0, 0, 0)
        else:
            [current] = open_periods
            assert current is mine[-1] and current.contains(retainer.workspace.today())
            balance = sum((sums[current.pk, kind] for kind in LedgerEntry.Kind.values), ZERO)
            used = -delivered[current.pk]
            assert (retainer.balance, retainer.period_used, retainer.period_available) == (
                balance,
                used,
                balance + used,
            )
        for period, following in zip(mine, [*mine[1:], None], strict=True):
            of = {kind: sums[period.pk, kind] for kind in LedgerEntry.Kind.values}
            bounds = period_bounds(retainer.anchor_on, retainer.cadence, period.anchor_index)
            assert (period.start_on, period.end_on) == bounds
            assert (period.allotted, period.rolled_in) == (of["allotment"], of["rollover_in"])
            if period.status == Period.Status.CLOSED:
                assert sum(of.values(), ZERO) == 0, period
                assert period.used == -delivered[period.pk]
                figures = (period.expired, period.rolled_out, period.overage)
                assert figures == (-of["expiry"], -of["rollover_out"], of["overage"])
            if following is not None:
                assert following.start_on == period.end_on and period.status == Period.Status.CLOSED
                assert following.rolled_in == period.rolled_out
    # Every child row carries its retainer's workspace.
    for model in (Period, LedgerEntry, WorkItem, Deliverable, Amendment):
        assert not model.objects.filter(workspace__in=workspaces).exclude(workspace=F("retainer__workspace")).exists()


# --- the books of one retainer, to compare two retainers ------------------------------------


def books_of(retainer: Retainer, *, exact: bool) -> dict[str, object]:
    """Everything a retainer's history consists of, without ids.

    `exact` compares entries and items one by one, in order; otherwise per-period sums and
    counts, and deliverables with "in progress" read as "planned" (a replay cannot tell
    which unfinished deliverable of a closed period had been started).
    """
    retainer.refresh_from_db()
    seq_of = dict(Period.objects.filter(retainer=retainer).values_list("pk", "seq"))
    books: dict[str, object] = {
        "retainer": (
            retainer.status, retainer.starts_on, retainer.anchor_on, retainer.term_ends_on,
            retainer.cancel_at_period_end, retainer.paused_on, retainer.ended_on,
            retainer.balance, retainer.period_used, retainer.period_available, retainer.terms(),
        ),
        "periods": list(
            Period.objects.filter(retainer=retainer).order_by("seq").values_list(
                "seq", "anchor_index", "start_on", "end_on", "status", "allotted", "rolled_in", "used",
                "expired", "rolled_out", "overage",
            )
        ),
        "amendments": [
            (a.effective_on, a.applied_at is not None, a.terms()) for a in Amendment.objects.filter(retainer=retainer)
        ],
    }  # fmt: skip
    entries = LedgerEntry.objects.filter(retainer=retainer).order_by("pk")
    items = WorkItem.objects.filter(retainer=retainer).order_by("pk")
    deliverables = Deliverable.objects.filter(retainer=retainer).order_by("period__seq", "pk")
    if exact:
        # When each row was written, as the day it shows (the clock of the story, capped at now).
        def day(instant):
            return None if instant is None else timezone.localdate(instant, retainer.workspace.tzinfo)

        books["days"] = (
            day(retainer.created_at),
            [(p.seq, day(p.closed_at)) for p in Period.objects.filter(retainer=retainer).order_by("seq")],
            [(day(a.created_at), day(a.applied_at)) for a in Amendment.objects.filter(retainer=retainer)],
        )
        books["entries"] = [
            (
                seq_of[e.period_id],
                e.kind,
                e.quantity,
                e.origin_seq,
                re.sub(r"#\d+", "#n", e.reason),
                e.work_item_id is not None,
                day(e.created_at),
            )
            for e in entries
        ]
        books["items"] = [
            (seq_of[i.period_id], i.delivered_on, i.quantity, i.description, i.billable, i.removed_at is not None,
             i.replaces_id is not None, i.deliverable.name if i.deliverable else None, day(i.created_at),
             day(i.removed_at))
            for i in items.select_related("deliverable")
        ]  # fmt: skip
        books["deliverables"] = [
            (seq_of[d.period_id], d.name, d.status, d.extra, d.carried_from_id is not None, d.delivered_on,
             day(d.created_at))
            for d in deliverables
        ]  # fmt: skip
    else:
        books["sums"] = sorted(
            (seq_of[period], kind, total)
            for period, kind, total in entries.order_by().values_list("period", "kind").annotate(total=Sum("quantity"))
        )
        books["items"] = sorted(
            (seq_of[period], billable, removed, n)
            for period, billable, removed, n in items.order_by()
            .values_list("period", "billable", Q(removed_at__isnull=False))
            .annotate(n=Count("pk"))
        )
        books["deliverables"] = [
            (seq_of[d.period_id], d.name, "planned" if d.status == "in_progress" else d.status, d.extra,
             d.carried_from_id is not None, d.delivered_on)
            for d in deliverables
        ]  # fmt: skip
    return books


def replay(original: Retainer) -> Retainer:
    """Sign a fresh retainer on the same plan and replay the original's history through the services."""
    client = client_services.create_client(workspace=original.workspace, name=f"Replay of {original.pk}")
    retainer = services.create_retainer(
        client=client, name=original.name, starts_on=original.starts_on, plan=original.plan
    )
    copies: dict[int, WorkItem] = {}
    replaced = set(
        WorkItem.objects.filter(retainer=original, replaces__isnull=False).values_list("replaces_id", flat=True)
    )
    periods = list(Period.objects.filter(retainer=original).order_by("seq"))
    for period in periods:
        mine = services.open_period(retainer)
        assert (mine.seq, mine.start_on, mine.end_on) == (period.seq, period.start_on, period.end_on)
        for name in Deliverable.objects.filter(period=period, extra=True, carried_from=None).values_list(
            "name", flat=True
        ):
            services.add_deliverable(retainer=retainer, name=name, actor=None)
        deliverables = dict(
            zip(
                Deliverable.objects.filter(period=period).order_by("pk").values_list("pk", flat=True),
                Deliverable.objects.filter(period=mine).order_by("pk"),
                strict=True,
            )
        )
        for entry in LedgerEntry.objects.filter(period=period).order_by("pk").select_related("work_item"):
            item = entry.work_item
            if entry.kind == "delivery" and item.replaces_id is not None:
                copies[item.pk] = services.edit_delivery(
                    item=copies[item.replaces_id], delivered_on=item.delivered_on, quantity=item.quantity,
                    description=item.description, billable=True, actor=None,
                )  # fmt: skip
            elif entry.kind == "delivery":
                copies[item.pk] = services.record_delivery(
                    retainer=retainer, delivered_on=item.delivered_on, quantity=item.quantity,
                    description=item.description, actor=None,
                )  # fmt: skip
            elif entry.kind == "reversal" and item.pk not in replaced:
                services.remove_delivery(item=copies[item.pk], actor=None)
            elif entry.kind == "adjustment":
                services.adjust_balance(retainer=retainer, quantity=entry.quantity, reason=entry.reason, actor=None)
        for item in WorkItem.objects.filter(period=period, billable=False).order_by("pk"):
            services.record_delivery(
                retainer=retainer, delivered_on=item.delivered_on, quantity=item.quantity, description=item.description,
                actor=None, billable=False, deliverable=deliverables.get(item.deliverable_id),
            )  # fmt: skip
        for pk, deliverable in deliverables.items():
            status, delivered_on = Deliverable.objects.filter(pk=pk).values_list("status", "delivered_on").get()
            if status in ("delivered", "in_progress"):
                services.set_deliverable_status(deliverable=deliverable, status=status, actor=None, on=delivered_on)
        for amendment in Amendment.objects.filter(retainer=original, effective_on=period.end_on):
            services.amend_retainer(retainer=retainer, terms=amendment.terms(), reason=amendment.reason, actor=None)
        if period is periods[-1] and original.cancel_at_period_end:
            services.cancel_at_period_end(retainer=retainer)
        if period.status == Period.Status.CLOSED:
            services.close_and_open_period(retainer=retainer, as_of=period.end_on)
        elif original.status == Retainer.Status.PAUSED:
            services.pause_retainer(retainer=retainer, on=original.paused_on)
    return retainer


# --- the default demo ----------------------------------------------------------------------


def test_default_demo_seeds_rich_history_once_and_prints_the_logins():
    output = seed()
    assert "Demo data created" in output
    for login in ("alice@example.com", "bob@example.com", "demo-password-1", "carol@acme.example"):
        assert login in output
    workspace = Workspace.objects.get(slug=northwind.SLUG)
    assert set(Membership.objects.filter(workspace=workspace).values_list("user__email", "role")) == {
        ("alice@example.com", "owner"),
        ("bob@example.com", "member"),
    }
    carol = Contact.objects.get(workspace=workspace, email="carol@acme.example")
    assert carol.client.name == "Acme Corp" and carol.portal_access and carol.user is not None
    assert Client.objects.filter(workspace=workspace).count() >= 8

    retainers = Retainer.objects.filter(workspace=workspace)
    assert set(retainers.values_list("model", flat=True)) == {"fixed", "rollover", "deliverables"}
    assert set(retainers.values_list("unit", flat=True)) == {"hours", "sessions"}
    assert set(retainers.values_list("status", flat=True)) == {"active", "paused", "ended"}
    assert retainers.filter(status="active", cancel_at_period_end=True).exists()
    assert Amendment.objects.filter(workspace=workspace, applied_at__isnull=False).exists()
    closed = Period.objects.filter(workspace=workspace, status="closed")
    assert closed.filter(seq__gte=6).exists()  # months of history
    for figure in ("rolled_out", "expired", "overage"):
        assert closed.filter(**{f"{figure}__gt": 0}).exists(), figure
    assert closed.filter(rolled_out__lt=0).exists()  # a negative balance carried forward
    assert LedgerEntry.objects.filter(workspace=workspace, reason__startswith="Expired: unused").exists()
    assert LedgerEntry.objects.filter(workspace=workspace, reason__startswith="Over the rollover cap").exists()
    assert LedgerEntry.objects.filter(workspace=workspace, kind="reversal").exists()
    statuses = set(Deliverable.objects.filter(workspace=workspace).values_list("status", flat=True))
    assert {"delivered", "lapsed", "carried"} <= statuses
    assert Deliverable.objects.filter(workspace=workspace, extra=True).exists()
    assert Client.objects.filter(workspace=workspace, status="archived").exists()
    assert_books_balance([workspace])

    before = counts()
    again = seed()
    assert "Demo data created" not in again and "alice@example.com / demo-password-1" in again
    assert counts() == before


# --- the default demo's back office ----------------------------------------------------------


@pytest.fixture
def demo(settings, tmp_path, django_capture_on_commit_callbacks) -> Workspace:
    """The default demo. What its transaction left for after commit runs at the end, as the
    worker would run it on the first `make run` (Celery is eager in tests)."""
    settings.MEDIA_ROOT = tmp_path / "media"  # an invoice PDF rendered by mistake lands here
    with django_capture_on_commit_callbacks(execute=True):
        seed()
    return Workspace.objects.get(slug=northwind.SLUG)


def local_day(workspace: Workspace, instant) -> date:
    return timezone.localtime(instant, workspace.tzinfo).date()


def test_default_demo_bills_its_history_and_collects_all_but_one_overdue_and_one_part_paid_invoice(demo):
    today = demo.today()
    invoices = list(Invoice.objects.for_workspace(demo).select_related("client").order_by("number"))
    assert len(invoices) >= 40
    # The billing run issued them day by day: numbers follow the issue dates, one per period.
    assert [i.issued_on for i in invoices] == sorted(i.issued_on for i in invoices)
    assert all(i.kind == Invoice.Kind.SCHEDULED and i.period_id for i in invoices)
    assert all(i.tax_label == "VAT" and i.due_on == i.issued_on + timedelta(days=30) for i in invoices)
    assert all(local_day(demo, i.sent_at) == i.issued_on == local_day(demo, i.created_at) for i in invoices)

    paid = [i for i in invoices if i.status == Invoice.Status.PAID]
    assert len(paid) >= 0.75 * len(invoices)  # the rest: the overdue one, the part-paid one, a few not due yet
    assert len({i.issued_on.replace(day=1) for i in paid}) >= 6
    collected = [row for row in dashboard.collected_by_month(demo, today=today) if row["net_minor"] > 0]
    assert len(collected) >= 6  # bars on the dashboard's chart
    payments = Payment.objects.for_workspace(demo).select_related("invoice")
    assert {(p.kind, p.status, p.method, p.stripe_id) for p in payments} == {
        ("payment", "succeeded", "bank_transfer", "")
    }
    for payment in payments:
        assert payment.invoice.issued_on <= local_day(demo, payment.created_at) <= today
        assert payment.created_at <= timezone.now() and payment.recorded_by.email == northwind.OWNER
    assert all(local_day(demo, i.paid_at) <= i.due_on for i in paid)  # the demo's clients pay on time
    assert not StripeAccount.objects.filter(workspace=demo).exists()

    [overdue] = [i for i in invoices if i.is_overdue(on=today)]
    assert overdue.client.name == "Globex Ltd" and overdue.paid_minor == 0
    assert list(dashboard.overdue_invoices(demo, today=today)) == [overdue]
    [part_paid] = [i for i in invoices if i.status == Invoice.Status.OPEN and i.paid_minor > 0]
    assert part_paid.client.name == "Acme Corp" and 0 < part_paid.paid_minor < part_paid.total_minor
    assert part_paid == max((i for i in invoices if i.client.name == "Acme Corp"), key=lambda i: i.issued_on)
    # Open otherwise only what is not due yet: this period's invoices not paid so far.
    for invoice in invoices:
        if invoice.status == Invoice.Status.OPEN and invoice not in (overdue, part_paid):
            assert invoice.due_on >= today and invoice.paid_minor == 0


def test_default_demo_has_notes_a_thread_tasks_and_a_renewal_proposed_to_carol(demo):
    today = demo.today()
    acme = Client.objects.get(workspace=demo, name="Acme Corp")
    alice, bob = User.objects.get(email=northwind.OWNER), User.objects.get(email=northwind.TEAMMATE)
    carol = Contact.objects.get(workspace=demo, email=northwind.CONTACT)

    notes = Note.objects.for_workspace(demo)
    assert {"private", "shared"} == set(notes.filter(client=acme).values_list("visibility", flat=True))
    [on_session] = notes.filter(session__isnull=False)
    assert on_session.visibility == "shared" and on_session.client == acme
    assert on_session.session.retainer.client == acme
    assert notes.exclude(client=acme).filter(visibility="private").exists()
    assert notes.exclude(client=acme).filter(visibility="shared").exists()
    assert all(note.created_at <= timezone.now() and note.body.strip() for note in notes)

    thread = list(Message.objects.for_workspace(demo).order_by("created_at"))
    assert 3 <= len(thread) <= 4 and {m.client for m in thread} == {acme}
    assert {m.sent_by_user for m in thread} == {alice, None} and {m.sent_by_contact for m in thread} == {None, carol}
    assert list(communication.unread_by_team(demo)) == [thread[-1]] and thread[-1].sent_by_contact == carol
    assert all(local_day(demo, m.created_at) < today for m in thread)
    assert not communication.unread_by_client(demo, acme).exists()  # Carol answered each of Alice's

    tasks = Task.objects.for_workspace(demo).filter(status=Task.Status.OPEN)
    assert 3 <= tasks.count() <= 4 and {t.assignee for t in tasks} == {alice, bob}
    due_days = {local_day(demo, t.due_at) for t in tasks}
    assert any(day < today for day in due_days) and today in due_days
    assert any(today + timedelta(days=5) <= day <= today + timedelta(days=7) for day in due_days)
    assert tasks.filter(source=Task.Source.SESSION, session__retainer__client=acme).exists()

    renewal = Renewal.objects.get(workspace=demo, retainer__client=acme)
    assert renewal.status == Renewal.Status.PROPOSAL_SENT and renewal.sent_at is not None
    assert renewal.term_periods == 12 and "full year" in renewal.proposal_text
    assert today < renewal.term_ends_on <= today + timedelta(days=renewal.retainer.renewal_notice_days)
    assert renewal.term_ends_on == renewal.retainer.term_ends_on and renewal.retainer.status == "active"
    proposal = Email.objects.get(key__startswith=f"renewal-{renewal.pk}-proposal-")
    assert proposal.to == northwind.CONTACT and proposal.status == Email.Status.SENT
    assert tasks.filter(renewal=renewal).exists()
    # Every retainer whose term ends within its notice has its renewal open.
    for retainer in Retainer.objects.for_workspace(demo).filter(status="active", cancel_at_period_end=False):
        if retainer.term_ends_on - timedelta(days=retainer.renewal_notice_days) <= today:
            assert Renewal.objects.filter(retainer=retainer, term_ends_on=retainer.term_ends_on).exists()
    assert Renewal.objects.filter(workspace=demo, status=Renewal.Status.UPCOMING).exists()


def test_default_demo_leaves_the_worker_nothing_to_send(demo):
    """The seed's emails are on record as sent, and what ran after commit (the outbox's sends;
    no invoice deliveries) sent nothing and rendered no PDF."""
    emails = Email.objects.all()
    assert emails.count() >= 8
    assert not emails.exclude(status=Email.Status.SENT).exists()
    keys = set(emails.exclude(key=None).values_list("key", flat=True))
    assert {key.split("-")[0] for key in keys} >= {"renewal", "message", "task"}
    assert not any(key.startswith(("invoice-", "payment-")) for key in keys)
    assert mail.outbox == []
    assert not Invoice.objects.for_workspace(demo).exclude(pdf="").exists()
    # The reminders job ran as of the seed: the overdue task's reminder is among the emails above.
    overdue_tasks = Task.objects.for_workspace(demo).filter(
        status="open", due_at__lt=timezone.now() - timedelta(days=1)
    )
    assert overdue_tasks.exists() and not overdue_tasks.filter(reminded_at=None).exists()


def test_default_demo_pages_show_the_money_the_thread_and_the_renewal(demo, login):
    today = demo.today()
    alice = login(User.objects.get(email=northwind.OWNER))
    overdue = Invoice.objects.get(workspace=demo, status="open", due_on__lt=today)
    part_paid = Invoice.objects.get(workspace=demo, status="open", paid_minor__gt=0)
    renewal = Renewal.objects.get(workspace=demo, status=Renewal.Status.PROPOSAL_SENT)

    def page(client, name: str, **kwargs) -> str:
        response = client.get(reverse(name, kwargs={"workspace_slug": demo.slug, **kwargs}))
        assert response.status_code == 200, name
        return response.content.decode()

    assert overdue.number in page(alice, "dashboard")
    invoices = page(alice, "billing:invoice_list")
    assert overdue.number in invoices and part_paid.number in invoices
    assert "Acme Corp" in page(alice, "renewals:renewal_list")
    assert "Call Hank" in page(alice, "communication:task_list")

    carol = login(Contact.objects.get(workspace=demo, email=northwind.CONTACT).user)
    mine = page(carol, "portal:invoice_list")
    assert part_paid.number in mine and overdue.number not in mine
    detail = page(carol, "portal:renewal_detail", renewal_id=renewal.pk)
    assert reverse("portal:renewal_accept", args=[demo.slug, renewal.pk]) in detail
    assert "separate invoice line" in page(carol, "portal:message_list")
    notes = page(carol, "portal:shared_notes")
    assert "Warehouse go-live checklist" in notes and "Account plan" not in notes


def test_default_demo_happened_on_its_own_days_in_the_past(demo):
    """Six months of history read as six months: every ledger entry, session and close on its own
    day (not the day of the seed), clients added before their first retainer began."""
    today, now = demo.today(), timezone.now()
    anchor = add_months(today.replace(day=1), -6)
    entries = list(LedgerEntry.objects.for_workspace(demo).select_related("period"))
    days = [local_day(demo, e.created_at) for e in entries]
    assert min(days) == anchor and max(days) <= today and all(e.created_at <= now for e in entries)
    assert len({(day.year, day.month) for day in days}) == 7  # the six months and this one
    for entry, day in zip(entries, days, strict=True):
        assert entry.period.start_on <= day <= entry.period.end_on, (entry, day)  # closing entries: on end_on
    for item in WorkItem.objects.for_workspace(demo):
        assert local_day(demo, item.created_at) == item.delivered_on, item
        assert item.removed_at is None or local_day(demo, item.removed_at) == item.delivered_on, item
    for period in Period.objects.for_workspace(demo).filter(status="closed"):
        assert local_day(demo, period.closed_at) == period.end_on, period

    for client in Client.objects.for_workspace(demo):
        since = local_day(demo, client.created_at)
        assert since < today, client
        first = Period.objects.filter(retainer__client=client).order_by("start_on").first()
        assert first is None or since < first.start_on, client
        assert not client.contacts.filter(created_at__gt=client.created_at).exists(), client
    assert all(local_day(demo, plan.created_at) < anchor for plan in Plan.objects.for_workspace(demo))


def test_default_demo_pages_show_the_history_on_its_dates_and_no_raw_markdown(demo, login):
    alice = login(User.objects.get(email=northwind.OWNER))
    acme = Client.objects.get(workspace=demo, name="Acme Corp")
    retainer = Retainer.objects.get(workspace=demo, client=acme)

    def page(client, name: str, **kwargs) -> str:
        response = client.get(reverse(name, kwargs={"workspace_slug": demo.slug, **kwargs}))
        assert response.status_code == 200, name
        return response.content.decode()

    since = timezone.localtime(acme.created_at, demo.tzinfo)
    assert f"{since.day} {since:%B %Y}" in page(alice, "dashboard:client_billing", client_id=acme.pk)
    ledger = page(alice, "delivery:retainer_ledger", retainer_id=retainer.pk)
    assert len(set(re.findall(r"<td>\d{1,2} ([A-Z][a-z]{2} \d{4})</td>", ledger))) >= 2  # not all on one day
    timeline = page(alice, "dashboard:client_timeline", client_id=acme.pk)
    assert "Account plan" in timeline and "**" not in timeline  # a note's words, not its Markdown

    # Messages are plain text wherever they are shown: the demo's are written that way.
    for message in Message.objects.for_workspace(demo):
        assert plain_text(message.body) == " ".join(message.body.split()), message.body
    carol = login(Contact.objects.get(workspace=demo, email=northwind.CONTACT).user)
    for name in ("portal:message_list", "portal:overview"):
        assert "**" not in page(carol, name), name


def test_the_demo_stories_written_in_bulk_give_the_rows_the_services_gave():
    seed()
    workspace = Workspace.objects.get(slug=northwind.SLUG)
    today = workspace.today()
    anchor = add_months(today.replace(day=1), -6)
    copy_workspace = factories.WorkspaceFactory(timezone=workspace.timezone, currency=workspace.currency)
    client = factories.ClientFactory(workspace=copy_workspace)
    writer = bench.Writer()
    batch = writer.batch()
    rng = random.Random(42)  # the demo's seed, drawn in the demo's order
    pairs = []
    for member in northwind.cast(anchor, today):
        for name, key, story, terms in member.retainers:
            if story.starts_on > today:
                continue
            books = MemoryBooks(
                batch=batch, workspace_id=copy_workspace.pk, client_id=client.pk, plan_id=None, name=name,
                terms={**catalog.plan_terms(key, workspace.currency), **terms}, actor_id=None,
                zone=ZoneInfo(workspace.timezone),
            )  # fmt: skip
            play(books, story, rng, today=today)
            books.write(batch)
            pairs.append((Retainer.objects.get(workspace=workspace, client__name=member.client, name=name), books.id))
    writer.write(batch)

    assert len(pairs) == Retainer.objects.filter(workspace=workspace).count()
    for by_services, bulk_id in pairs:
        assert books_of(Retainer.objects.get(pk=bulk_id), exact=True) == books_of(by_services, exact=True), by_services
    assert_books_balance([copy_workspace])


def test_edge_cases_written_in_bulk_give_the_rows_the_services_give():
    """Term renewals and ends, a month-end anchor, cancelled carrying deliverables, odd amendments."""
    workspace = factories.WorkspaceFactory(timezone="America/New_York", currency="USD")
    today = workspace.today()
    starts_on = add_months(today.replace(day=1), -15)
    while starts_on.month not in (1, 3, 5, 7, 8, 10, 12):
        starts_on = add_months(starts_on, -1)
    starts_on = starts_on.replace(day=31)  # periods end on the 28th/29th/30th/31st by turns
    stories = [
        ("advisory", {"term_periods": 3, "auto_renew": True}, Story(starts_on=starts_on, intensity=0.6)),
        ("fractional", {"term_periods": 4}, Story(starts_on=starts_on, intensity=1.15)),
        ("content", {"term_periods": 2, "auto_renew": False}, Story(starts_on=starts_on)),
        ("content", {}, Story(starts_on=starts_on, cancel_in=3)),
        (
            "support",
            {"term_periods": 2},
            Story(
                starts_on=starts_on, intensity=(1.4, 0.3, 0.3, 1.2, 0.2), amend_in=2, amend_reason="Looser terms",
                amend_changes={"rollover_cap": D("40"), "rollover_expiry_periods": 2, "units_per_period": D("12.5")},
            ),
        ),
        ("coaching", {"term_periods": 2}, Story(starts_on=starts_on, intensity=1.5, pause=True)),
        ("board", {}, Story(starts_on=starts_on, amend_in=2, amend_changes={"deliverables": ["Board pack review"]})),
    ]  # fmt: skip
    for by_services, bulk in play_both_ways(workspace, stories, today=today, seed=7):
        assert books_of(bulk, exact=True) == books_of(by_services, exact=True), by_services.name
    retainers = Retainer.objects.filter(workspace=workspace)  # each story twice: by the services and in bulk
    assert retainers.filter(status="ended").count() == 6 and retainers.filter(status="paused").count() == 2
    assert Period.objects.filter(workspace=workspace, seq__gt=12).exists()
    assert_books_balance([workspace])


def play_both_ways(workspace: Workspace, stories: list, *, today, seed: int) -> list[tuple[Retainer, Retainer]]:
    """Play each story through the services and into the bulk writer, with the same draws."""
    client = factories.ClientFactory(workspace=workspace)
    rng = random.Random(seed)
    by_services = []
    for n, (key, terms, story) in enumerate(stories):
        books = ServiceBooks(
            client=client, name=f"{n}", actor=None, terms={**catalog.plan_terms(key, workspace.currency), **terms}
        )
        play(books, story, rng, today=today)
        by_services.append(books.retainer)
    rng = random.Random(seed)
    writer = bench.Writer()
    batch = writer.batch()
    bulk = []
    for n, (key, terms, story) in enumerate(stories):
        books = MemoryBooks(
            batch=batch, workspace_id=workspace.pk, client_id=client.pk, plan_id=None, name=f"{n}",
            terms={**catalog.plan_terms(key, workspace.currency), **terms}, actor_id=None,
            zone=ZoneInfo(workspace.timezone),
        )  # fmt: skip
        play(books, story, rng, today=today)
        books.write(batch)
        bulk.append(books.id)
    writer.write(batch)
    return [(mine, Retainer.objects.get(pk=pk)) for mine, pk in zip(by_services, bulk, strict=True)]


# --- bench workspaces ------------------------------------------------------------------------


@pytest.fixture
def demo_already_there(db) -> None:
    """A stand-in for the seeded demo, so bench tests do not spend their time seeding it."""
    workspace = factories.WorkspaceFactory(slug=northwind.SLUG)
    factories.make_retainer(workspace=workspace)


def test_bench_workspaces_are_seeded_in_bulk_once(demo_already_there):
    output = seed(**SMALL)
    workspaces = bench_workspaces()
    assert [w.slug for w in workspaces] == ["bench-0001", "bench-0002", "bench-0003"]
    for workspace in workspaces:
        owner = Membership.objects.get(workspace=workspace).user
        assert owner.email == f"bench{workspace.slug[-4:]}@example.com" and owner.check_password(northwind.PASSWORD)
        assert owner.emailaddress_set.filter(verified=True, primary=True).exists()
        assert Client.objects.filter(workspace=workspace).count() == 5
        assert Retainer.objects.filter(workspace=workspace).count() == 5
        assert Period.objects.filter(workspace=workspace, status="closed").exists()
    assert re.search(r"Bench seeded: 3 workspaces, 15 clients, 15 retainers, .* rows in [\d.]+ s\.", output)

    before = counts()
    again = seed(**SMALL)
    assert "nothing added" in again and "alice@example.com / demo-password-1" in again
    assert counts() == before
    more = seed(workspaces=4, clients=5, months=4)  # only the missing one is added
    assert "3 of 4 workspaces already exist" in more
    assert len(bench_workspaces()) == 4


def test_bench_books_keep_the_ledger_rules_and_replay_identically_through_the_services(demo_already_there):
    seed(**SMALL)
    workspaces = bench_workspaces()
    assert_books_balance(workspaces)
    originals = list(
        Retainer.objects.filter(workspace__in=workspaces).select_related("workspace", "plan").order_by("pk")
    )
    assert len(originals) == 15
    for original in originals:
        replayed = replay(original)
        assert books_of(replayed, exact=False) == books_of(original, exact=False), original


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--workspaces", "-1"], "--workspaces must be a whole number from 1"),
        (["--workspaces", "0"], "--workspaces must be a whole number from 1"),
        (["--workspaces", "many"], "--workspaces must be a whole number from 1"),
        (["--workspaces", "2", "--months", "0"], "--months must be a whole number from 1"),
        (["--workspaces", "2", "--clients", "1.5"], "--clients must be a whole number from 1"),
        (["--clients", "5"], "give --workspaces too"),
        (["--workspaces", "2", "--jobs", "0"], "--jobs must be a whole number from 1"),
    ],
)
def test_bad_options_fail_with_one_clear_line_and_write_nothing(options, message):
    before = counts()
    with pytest.raises(CommandError, match=re.escape(message)) as error:
        call_command("seed_demo", *options, stdout=StringIO())
    assert "\n" not in str(error.value)
    assert counts() == before


@pytest.mark.slow
def test_a_bad_option_on_the_command_line_exits_non_zero_with_one_line():
    manage = Path(__file__).resolve().parents[2] / "manage.py"
    result = subprocess.run(
        [sys.executable, str(manage), "seed_demo", "--workspaces", "-1"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "CommandError: --workspaces must be a whole number from 1 to 100,000, not '-1'."
    ]
