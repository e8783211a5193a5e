"""Communication's read-models: notes with their Markdown rendered, the message thread, and the
client page's "Communication" section (its forms post to communication.views, which answer
htmx with this section again)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, TypedDict, cast

from django.db.models import Count, F, Prefetch, Q
from django.utils import timezone

from clients.models import Client
from communication import inbound, services
from communication.forms import CheckInForm, FollowUpForm, NoteForm, SessionChoiceField, TaskForm, recent_sessions
from communication.markdown import render_markdown
from communication.models import Attachment, Message, Note, Task
from retainers.http import WorkspaceRequest
from retainers.models import Workspace
from retainers.search import NOTHING, Found, prefix_query, ranked_recent

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

SECTION_NOTES = 5
SECTION_MESSAGES = 3
SECTION_TASKS = 10


class NoteHtml(TypedDict):
    html: str  # the body, rendered from Markdown


class TaskRow(TypedDict):
    overdue: bool


class MessageRow(TypedDict):
    new: bool  # not read yet by the side looking at the thread


def with_html(notes: list[Note]) -> list[WithAnnotations[Note, NoteHtml]]:
    rows = cast("list[WithAnnotations[Note, NoteHtml]]", notes)  # with the HTML set here
    for note in rows:
        note.html = render_markdown(note.body)
    return rows


def thread_messages(workspace: Workspace, client: Client) -> list[Message]:
    """The whole thread, oldest first, with senders and attachments: two queries."""
    return list(
        Message.objects.for_workspace(workspace)
        .filter(client=client)
        .select_related("sent_by_user", "sent_by_contact")
        .prefetch_related(Prefetch("attachments", queryset=Attachment.objects.order_by("pk")))
        .order_by("created_at", "pk")
    )


def client_section(
    request: WorkspaceRequest,
    client: Client,
    *,
    note_form: NoteForm | None = None,
    task_form: TaskForm | None = None,
    follow_up_form: FollowUpForm | None = None,
    checkin_form: CheckInForm | None = None,
    notice: str = "",
) -> dict[str, object]:
    """Notes, the thread's summary, open tasks, the reply address and the forms: a fixed number of queries."""
    workspace = request.workspace
    notes = list(
        Note.objects.for_workspace(workspace)
        .filter(client=client)
        .select_related("author", "session")
        .order_by("-created_at", "-pk")[: SECTION_NOTES + 1]
    )
    last_messages = list(
        Message.objects.for_workspace(workspace)
        .filter(client=client)
        .select_related("sent_by_user", "sent_by_contact")
        .order_by("-created_at", "-pk")[:SECTION_MESSAGES]
    )
    tasks = cast(
        "list[WithAnnotations[Task, TaskRow]]",  # with `overdue` set below
        list(
            Task.objects.for_workspace(workspace)
            .filter(client=client, status=Task.Status.OPEN)
            .select_related("assignee", "session")
            .order_by("due_at", "pk")[: SECTION_TASKS + 1]
        ),
    )
    now = timezone.now()
    for task in tasks:
        task.overdue = task.due_at < now
    default_due = datetime.combine(workspace.today() + timedelta(days=7), time(9), tzinfo=workspace.tzinfo)
    note_form = note_form or NoteForm(client=client, prefix="note")
    task_form = task_form or TaskForm(
        workspace=workspace, client=client, prefix="task", initial={"due_at": default_due, "assignee": request.user}
    )
    follow_up_form = follow_up_form or FollowUpForm(client=client, prefix="follow")
    sessions = list(recent_sessions(client))  # one query for the three forms that offer sessions
    for form in (note_form, task_form, follow_up_form):
        cast(SessionChoiceField, form.fields["session"]).show_sessions(sessions)
    return {
        "client": client,
        "notes": with_html(notes[:SECTION_NOTES]),
        "more_notes": len(notes) > SECTION_NOTES,
        "unread": services.unread_by_team(workspace).filter(client=client).count(),
        "last_messages": last_messages[::-1],
        "tasks": tasks[:SECTION_TASKS],
        "more_tasks": len(tasks) > SECTION_TASKS,
        "note_form": note_form,
        "task_form": task_form,
        "follow_up_form": follow_up_form,
        "has_sessions": bool(sessions),
        "checkin_form": checkin_form
        or CheckInForm(
            prefix="checkin",
            initial={
                "checkin_every_days": client.checkin_every_days,
                "checkin_email_client": client.checkin_email_client,
            },
        ),
        "reply_address": inbound.shown_reply_address(client),
        "notice": notice,
    }


@dataclass(frozen=True)
class OpenTasks:
    open: int
    overdue: int  # of those, due before now


def open_tasks(workspace: Workspace, client: Client) -> OpenTasks:
    """How many of the client's tasks are open and how many of those are overdue (due before now),
    as the section marks them: one query."""
    counts = (
        Task.objects.for_workspace(workspace)
        .filter(client=client, status=Task.Status.OPEN)
        .aggregate(open=Count("pk"), overdue=Count("pk", filter=Q(due_at__lt=timezone.now())))
    )
    return OpenTasks(open=counts["open"], overdue=counts["overdue"])


def last_message(workspace: Workspace, client: Client) -> Message | None:
    """The latest message of the client's thread, either way, with who sent it: one query."""
    return (
        Message.objects.for_workspace(workspace)
        .filter(client=client)
        .select_related("sent_by_user", "sent_by_contact")
        .order_by("-created_at", "-pk")
        .first()
    )


def search_notes(workspace: Workspace, text: str, *, limit: int) -> Found[Note]:
    """The workspace's notes whose text matches, the best of the newest RECENT first, with their client.

    Private notes are the team's: every member sees them, as on the client page."""
    query = prefix_query(text)
    if query is None:
        return NOTHING
    notes = Note.objects.for_workspace(workspace).select_related("client")
    return ranked_recent(notes, F("search"), query, limit=limit)


def search_messages(workspace: Workspace, text: str, *, limit: int) -> Found[Message]:
    """The workspace's messages whose text matches, the best of the newest RECENT first, with client and sender."""
    query = prefix_query(text)
    if query is None:
        return NOTHING
    messages = Message.objects.for_workspace(workspace).select_related("client", "sent_by_contact", "sent_by_user")
    return ranked_recent(messages, F("search"), query, limit=limit)
