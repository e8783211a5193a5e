"""The reminders job (beat every 15 minutes, and `manage.py send_reminders`).

For each workspace, as of one instant `now`:

1. check-ins: a client with a cadence and no session, message or check-in for that many days
   gets one check-in task (never a second while one is open), and, when the client asks for it
   (`checkin_email_client`), its portal contacts one "book your next session" email per check-in;
2. due tasks: the assignee of each open task whose due time has come is emailed once
   (claimed with a conditional UPDATE of `reminded_at`);
3. low-balance alerts (delivery.reminders): a live retainer below 20% of this period's units,
   or used up, is reported to the owners and admins and to the client's portal contacts, once
   per period and threshold;
4. the daily digest: from 07:00 local time, each member gets what is due today (and overdue)
   once per local day (outbox key `digest-{membership_id}-{date}`);
5. bookings (delivery.booking_reminders): the contact and the member are reminded before each
   booking at its session type's offsets, once each, and a client whose retainer asks for it is
   nudged to book their next session after N quiet days.

The job lives in communication, the app that can see both halves: its own tasks, check-ins
and digests, and delivery's sessions, alerts and bookings (to its left). Every step is idempotent and catches up: its state is in the database (task rows, claims,
outbox keys), so running twice, or after a long downtime, sends each email once.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, TypedDict

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from clients.models import Client, Contact
from communication import services
from communication.models import Message, Task
from delivery import booking, booking_reminders
from delivery import reminders as delivery_reminders
from delivery.models import WorkItem
from retainers import tenancy
from retainers.models import Email, Membership, User, Workspace
from retainers.outbox import queue_email

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

DIGEST_FROM = time(7, 0)
DIGEST_MAX_TASKS = 50


@dataclass
class Summary:
    check_ins: int = 0
    task_reminders: int = 0
    low_balance_alerts: int = 0
    digests: int = 0
    booking_reminders: int = 0
    booking_nudges: int = 0

    def __iadd__(self, other: Summary) -> Summary:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self


def instant_for(workspace: Workspace, as_of: date | datetime | None) -> datetime:
    """The moment to run as in this workspace.

    None is now; an aware datetime is that instant; a naive datetime is that wall-clock time
    in the workspace's zone; a date is the end of that day there (everything due that day is due,
    and the day's digest goes out).
    """
    if as_of is None:
        return timezone.now()
    if isinstance(as_of, datetime):
        return as_of if timezone.is_aware(as_of) else timezone.make_aware(as_of, workspace.tzinfo)
    return datetime.combine(as_of, time.max, tzinfo=workspace.tzinfo)


def send_reminders(*, as_of: date | datetime | None = None) -> Summary:
    """Remind every workspace, one after another, in this process (the command)."""
    summary = Summary()
    for workspace in Workspace.objects.order_by("pk").iterator():
        summary += remind_workspace(workspace=workspace, now=instant_for(workspace, as_of))
    return summary


@tenancy.scan("reminders: which workspaces have reminders due")
def fan_out() -> int:
    """Beat's sweep: one task per workspace, each run as of its own `now`."""
    from communication import tasks  # tasks imports this module

    ids = list(Workspace.objects.order_by("pk").values_list("pk", flat=True))
    for workspace_id in ids:
        tasks.remind_workspace.delay(workspace_id)
    return len(ids)


@tenancy.per_workspace
def remind_workspace(*, workspace: Workspace, now: datetime) -> Summary:
    """Every reminder of one workspace as of `now`. Safe to run any number of times."""
    summary = Summary()
    # Dates in the emails are written in the workspace's own time zone.
    with timezone.override(workspace.tzinfo):
        summary.check_ins = open_check_ins(workspace=workspace, now=now)
        summary.task_reminders = remind_due_tasks(workspace=workspace, now=now)
        summary.low_balance_alerts = delivery_reminders.send_low_balance_alerts(workspace=workspace)
        summary.digests = send_digests(workspace=workspace, now=now)
        summary.booking_reminders = booking_reminders.send_reminders(workspace=workspace, now=now)
        summary.booking_nudges = booking_reminders.send_nudges(workspace=workspace, now=now)
    return summary


def _members(workspace: Workspace) -> list[Membership]:
    return list(
        Membership.objects.for_workspace(workspace).filter(user__is_active=True).select_related("user").order_by("pk")
    )


def _site(path: str) -> str:
    return settings.SITE_URL + path


# --- Check-ins ------------------------------------------------------------------------------


class CheckInRow(TypedDict):
    """What open_check_ins annotates on each client."""

    open_check_in: bool
    last_session_on: date | None
    last_worker_id: int | None
    last_message_at: datetime | None
    last_check_in_at: datetime | None


def open_check_ins(*, workspace: Workspace, now: datetime) -> int:
    """Open a check-in task for each client quiet for its cadence. One query to find them all.

    A quiet spell is counted from the latest session, message or check-in task (opened or
    completed), so completing a check-in starts a new spell rather than opening another at once.
    """
    sessions = WorkItem.objects.filter(workspace=workspace, retainer__client=OuterRef("pk"), removed_at=None)
    thread = Message.objects.filter(workspace=workspace, client=OuterRef("pk"))
    check_ins = Task.objects.filter(workspace=workspace, client=OuterRef("pk"), source=Task.Source.CHECK_IN)
    clients = (
        Client.objects.for_workspace(workspace)
        .filter(status=Client.Status.ACTIVE, checkin_every_days__isnull=False)
        .annotate(
            open_check_in=Exists(check_ins.filter(status=Task.Status.OPEN)),
            last_session_on=Subquery(sessions.order_by("-delivered_on").values("delivered_on")[:1]),
            last_worker_id=Subquery(sessions.order_by("-delivered_on", "-created_at").values("delivered_by")[:1]),
            last_message_at=Subquery(thread.order_by("-created_at").values("created_at")[:1]),
            last_check_in_at=Subquery(
                check_ins.annotate(touched=Coalesce("completed_at", "created_at"))
                .order_by("-touched")
                .values("touched")[:1]
            ),
        )
        .filter(open_check_in=False)
        .order_by("pk")
    )
    today = timezone.localdate(now, timezone=workspace.tzinfo)
    members: dict[int, Membership] | None = None
    opened = 0
    for client in clients:
        moments = [client.created_at, client.last_message_at, client.last_check_in_at]
        days = [timezone.localdate(m, timezone=workspace.tzinfo) for m in moments if m is not None]
        if client.last_session_on is not None:
            days.append(client.last_session_on)
        assert client.checkin_every_days is not None  # chosen for having one
        if (today - max(days)).days < client.checkin_every_days:
            continue
        if members is None:
            members = {m.user_id: m for m in _members(workspace)}
        task = services.open_check_in(client=client, due_at=now, assignee=_check_in_assignee(client, members))
        opened += task is not None
        if task is not None and client.checkin_email_client:
            _nudge_client(workspace, client, task, quiet_since=max(days), today=today)
    return opened


def _nudge_client(workspace: Workspace, client: Client, task: Task, *, quiet_since: date, today: date) -> None:
    """Email the client's portal contacts to book their next session, once per check-in (the key
    holds the task): with the portal's booking link when there is something to book, else the portal."""
    contacts = list(Contact.objects.for_workspace(workspace).filter(client=client, portal_access=True).order_by("pk"))
    if not contacts:
        return
    view = "portal:book" if booking.can_book(client) else "portal:overview"
    url = settings.SITE_URL + reverse(view, kwargs={"workspace_slug": workspace.slug})
    for contact in contacts:
        queue_email(
            to=contact.email,
            template="checkin_client",
            context={
                "recipient_name": contact.name,
                "workspace": workspace,
                "client": client,
                "since": quiet_phrase((today - quiet_since).days),
                "can_book": view == "portal:book",
                "url": url,
            },
            workspace=workspace,
            client_id=client.pk,
            key=f"checkin-client-{task.pk}-contact{contact.pk}",
        )


def quiet_phrase(days: int) -> str:
    """“three weeks”, “10 days”, “2 months”: how long it has been, as a person says it."""
    words = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
    if days >= 60:
        months = days // 30
        return f"{words.get(months, str(months))} months"
    if days >= 14 and days % 7 == 0:
        weeks = days // 7
        return f"{words.get(weeks, str(weeks))} weeks"
    return f"{days} day{'s' if days != 1 else ''}"


def _check_in_assignee(client: WithAnnotations[Client, CheckInRow], members: dict[int, Membership]) -> User | None:
    """Who last delivered a session for the client, if still a member; else the first owner."""
    if client.last_worker_id in members:
        return members[client.last_worker_id].user
    owners = [m for m in members.values() if m.role == Membership.Role.OWNER]
    return owners[0].user if owners else None


# --- Due tasks --------------------------------------------------------------------------------


def remind_due_tasks(*, workspace: Workspace, now: datetime) -> int:
    """Email the assignee of each open task that has fallen due, once (claim on `reminded_at`)."""
    due = (
        Task.objects.for_workspace(workspace)
        .filter(status=Task.Status.OPEN, reminded_at=None, due_at__lte=now, assignee__is_active=True)
        .filter(Exists(Membership.objects.filter(workspace=workspace, user=OuterRef("assignee"))))
        .select_related("client", "assignee")
        .order_by("due_at", "pk")
    )
    sent = 0
    for task in due:
        with transaction.atomic():
            # The claim and the email commit together: a crash between them leaves neither.
            claimed = Task.objects.filter(pk=task.pk, status=Task.Status.OPEN, reminded_at=None).update(reminded_at=now)
            if not claimed:
                continue  # another run got there first
            assert task.assignee is not None  # chosen for its assignee
            url = reverse("communication:task_edit", kwargs={"workspace_slug": workspace.slug, "task_id": task.pk})
            queue_email(
                to=task.assignee.email,
                template="task_due",
                context={
                    "task": task,
                    "client": task.client,
                    "workspace": workspace,
                    "recipient_name": task.assignee.get_short_name(),
                    "overdue": task.due_at < now - timedelta(minutes=15),
                    "timezone_name": workspace.timezone,
                    "url": _site(url),
                },
                workspace=workspace,
                # Per due time: a task moved to a new time (which re-arms it) is reminded again.
                key=f"task-{task.pk}-due-{int(task.due_at.timestamp())}",
            )
            sent += 1
    return sent


# --- The daily digest -----------------------------------------------------------------------------


def send_digests(*, workspace: Workspace, now: datetime) -> int:
    """From 07:00 local time, email each member their tasks due today and overdue, once a day.

    Owners and admins also see unassigned tasks. A member with nothing due gets no email.
    After downtime only today's digest is sent: yesterday's would be stale news.
    """
    local = timezone.localtime(now, workspace.tzinfo)
    if local.time() < DIGEST_FROM:
        return 0
    day = local.date()
    members = _members(workspace)
    keys = {m.pk: f"digest-{m.pk}-{day.isoformat()}" for m in members}
    done = set(Email.objects.filter(key__in=keys.values()).values_list("key", flat=True))
    waiting = [m for m in members if keys[m.pk] not in done]
    if not waiting:
        return 0
    start = datetime.combine(day, time(0), tzinfo=workspace.tzinfo)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=workspace.tzinfo)
    tasks = list(
        Task.objects.for_workspace(workspace)
        .filter(status=Task.Status.OPEN, due_at__lt=end)
        .select_related("client")
        .order_by("due_at", "pk")
    )
    url = _site(reverse("communication:task_list", kwargs={"workspace_slug": workspace.slug}) + "?state=due")
    sent = 0
    for member in waiting:
        mine = [t for t in tasks if t.assignee_id == member.user_id or (t.assignee_id is None and member.is_admin)]
        if not mine:
            continue
        mine = mine[:DIGEST_MAX_TASKS]
        with transaction.atomic():
            queue_email(
                to=member.user.email,
                template="daily_digest",
                context={
                    "workspace": workspace,
                    "recipient_name": member.user.get_short_name(),
                    "day": day,
                    "overdue": [t for t in mine if t.due_at < start],
                    "due": [t for t in mine if t.due_at >= start],
                    "url": url,
                },
                workspace=workspace,
                key=keys[member.pk],
            )
        sent += 1
    return sent
