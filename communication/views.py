"""Views of communication: notes, the message thread, follow-up tasks and the client's timeline.

The client page shows the "Communication" section (registered with clients.hub in
ClientsConfig.ready()); its small forms post here with htmx and get the section back, or,
without htmx, are redirected to the client page.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django.contrib import messages
from django.core.files.storage import default_storage
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from clients import timeline
from clients.models import Client
from communication import services
from communication.forms import (
    CheckInForm,
    FollowUpForm,
    MessageForm,
    NoteForm,
    TaskFilterForm,
    TaskForm,
    recent_sessions,
)
from communication.markdown import render_markdown
from communication.models import Attachment, Message, Note, Task
from retainers.http import WorkspaceRequest, workspace_view

PER_PAGE = 25
SECTION_NOTES = 5
SECTION_MESSAGES = 3
SECTION_TASKS = 10
SECTION_TEMPLATE = "communication/_client_section.html"


def _client(request: WorkspaceRequest, client_id: int) -> Client:
    return get_object_or_404(Client.objects.for_workspace(request.workspace), pk=client_id)


def _client_url(request: WorkspaceRequest, client: Client | int) -> str:
    client_id = client if isinstance(client, int) else client.pk
    url = reverse("clients:client_detail", kwargs={"workspace_slug": request.workspace.slug, "client_id": client_id})
    return url + "#client-communication"


def _next_url(request: WorkspaceRequest, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return target
    return default


def _from_section(request: WorkspaceRequest) -> bool:
    """An htmx post from the client page's section: answer with the section, not a redirect."""
    return bool(request.htmx) and request.POST.get("origin") == "client"


def with_html(notes: list[Note]) -> list[Note]:
    for note in notes:
        note.html = render_markdown(note.body)
    return notes


# --- The client page's section ------------------------------------------------------------


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
    """Notes, the thread's summary, open tasks and the forms: a fixed number of queries."""
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
    tasks = list(
        Task.objects.for_workspace(workspace)
        .filter(client=client, status=Task.Status.OPEN)
        .select_related("assignee", "session")
        .order_by("due_at", "pk")[: SECTION_TASKS + 1]
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
        form.fields["session"].show_sessions(sessions)
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
        or CheckInForm(prefix="checkin", initial={"checkin_every_days": client.checkin_every_days}),
        "notice": notice,
    }


def _section_response(request: WorkspaceRequest, client: Client, **forms_and_notice: object) -> HttpResponse:
    return render(request, SECTION_TEMPLATE, {"section": client_section(request, client, **forms_and_notice)})


def _after_section_post(request: WorkspaceRequest, client: Client, notice: str) -> HttpResponse:
    if _from_section(request):
        return _section_response(request, client, notice=notice)
    messages.success(request, notice)
    return redirect(_next_url(request, _client_url(request, client)))


# --- Notes --------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@workspace_view
def note_create(request: WorkspaceRequest, client_id: int) -> HttpResponse:
    client = _client(request, client_id)
    form = NoteForm(request.POST if request.method == "POST" else None, client=client, prefix="note")
    if request.method == "POST" and form.is_valid():
        try:
            services.create_note(
                client=client,
                author=request.user,
                body=form.cleaned_data["body"],
                visibility=form.cleaned_data["visibility"],
                session=form.cleaned_data.get("session"),
            )
        except services.CommunicationError as exc:
            form.add_error(exc.field, str(exc))
        else:
            shared = form.cleaned_data["visibility"] == Note.Visibility.SHARED
            return _after_section_post(request, client, "Note shared with the client." if shared else "Note added.")
    if _from_section(request):
        return _section_response(request, client, note_form=form)
    return render(request, "communication/note_form.html", {"client": client, "form": form, "note": None})


def _note(request: WorkspaceRequest, note_id: int) -> Note:
    return get_object_or_404(Note.objects.for_workspace(request.workspace).select_related("client"), pk=note_id)


@require_http_methods(["GET", "POST"])
@workspace_view
def note_edit(request: WorkspaceRequest, note_id: int) -> HttpResponse:
    note = _note(request, note_id)
    initial = {"body": note.body, "visibility": note.visibility}
    form = NoteForm(request.POST if request.method == "POST" else None, client=note.client, note=note, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.update_note(
                note=note,
                actor=request.user,
                body=form.cleaned_data["body"],
                visibility=form.cleaned_data["visibility"],
            )
        except services.CommunicationError as exc:
            form.add_error(exc.field, str(exc))
        else:
            messages.success(request, "Note saved.")
            return redirect(_client_url(request, note.client))
    revisions = list(note.revisions.select_related("edited_by").order_by("-edited_at", "-pk"))
    for revision in revisions:
        revision.html = render_markdown(revision.body)
    context = {
        "client": note.client,
        "form": form,
        "note": note,
        "note_html": render_markdown(note.body),
        "revisions": revisions,
        "deletable": not revisions and note.visibility == Note.Visibility.PRIVATE,
    }
    return render(request, "communication/note_form.html", context)


@require_POST
@workspace_view
def note_delete(request: WorkspaceRequest, note_id: int) -> HttpResponse:
    note = _note(request, note_id)
    try:
        services.delete_note(note=note, actor=request.user)
    except services.CommunicationError as exc:
        messages.error(request, str(exc))
        return redirect("communication:note_edit", workspace_slug=request.workspace.slug, note_id=note.pk)
    messages.success(request, "Note deleted.")
    return redirect(_client_url(request, note.client))


@require_GET
@workspace_view
def note_list(request: WorkspaceRequest, client_id: int) -> HttpResponse:
    client = _client(request, client_id)
    notes = (
        Note.objects.for_workspace(request.workspace)
        .filter(client=client)
        .select_related("author", "session")
        .order_by("-created_at", "-pk")
    )
    page = Paginator(notes, PER_PAGE).get_page(request.GET.get("page"))
    with_html(list(page.object_list))
    return render(request, "communication/note_list.html", {"client": client, "page_obj": page})


# --- Messages -----------------------------------------------------------------------------


def thread_messages(workspace: object, client: Client) -> list[Message]:
    """The whole thread, oldest first, with senders and attachments: two queries."""
    return list(
        Message.objects.for_workspace(workspace)
        .filter(client=client)
        .select_related("sent_by_user", "sent_by_contact")
        .prefetch_related(Prefetch("attachments", queryset=Attachment.objects.order_by("pk")))
        .order_by("created_at", "pk")
    )


@require_http_methods(["GET", "POST"])
@workspace_view
def message_thread(request: WorkspaceRequest, client_id: int) -> HttpResponse:
    client = _client(request, client_id)
    form = MessageForm(request.POST or None, request.FILES or None)
    if request.method == "POST":
        if form.is_valid():
            try:
                message = services.send_team_message(
                    client=client,
                    author=request.user,
                    body=form.cleaned_data["body"],
                    files=form.cleaned_data["attachments"],
                )
            except services.CommunicationError as exc:
                form.add_error(exc.field, str(exc))
            else:
                messages.success(request, "Message sent.")
                url = reverse(
                    "communication:message_thread",
                    kwargs={"workspace_slug": request.workspace.slug, "client_id": client.pk},
                )
                return redirect(f"{url}#message-{message.pk}")
    thread = thread_messages(request.workspace, client)
    for message in thread:
        message.new = message.from_client and message.read_by_team_at is None
    if request.method == "GET":
        # Opening the thread reads the client's messages (the portal side has its own mark).
        services.mark_read_by_team(client=client)
    context = {
        "client": client,
        "form": form,
        "thread": thread,
        "has_portal_contacts": client.contacts.filter(portal_access=True).exists(),
    }
    return render(request, "communication/message_thread.html", context)


def attachment_response(attachment: Attachment) -> FileResponse:
    """The file as a download under its original name, never shown inline."""
    try:
        handle = default_storage.open(attachment.file.name, "rb")
    except FileNotFoundError:
        raise Http404("The file is gone") from None
    response = FileResponse(
        handle, as_attachment=True, filename=attachment.filename, content_type=attachment.content_type
    )
    response["Cache-Control"] = "private, no-store"
    return response


@require_GET
@workspace_view
def attachment_download(request: WorkspaceRequest, attachment_id: int) -> FileResponse:
    attachment = get_object_or_404(Attachment.objects.for_workspace(request.workspace), pk=attachment_id)
    return attachment_response(attachment)


# --- Tasks --------------------------------------------------------------------------------


def _task(request: WorkspaceRequest, task_id: int) -> Task:
    return get_object_or_404(Task.objects.for_workspace(request.workspace).select_related("client"), pk=task_id)


def _task_list_url(request: WorkspaceRequest) -> str:
    return reverse("communication:task_list", kwargs={"workspace_slug": request.workspace.slug})


@require_GET
@workspace_view
def task_list(request: WorkspaceRequest) -> HttpResponse:
    """Everyone's or my tasks: open, due today (or before), overdue, or done."""
    filters = TaskFilterForm(request.GET)
    who, state = filters.choice("who"), filters.choice("state")
    now = timezone.now()
    workspace = request.workspace
    end_of_today = datetime.combine(workspace.today() + timedelta(days=1), time(0), tzinfo=workspace.tzinfo)
    tasks = Task.objects.for_workspace(request.workspace).select_related("client", "assignee", "session")
    only_client = None
    if (client_id := request.GET.get("client", "")).isdigit():
        only_client = get_object_or_404(Client.objects.for_workspace(request.workspace), pk=client_id)
        tasks = tasks.filter(client=only_client)
    if who == "mine":
        tasks = tasks.filter(assignee=request.user)
    if state == "done":
        tasks = tasks.filter(status=Task.Status.DONE).order_by("-completed_at", "-pk")
    else:
        tasks = tasks.filter(status=Task.Status.OPEN).order_by("due_at", "pk")
        if state == "due":
            tasks = tasks.filter(due_at__lt=end_of_today)
        elif state == "overdue":
            tasks = tasks.filter(due_at__lt=now)
    page = Paginator(tasks, PER_PAGE).get_page(request.GET.get("page"))
    for task in page.object_list:
        task.overdue = task.status == Task.Status.OPEN and task.due_at < now
    context = {"page_obj": page, "filters": filters, "chosen": {"who": who, "state": state}, "only_client": only_client}
    template = "communication/task_list.html"
    if request.htmx and not request.htmx.boosted:
        template += "#task-rows"
    return render(request, template, context)


def _create_task(request: WorkspaceRequest, client: Client | None) -> HttpResponse:
    form = TaskForm(
        request.POST if request.method == "POST" else None,
        workspace=request.workspace,
        client=client,
        prefix="task",
        initial={
            "assignee": request.user,
            "due_at": datetime.combine(
                request.workspace.today() + timedelta(days=1), time(9), tzinfo=request.workspace.tzinfo
            ),
        },
    )
    if request.method == "POST" and form.is_valid():
        target = client or form.cleaned_data["client"]
        try:
            task = services.create_task(
                client=target,
                title=form.cleaned_data["title"],
                due_at=form.cleaned_data["due_at"],
                assignee=form.cleaned_data["assignee"],
                session=form.cleaned_data.get("session"),
                actor=request.user,
            )
        except services.CommunicationError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        else:
            notice = f"Task “{task.title}” added."
            if client is not None:
                return _after_section_post(request, client, notice)
            messages.success(request, notice)
            return redirect(_next_url(request, _task_list_url(request)))
    if client is not None and _from_section(request):
        return _section_response(request, client, task_form=form)
    return render(request, "communication/task_form.html", {"form": form, "task": None, "client": client})


@require_http_methods(["GET", "POST"])
@workspace_view
def task_create(request: WorkspaceRequest) -> HttpResponse:
    return _create_task(request, None)


@require_http_methods(["GET", "POST"])
@workspace_view
def client_task_create(request: WorkspaceRequest, client_id: int) -> HttpResponse:
    return _create_task(request, _client(request, client_id))


@require_http_methods(["GET", "POST"])
@workspace_view
def task_edit(request: WorkspaceRequest, task_id: int) -> HttpResponse:
    task = _task(request, task_id)
    initial = {"title": task.title, "due_at": task.due_at, "assignee": task.assignee_id, "session": task.session_id}
    form = TaskForm(
        request.POST if request.method == "POST" else None,
        workspace=request.workspace,
        client=task.client,
        initial=initial,
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.update_task(
                task=task,
                title=form.cleaned_data["title"],
                due_at=form.cleaned_data["due_at"],
                assignee=form.cleaned_data["assignee"],
                session=form.cleaned_data.get("session"),
                actor=request.user,
            )
        except services.CommunicationError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        else:
            messages.success(request, "Task saved.")
            return redirect(_next_url(request, _task_list_url(request)))
    context = {"form": form, "task": task, "client": task.client, "next": _next_url(request, "")}
    return render(request, "communication/task_form.html", context)


def _task_action(request: WorkspaceRequest, task_id: int, action, notice: str) -> HttpResponse:
    task = _task(request, task_id)
    action(task=task, actor=request.user)
    return _after_section_post(request, task.client, notice.format(title=task.title))


@require_POST
@workspace_view
def task_complete(request: WorkspaceRequest, task_id: int) -> HttpResponse:
    return _task_action(request, task_id, services.complete_task, "“{title}” is done.")


@require_POST
@workspace_view
def task_reopen(request: WorkspaceRequest, task_id: int) -> HttpResponse:
    return _task_action(request, task_id, services.reopen_task, "“{title}” is open again.")


@require_POST
@workspace_view
def task_delete(request: WorkspaceRequest, task_id: int) -> HttpResponse:
    return _task_action(request, task_id, services.delete_task, "“{title}” was deleted.")


@require_POST
@workspace_view
def follow_up_create(request: WorkspaceRequest, client_id: int) -> HttpResponse:
    """The "follow up in N days" suggestion after one of the client's recent sessions."""
    client = _client(request, client_id)
    form = FollowUpForm(request.POST, client=client, prefix="follow")
    if form.is_valid():
        try:
            task = services.suggest_follow_up(
                session=form.cleaned_data["session"], days=form.cleaned_data["days"], actor=request.user
            )
        except services.CommunicationError as exc:
            form.add_error(exc.field, str(exc))
        else:
            due = timezone.localtime(task.due_at)
            return _after_section_post(request, client, f"Follow-up due {due:%d %b %Y, %H:%M}.")
    if _from_section(request):
        return _section_response(request, client, follow_up_form=form)
    for error in form.errors.values():
        messages.error(request, " ".join(error))
    return redirect(_client_url(request, client))


@require_POST
@workspace_view
def checkin_update(request: WorkspaceRequest, client_id: int) -> HttpResponse:
    client = _client(request, client_id)
    form = CheckInForm(request.POST, prefix="checkin")
    if form.is_valid():
        days = form.cleaned_data["checkin_every_days"]
        services.set_checkin_cadence(client=client, every_days=days)
        notice = "Check-ins are off."
        if days:
            notice = f"Check-ins every {days} day{'s' if days != 1 else ''} without contact."
        return _after_section_post(request, client, notice)
    if _from_section(request):
        return _section_response(request, client, checkin_form=form)
    for error in form.errors.values():
        messages.error(request, " ".join(error))
    return redirect(_client_url(request, client))


# --- Timeline -----------------------------------------------------------------------------


@require_GET
@workspace_view
def client_timeline(request: WorkspaceRequest, client_id: int) -> HttpResponse:
    """Everything that happened with the client, newest first; "Load more" fetches the next page with htmx."""
    client = _client(request, client_id)
    choices = timeline.kind_choices()
    known = {kind for kind, _ in choices}
    kinds = [kind for kind in request.GET.getlist("kind") if kind in known]
    before = timeline.Cursor.decode(request.GET.get("before"))
    result = timeline.page(request, client, kinds=kinds or None, before=before)
    context = {
        "client": client,
        "choices": choices,
        "kinds": kinds,
        "events": result.events,
        "next_cursor": result.next_cursor.encode() if result.next_cursor else "",
        "paged": bool(request.GET.get("before")),
    }
    template = "communication/timeline.html"
    if request.htmx and not request.htmx.boosted:
        template += "#timeline-page"
    return render(request, template, context)


# --- Timeline providers of this app (registered in ClientsConfig.ready()) -------------------


def _excerpt(text: str, length: int = 140) -> str:
    text = " ".join(text.split())
    return text if len(text) <= length else text[: length - 1].rstrip() + "…"


def note_events(
    request: WorkspaceRequest, client: Client, kinds: frozenset[str], before: timeline.Cursor | None, limit: int
) -> list[timeline.Event]:
    notes = Note.objects.for_workspace(request.workspace).filter(client=client).select_related("author")
    if before is not None:
        notes = notes.filter(before.q("note", "created_at"))
    slug = request.workspace.slug
    return [
        timeline.Event(
            at=note.created_at,
            kind="note",
            title=("Shared note" if note.visibility == Note.Visibility.SHARED else "Private note")
            + (f" by {note.author.get_full_name()}" if note.author else ""),
            url=reverse("communication:note_edit", kwargs={"workspace_slug": slug, "note_id": note.pk}),
            detail=_excerpt(note.body),
            pk=note.pk,
        )
        for note in notes.order_by("-created_at", "-pk")[:limit]
    ]


def message_events(
    request: WorkspaceRequest, client: Client, kinds: frozenset[str], before: timeline.Cursor | None, limit: int
) -> list[timeline.Event]:
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
            timeline.Event(
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
    request: WorkspaceRequest, client: Client, kinds: frozenset[str], before: timeline.Cursor | None, limit: int
) -> list[timeline.Event]:
    tasks = Task.objects.for_workspace(request.workspace).filter(client=client).select_related("assignee")
    if before is not None:
        tasks = tasks.filter(before.q("task", "created_at"))
    slug = request.workspace.slug
    events = []
    for task in tasks.order_by("-created_at", "-pk")[:limit]:
        state = "done" if task.status == Task.Status.DONE else f"due {timezone.localtime(task.due_at):%d %b %Y, %H:%M}"
        who = f" · {task.assignee.get_full_name()}" if task.assignee else ""
        events.append(
            timeline.Event(
                at=task.created_at,
                kind="task",
                title=f"Task: {task.title}",
                url=reverse("communication:task_edit", kwargs={"workspace_slug": slug, "task_id": task.pk}),
                detail=f"{task.get_source_display()} · {state}{who}",
                pk=task.pk,
            )
        )
    return events
