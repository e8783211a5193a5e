"""Views of communication: notes, the message thread and follow-up tasks.

The client page (dashboard) shows the "Communication" section (communication.selectors); its
small forms post here with htmx and get the section back, or, without htmx, are redirected to
the client page.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any, cast

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import FileResponse, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from clients.models import Client
from communication import inbound, services
from communication.files import attachment_response
from communication.forms import (
    CheckInForm,
    FollowUpForm,
    MessageForm,
    NoteForm,
    TaskFilterForm,
    TaskForm,
)
from communication.markdown import render_markdown
from communication.models import Attachment, Note, Task
from communication.selectors import client_section, thread_messages, with_html
from retainers.http import WorkspaceRequest, workspace_view
from retainers.ratelimits import rate_limit

if TYPE_CHECKING:
    from collections.abc import Iterable

    from django_stubs_ext import WithAnnotations

    from communication.models import Message, NoteRevision
    from communication.selectors import MessageRow, NoteHtml, TaskRow

PER_PAGE = 25
SECTION_TEMPLATE = "communication/_client_section.html"


def _client(request: WorkspaceRequest, client_id: int) -> Client:
    return get_object_or_404(Client.objects.for_workspace(request.workspace), pk=client_id)


def _client_url(request: WorkspaceRequest, client: Client | int) -> str:
    client_id = client if isinstance(client, int) else client.pk
    # The client page's Communication tab, where the section lives.
    url = reverse(
        "dashboard:client_communication", kwargs={"workspace_slug": request.workspace.slug, "client_id": client_id}
    )
    return url + "#client-communication"


def _next_url(request: WorkspaceRequest, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return target
    return default


def _from_section(request: WorkspaceRequest) -> bool:
    """An htmx post from the client page's section: answer with the section, not a redirect."""
    return bool(request.htmx) and request.POST.get("origin") == "client"


def _section_response(request: WorkspaceRequest, client: Client, **forms_and_notice: Any) -> HttpResponse:
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
    return get_object_or_404(
        Note.objects.for_workspace(request.workspace).select_related("client", "session"), pk=note_id
    )


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
    revisions = cast(  # with their HTML set below
        "list[WithAnnotations[NoteRevision, NoteHtml]]",
        list(note.revisions.select_related("edited_by").order_by("-edited_at", "-pk")),
    )
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


@rate_limit("message_send", methods=("POST",))
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
    thread = cast("list[WithAnnotations[Message, MessageRow]]", thread_messages(request.workspace, client))
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


@rate_limit("attachment_download")
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
    for task in cast("Iterable[WithAnnotations[Task, TaskRow]]", page.object_list):
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
        messages.error(request, " ".join(error))  # type: ignore[arg-type]  # django-stubs: an ErrorList iterates as its messages
    return redirect(_client_url(request, client))


@require_POST
@workspace_view
def checkin_update(request: WorkspaceRequest, client_id: int) -> HttpResponse:
    client = _client(request, client_id)
    form = CheckInForm(request.POST, prefix="checkin")
    if form.is_valid():
        days = form.cleaned_data["checkin_every_days"]
        email_client = form.cleaned_data["checkin_email_client"]
        services.set_checkin_cadence(client=client, every_days=days, email_client=email_client)
        notice = "Check-ins are off."
        if days:
            notice = f"Check-ins every {days} day{'s' if days != 1 else ''} without contact."
            if email_client:
                notice += " The client is emailed to book a session too."
        return _after_section_post(request, client, notice)
    if _from_section(request):
        return _section_response(request, client, checkin_form=form)
    for error in form.errors.values():
        messages.error(request, " ".join(error))  # type: ignore[arg-type]  # django-stubs: an ErrorList iterates as its messages
    return redirect(_client_url(request, client))


@require_POST
@workspace_view
def reply_address_regenerate(request: WorkspaceRequest, client_id: int) -> HttpResponse:
    """A new reply address for the client; replies to the old one are dropped from now on."""
    client = _client(request, client_id)
    inbound.regenerate_reply_address(client=client, actor=request.user)
    return _after_section_post(
        request, client, "New reply address made: replies to the old one are no longer accepted."
    )
