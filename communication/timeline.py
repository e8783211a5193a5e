"""Communication's events on the client's timeline (dashboard.timeline merges every app's):
notes, messages and tasks, each in one query."""

from __future__ import annotations

from django.urls import reverse
from django.utils import timezone

from clients.models import Client
from clients.timeline import Cursor, Event
from communication.markdown import plain_text
from communication.models import Message, Note, Task
from retainers.http import WorkspaceRequest


def _excerpt(text: str, length: int = 140) -> str:
    text = " ".join(text.split())
    return text if len(text) <= length else text[: length - 1].rstrip() + "…"


def note_events(
    request: WorkspaceRequest, client: Client, kinds: frozenset[str], before: Cursor | None, limit: int
) -> list[Event]:
    notes = Note.objects.for_workspace(request.workspace).filter(client=client).select_related("author")
    if before is not None:
        notes = notes.filter(before.q("note", "created_at"))
    slug = request.workspace.slug
    return [
        Event(
            at=note.created_at,
            kind="note",
            title=("Shared note" if note.visibility == Note.Visibility.SHARED else "Private note")
            + (f" by {note.author.get_full_name()}" if note.author else ""),
            url=reverse("communication:note_edit", kwargs={"workspace_slug": slug, "note_id": note.pk}),
            detail=_excerpt(plain_text(note.body)),  # a note is Markdown; the timeline shows its words
            pk=note.pk,
        )
        for note in notes.order_by("-created_at", "-pk")[:limit]
    ]


def message_events(
    request: WorkspaceRequest, client: Client, kinds: frozenset[str], before: Cursor | None, limit: int
) -> list[Event]:
    thread = Message.objects.for_workspace(request.workspace).filter(client=client)
    if before is not None:
        thread = thread.filter(before.q("message", "created_at"))
    url = reverse(
        "communication:message_thread", kwargs={"workspace_slug": request.workspace.slug, "client_id": client.pk}
    )
    events = []
    for message in thread.select_related("sent_by_user", "sent_by_contact").order_by("-created_at", "-pk")[:limit]:
        if message.sent_by_contact is not None:
            sender = message.sent_by_contact.name
        else:
            sender = message.sent_by_user.get_full_name() if message.sent_by_user else request.workspace.name
        events.append(
            Event(
                at=message.created_at,
                kind="message",
                title=f"Message from {sender}",
                url=f"{url}#message-{message.pk}",
                detail=_excerpt(message.body) or "(attachments)",
                pk=message.pk,
            )
        )
    return events


def task_events(
    request: WorkspaceRequest, client: Client, kinds: frozenset[str], before: Cursor | None, limit: int
) -> list[Event]:
    tasks = Task.objects.for_workspace(request.workspace).filter(client=client).select_related("assignee")
    if before is not None:
        tasks = tasks.filter(before.q("task", "created_at"))
    slug = request.workspace.slug
    events = []
    for task in tasks.order_by("-created_at", "-pk")[:limit]:
        state = "done" if task.status == Task.Status.DONE else f"due {timezone.localtime(task.due_at):%d %b %Y, %H:%M}"
        who = f" · {task.assignee.get_full_name()}" if task.assignee else ""
        events.append(
            Event(
                at=task.created_at,
                kind="task",
                title=f"Task: {task.title}",
                url=reverse("communication:task_edit", kwargs={"workspace_slug": slug, "task_id": task.pk}),
                detail=f"{task.get_source_display()} · {state}{who}",
                pk=task.pk,
            )
        )
    return events
