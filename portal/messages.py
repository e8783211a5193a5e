"""The portal's messages and shared notes: a contact sees and writes only their own client's thread."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import FileResponse, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from communication import services as communication
from communication.files import attachment_response
from communication.forms import MessageForm
from communication.models import Attachment, Note
from communication.selectors import thread_messages, with_html
from portal.http import PortalRequest, portal_view
from retainers.ratelimits import rate_limit

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

    from communication.models import Message
    from communication.selectors import MessageRow

NOTES_PER_PAGE = 20


def _thread_page(request: PortalRequest, form: MessageForm, *, status: int = 200) -> HttpResponse:
    client = request.contact.client
    thread = cast("list[WithAnnotations[Message, MessageRow]]", thread_messages(request.workspace, client))
    for message in thread:
        message.new = not message.from_client and message.read_by_client_at is None
    return render(request, "portal/messages.html", {"thread": thread, "form": form}, status=status)


@require_GET
@portal_view
def message_list(request: PortalRequest) -> HttpResponse:
    response = _thread_page(request, MessageForm())
    # Opening the thread reads the team's messages (for every contact of this client).
    communication.mark_read_by_client(client=request.contact.client)
    return response


@rate_limit("message_send")
@require_POST
@portal_view
def message_send(request: PortalRequest) -> HttpResponse:
    form = MessageForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            message = communication.send_contact_message(
                contact=request.contact, body=form.cleaned_data["body"], files=form.cleaned_data["attachments"]
            )
        except communication.CommunicationError as exc:
            form.add_error(exc.field, str(exc))
        else:
            messages.success(request, f"Message sent to {request.workspace.name}.")
            url = reverse("portal:message_list", kwargs={"workspace_slug": request.workspace.slug})
            return redirect(f"{url}#message-{message.pk}")
    return _thread_page(request, form)


@rate_limit("attachment_download")
@require_GET
@portal_view
def message_attachment(request: PortalRequest, attachment_id: int) -> FileResponse:
    attachment = get_object_or_404(
        Attachment.objects.for_workspace(request.workspace).filter(message__client=request.contact.client),
        pk=attachment_id,
    )
    return attachment_response(attachment)


@require_GET
@portal_view
def shared_notes(request: PortalRequest) -> HttpResponse:
    """The notes the team shared with the client, newest first."""
    notes = (
        Note.objects.for_workspace(request.workspace)
        .filter(client=request.contact.client, visibility=Note.Visibility.SHARED)
        .select_related("author", "session")
        .order_by("-created_at", "-pk")
    )
    page = Paginator(notes, NOTES_PER_PAGE).get_page(request.GET.get("page"))
    with_html(list(page.object_list))
    return render(request, "portal/messages_notes.html", {"page_obj": page})
