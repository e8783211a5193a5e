"""Workflows of communication: notes, the message thread and its attachments, follow-up tasks.

Notes and tasks may point at a delivered session (a delivery.WorkItem), tasks also at a renewal.
"""

from __future__ import annotations

import os
import re
import secrets
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import models, transaction
from django.urls import reverse
from django.utils import timezone

from clients.models import Client, Contact, Retainer
from communication.models import Attachment, Message, Note, NoteRevision, Task
from delivery.models import WorkItem
from renewals.models import Renewal
from retainers.fields import instant_range_error
from retainers.models import Membership, User, Workspace
from retainers.outbox import queue_email


class CommunicationError(Exception):
    """A change that is not allowed. `field` names the form field it belongs to, if any."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _check_session(client: Client, session: WorkItem | None) -> None:
    if session is None:
        return
    same_client = Retainer.objects.filter(
        workspace_id=client.workspace_id, pk=session.retainer_id, client_id=client.pk
    ).exists()
    if session.workspace_id != client.workspace_id or not same_client:
        raise CommunicationError("That session belongs to another client.", field="session")


# --- Notes ------------------------------------------------------------------------------

MAX_NOTE_LENGTH = 20_000


def _clean_body(body: str, *, limit: int, field: str = "body", what: str = "the note") -> str:
    body = (body or "").strip()
    if not body:
        raise CommunicationError(f"Write {what} first.", field=field)
    if len(body) > limit:
        raise CommunicationError(f"Keep {what} under {limit:,} characters.", field=field)
    return body


def _check_visibility(visibility: str) -> str:
    if visibility not in Note.Visibility.values:
        raise CommunicationError("Choose who sees the note.", field="visibility")
    return visibility


def note_was_shared(note: Note) -> bool:
    """Shared now, or shared before (an edit then kept a revision of what the client saw)."""
    return note.visibility == Note.Visibility.SHARED or note.revisions.exists()


@transaction.atomic
def create_note(
    *, client: Client, author: User | None, body: str, visibility: str, session: WorkItem | None = None
) -> Note:
    """Add a note on the client, or on one of its sessions."""
    _check_session(client, session)
    now = timezone.now()
    return Note.objects.create(
        workspace_id=client.workspace_id,
        client=client,
        session=session,
        visibility=_check_visibility(visibility),
        body=_clean_body(body, limit=MAX_NOTE_LENGTH),
        author=author,
        created_at=now,
        updated_at=now,
    )


@transaction.atomic
def update_note(*, note: Note, actor: User | None, body: str, visibility: str) -> Note:
    """Change a note. Locks it; a note that is or was shared first keeps its current text as a revision."""
    note = Note.objects.select_for_update().get(pk=note.pk)
    body, visibility = _clean_body(body, limit=MAX_NOTE_LENGTH), _check_visibility(visibility)
    if body == note.body and visibility == note.visibility:
        return note
    now = timezone.now()
    if note_was_shared(note):
        NoteRevision.objects.create(
            workspace_id=note.workspace_id,
            note=note,
            body=note.body,
            visibility=note.visibility,
            edited_by=actor,
            edited_at=now,
        )
    note.body, note.visibility, note.updated_at = body, visibility, now
    note.save(update_fields=["body", "visibility", "updated_at"])
    return note


@transaction.atomic
def delete_note(*, note: Note, actor: User | None) -> None:
    """Delete a private note. A note the client has seen cannot be deleted: make it private instead.

    Deleting a shared note would erase, without a trace, something the client read (and may
    have acted on); the edit history exists to keep that on record. Making it private hides
    it from the portal and keeps the history.
    """
    note = Note.objects.select_for_update().get(pk=note.pk)
    if note_was_shared(note):
        raise CommunicationError(
            "This note has been shared with the client, so it is kept on record. "
            "Edit it to make it private if the client should no longer see it."
        )
    note.delete()


# --- Attachments --------------------------------------------------------------------------

MAX_FILE_SIZE = 5 * 1024 * 1024
MAX_TOTAL_SIZE = 10 * 1024 * 1024
MAX_FILES = 10
SNIFF_BYTES = 2048


def _is_text(head: bytes) -> bool:
    """Plain text or CSV: no NUL bytes and no control characters but tab, newlines and form feed."""
    if b"\x00" in head:
        return False
    return not re.search(rb"[\x01-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f]", head)


# extension -> (content type served, check of the first bytes)
ALLOWED_TYPES: dict[str, tuple[str, Callable[[bytes], bool]]] = {
    ".pdf": ("application/pdf", lambda h: h.startswith(b"%PDF-")),
    ".png": ("image/png", lambda h: h.startswith(b"\x89PNG\r\n\x1a\n")),
    ".jpg": ("image/jpeg", lambda h: h.startswith(b"\xff\xd8\xff")),
    ".jpeg": ("image/jpeg", lambda h: h.startswith(b"\xff\xd8\xff")),
    ".gif": ("image/gif", lambda h: h.startswith((b"GIF87a", b"GIF89a"))),
    ".webp": ("image/webp", lambda h: h[:4] == b"RIFF" and h[8:12] == b"WEBP"),
    ".txt": ("text/plain", _is_text),
    ".csv": ("text/csv", _is_text),
    ".docx": (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        lambda h: h.startswith(b"PK\x03\x04"),
    ),
    ".xlsx": (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        lambda h: h.startswith(b"PK\x03\x04"),
    ),
}
ALLOWED_DESCRIPTION = "PDF, PNG, JPEG, GIF, WebP, text, CSV, Word (.docx) or Excel (.xlsx)"


@dataclass(frozen=True)
class CheckedFile:
    upload: UploadedFile[bytes]
    filename: str
    content_type: str
    size: int


def _display_filename(name: str | None) -> str:
    """The name to offer on download: the base name only, without control characters, at most 255 long."""
    name = os.path.basename((name or "").replace("\\", "/"))
    name = "".join(ch for ch in unicodedata.normalize("NFC", name) if unicodedata.category(ch)[0] != "C").strip()
    if len(name) > 255:
        stem, ext = os.path.splitext(name)
        name = stem[: 255 - len(ext)] + ext
    return name or "attachment"


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MB"


def check_attachments(files: Sequence[UploadedFile[bytes]]) -> list[CheckedFile]:
    """Each file's size, extension and first bytes, or CommunicationError (field "attachments").

    The type is decided by the extension AND the content: a renamed executable is refused,
    and the content type we later serve comes from this table, never from the browser.
    """
    files = [f for f in files if f is not None]
    if len(files) > MAX_FILES:
        raise CommunicationError(f"Attach at most {MAX_FILES} files to one message.", field="attachments")
    checked, total = [], 0
    for upload in files:
        filename = _display_filename(upload.name)
        ext = os.path.splitext(filename)[1].lower()
        assert upload.size is not None  # an upload knows its size
        if upload.size > MAX_FILE_SIZE:
            raise CommunicationError(
                f"“{filename}” is larger than {_megabytes(MAX_FILE_SIZE)}; each file may be at most that.",
                field="attachments",
            )
        total += upload.size
        if ext not in ALLOWED_TYPES:
            raise CommunicationError(
                f"“{filename}” is not a file type we accept. Attach {ALLOWED_DESCRIPTION} files.",
                field="attachments",
            )
        content_type, sniff = ALLOWED_TYPES[ext]
        upload.seek(0)
        head = upload.read(SNIFF_BYTES)
        upload.seek(0)
        if not head or not sniff(head):
            raise CommunicationError(
                f"“{filename}” does not look like a {ext[1:].upper()} file; its content and its name disagree.",
                field="attachments",
            )
        checked.append(CheckedFile(upload=upload, filename=filename, content_type=content_type, size=upload.size))
    if total > MAX_TOTAL_SIZE:
        raise CommunicationError(
            f"The files add up to more than {_megabytes(MAX_TOTAL_SIZE)}; send some in another message.",
            field="attachments",
        )
    return checked


def _store(workspace_id: int, file: CheckedFile) -> str:
    # A random name: the person's filename never reaches the filesystem (it is kept in the row).
    return default_storage.save(f"attachments/{workspace_id}/{secrets.token_hex(16)}", file.upload)


# --- Messages -----------------------------------------------------------------------------

MAX_MESSAGE_LENGTH = 10_000


def team_recipients(client: Client) -> list[User]:
    """Who hears about a client's message: the owners and admins, and the members who wrote in this thread.

    Owners and admins answer for every client; a member who has written to this client is
    part of the conversation. Other members are not emailed about every client's messages.
    """
    writers = Message.objects.filter(workspace_id=client.workspace_id, client=client, sent_by_user__isnull=False)
    members = Membership.objects.filter(workspace_id=client.workspace_id, user__is_active=True).filter(
        models.Q(role__in=[Membership.Role.OWNER, Membership.Role.ADMIN])
        | models.Q(user__in=writers.values("sent_by_user"))
    )
    return [m.user for m in members.select_related("user").order_by("user_id")]


def portal_recipients(client: Client) -> list[Contact]:
    """The client's contacts who can read the thread: those with portal access (none while archived)."""
    if client.status != Client.Status.ACTIVE:
        return []  # the portal is closed to an archived client's contacts: a link would lead nowhere
    return list(
        Contact.objects.filter(workspace_id=client.workspace_id, client=client, portal_access=True).order_by("pk")
    )


def send_team_message(*, client: Client, author: User, body: str, files: Sequence[UploadedFile[bytes]] = ()) -> Message:
    """A team member writes to the client; every contact with portal access is emailed once."""
    return _send(client=client, body=body, files=files, author=author, contact=None)


def send_contact_message(
    *, contact: Contact, body: str, files: Sequence[UploadedFile[bytes]] = (), by_email: bool = False
) -> Message:
    """A client's contact writes from the portal, or by replying to an email (`by_email`, from
    communication.inbound); the team (see `team_recipients`) is emailed once each."""
    return _send(client=contact.client, body=body, files=files, author=None, contact=contact, by_email=by_email)


def _send(
    *,
    client: Client,
    body: str,
    files: Sequence[UploadedFile[bytes]],
    author: User | None,
    contact: Contact | None,
    by_email: bool = False,
) -> Message:
    body = (body or "").strip()
    if len(body) > MAX_MESSAGE_LENGTH:
        raise CommunicationError(f"Keep the message under {MAX_MESSAGE_LENGTH:,} characters.", field="body")
    checked = check_attachments(files)
    if not body and not checked:
        raise CommunicationError("Write a message or attach a file.", field="body")
    # Files are written before the transaction (storage is not transactional) and removed
    # again if it fails, so a failed send leaves neither rows nor files behind.
    stored = [_store(client.workspace_id, f) for f in checked]
    try:
        return _record_message(
            client=client,
            body=body,
            author=author,
            contact=contact,
            files=list(zip(checked, stored, strict=True)),
            by_email=by_email,
        )
    except BaseException:
        for path in stored:
            default_storage.delete(path)
        raise


@transaction.atomic
def _record_message(
    *,
    client: Client,
    body: str,
    author: User | None,
    contact: Contact | None,
    files: list[tuple[CheckedFile, str]],
    by_email: bool,
) -> Message:
    now = timezone.now()
    message = Message.objects.create(
        workspace_id=client.workspace_id,
        client=client,
        body=body,
        sent_by_user=author,
        sent_by_contact=contact,
        created_at=now,
        # The sender has read their own message.
        read_by_team_at=now if contact is None else None,
        read_by_client_at=now if contact is not None else None,
    )
    Attachment.objects.bulk_create(
        Attachment(
            workspace_id=client.workspace_id,
            message=message,
            file=path,
            filename=checked.filename,
            content_type=checked.content_type,
            size=checked.size,
            created_at=now,
        )
        for checked, path in files
    )
    _notify(message, client=client, attachments=len(files), by_email=by_email)
    return message


def _notify(message: Message, *, client: Client, attachments: int, by_email: bool) -> None:
    workspace = Workspace.objects.get(pk=client.workspace_id)
    context = {
        "message": message,
        "client": client,
        "workspace": workspace,
        "attachments": attachments,
        "by_email": by_email,
    }
    if message.sent_by_contact_id is None:
        url = settings.SITE_URL + reverse("portal:message_list", kwargs={"workspace_slug": workspace.slug})
        sender = message.sent_by_user.get_full_name() if message.sent_by_user else workspace.name
        for contact in portal_recipients(client):
            queue_email(
                to=contact.email,
                template="message_from_team",
                client_id=client.pk,
                context={**context, "recipient_name": contact.name, "sender": sender, "url": url},
                workspace=workspace,
                key=f"message-{message.pk}-contact-{contact.pk}",
            )
        return
    assert message.sent_by_contact is not None  # its id is set (and the contact is loaded with it)
    url = settings.SITE_URL + reverse(
        "communication:message_thread", kwargs={"workspace_slug": workspace.slug, "client_id": client.pk}
    )
    for user in team_recipients(client):
        queue_email(
            to=user.email,
            template="message_from_client",
            context={
                **context,
                "recipient_name": user.get_short_name(),
                "sender": message.sent_by_contact.name,
                "url": url,
            },
            workspace=workspace,
            key=f"message-{message.pk}-user-{user.pk}",
        )


def mark_read_by_team(*, client: Client, now: datetime | None = None) -> int:
    """The team opened the thread: the client's messages are read. Returns how many changed."""
    return Message.objects.filter(
        workspace_id=client.workspace_id, client=client, sent_by_contact__isnull=False, read_by_team_at=None
    ).update(read_by_team_at=now or timezone.now())


def mark_read_by_client(*, client: Client, now: datetime | None = None) -> int:
    """A contact opened the thread in the portal: the team's messages are read (for all the client's contacts)."""
    return Message.objects.filter(
        workspace_id=client.workspace_id, client=client, sent_by_contact__isnull=True, read_by_client_at=None
    ).update(read_by_client_at=now or timezone.now())


def unread_by_team(workspace: Workspace | int) -> models.QuerySet[Message]:
    return Message.objects.for_workspace(workspace).filter(sent_by_contact__isnull=False, read_by_team_at=None)


def unread_by_client(workspace: Workspace | int, client: Client) -> models.QuerySet[Message]:
    return Message.objects.for_workspace(workspace).filter(
        client=client, sent_by_contact__isnull=True, read_by_client_at=None
    )


# --- Follow-up tasks ----------------------------------------------------------------------

FOLLOW_UP_AT = time(9, 0)  # suggested follow-ups fall due at 9:00 in the workspace's time zone
MAX_FOLLOW_UP_DAYS = 365


def _check_assignee(workspace_id: int, assignee: User | None) -> None:
    if assignee is not None and not Membership.objects.filter(workspace_id=workspace_id, user=assignee).exists():
        raise CommunicationError("Assign the task to a member of this workspace.", field="assignee")


def _check_due_at(due_at: datetime) -> datetime:
    """Within the years people may type (retainers.fields), so any zone can show it; the database
    refuses the rest too (task_due_at_in_range)."""
    if message := instant_range_error(due_at):
        raise CommunicationError(message, field="due_at")
    return due_at


def _clean_title(title: str) -> str:
    title = " ".join((title or "").split())
    if not title:
        raise CommunicationError("Give the task a title.", field="title")
    return title[:200]


@transaction.atomic
def create_task(
    *,
    client: Client,
    title: str,
    due_at: datetime,
    actor: User | None,
    assignee: User | None = None,
    session: WorkItem | None = None,
    renewal: Renewal | None = None,
    source: str = Task.Source.MANUAL,
) -> Task:
    """Add an open follow-up for the client, optionally linked to a session or a renewal."""
    _check_assignee(client.workspace_id, assignee)
    _check_session(client, session)
    if renewal is not None and renewal.workspace_id != client.workspace_id:
        raise CommunicationError("That renewal belongs to another workspace.", field="renewal")
    return Task.objects.create(
        workspace_id=client.workspace_id,
        client=client,
        title=_clean_title(title),
        due_at=_check_due_at(due_at),
        assignee=assignee,
        session=session,
        renewal=renewal,
        source=source,
        created_by=actor,
    )


@transaction.atomic
def update_task(
    *,
    task: Task,
    title: str,
    due_at: datetime,
    assignee: User | None,
    actor: User | None,
    session: WorkItem | None = None,
) -> Task:
    """Change a task. A new due time (or assignee) arms its reminder again."""
    task = Task.objects.select_for_update().select_related("client").get(pk=task.pk)
    _check_assignee(task.workspace_id, assignee)
    _check_session(task.client, session)
    rearm = due_at != task.due_at or (assignee.pk if assignee else None) != task.assignee_id
    task.title, task.due_at, task.assignee, task.session = _clean_title(title), _check_due_at(due_at), assignee, session
    fields = ["title", "due_at", "assignee", "session"]
    if rearm:
        task.reminded_at = None
        fields.append("reminded_at")
    task.save(update_fields=fields)
    return task


@transaction.atomic
def complete_task(*, task: Task, actor: User | None) -> Task:
    """Mark done. Idempotent: completing a done task changes nothing."""
    Task.objects.filter(pk=task.pk, status=Task.Status.OPEN).update(
        status=Task.Status.DONE, completed_at=timezone.now()
    )
    task.refresh_from_db()
    return task


@transaction.atomic
def reopen_task(*, task: Task, actor: User | None) -> Task:
    """Open a done task again. Idempotent."""
    Task.objects.filter(pk=task.pk, status=Task.Status.DONE).update(status=Task.Status.OPEN, completed_at=None)
    task.refresh_from_db()
    return task


@transaction.atomic
def delete_task(*, task: Task, actor: User | None) -> None:
    Task.objects.filter(pk=task.pk).delete()


@transaction.atomic
def suggest_follow_up(*, session: WorkItem, days: int, actor: User | None) -> Task:
    """Open a follow-up `days` after a delivered session, due at 9:00 local time.

    Idempotent per session: while a follow-up of that session is open, it is returned
    unchanged (a double click makes one task; edit it to move it).
    """
    if not 1 <= days <= MAX_FOLLOW_UP_DAYS:
        raise CommunicationError(f"Choose between 1 and {MAX_FOLLOW_UP_DAYS} days.", field="days")
    retainer = Retainer.objects.select_related("client", "workspace").get(pk=session.retainer_id)
    client, workspace = retainer.client, retainer.workspace
    Client.objects.select_for_update().filter(pk=client.pk).first()  # serialises double clicks
    existing = Task.objects.filter(
        workspace_id=workspace.pk, session_id=session.pk, source=Task.Source.SESSION, status=Task.Status.OPEN
    ).first()
    if existing is not None:
        return existing
    due_at = datetime.combine(session.delivered_on + timedelta(days=days), FOLLOW_UP_AT, tzinfo=workspace.tzinfo)
    is_member = actor is not None and Membership.objects.filter(workspace_id=workspace.pk, user=actor).exists()
    assignee = actor if is_member else None
    if assignee is None and session.delivered_by_id:
        membership = Membership.objects.filter(workspace_id=workspace.pk, user_id=session.delivered_by_id).first()
        assignee = membership.user if membership else None
    title = f"Follow up with {client.name} on “{session.description}”"
    return create_task(
        client=client,
        title=title if len(title) <= 200 else title[:198] + "…”",
        due_at=due_at,
        actor=actor,
        assignee=assignee,
        session=session,
        source=Task.Source.SESSION,
    )


@transaction.atomic
def set_checkin_cadence(*, client: Client, every_days: int | None, email_client: bool | None = None) -> Client:
    """How many quiet days (no session, no message) open a check-in task; None turns it off. With
    `email_client`, each check-in also emails the client's portal contacts to book their next
    session (None leaves that as it is)."""
    if every_days is not None and not 1 <= every_days <= 365:
        raise CommunicationError("Choose between 1 and 365 days, or leave it empty.", field="checkin_every_days")
    if email_client is not None:
        client.checkin_email_client = email_client
    Client.objects.filter(pk=client.pk).update(
        checkin_every_days=every_days, checkin_email_client=client.checkin_email_client
    )
    client.checkin_every_days = every_days
    return client


@transaction.atomic
def open_check_in(*, client: Client, due_at: datetime, assignee: User | None) -> Task | None:
    """Open the client's check-in task, unless one is open already. Locks the client row, so
    two runs of the reminders job open one task."""
    Client.objects.select_for_update().filter(pk=client.pk).first()
    if Task.objects.filter(
        workspace_id=client.workspace_id, client=client, source=Task.Source.CHECK_IN, status=Task.Status.OPEN
    ).exists():
        return None
    days = client.checkin_every_days
    return Task.objects.create(
        workspace_id=client.workspace_id,
        client=client,
        title=f"Check in with {client.name}: nothing for {days} day{'s' if days != 1 else ''}",
        due_at=due_at,
        assignee=assignee,
        source=Task.Source.CHECK_IN,
        created_at=due_at,
    )
