"""Communication with a client: notes (with their revisions), the message thread and its
attachments, and follow-up tasks.

The tables kept the names they had when these models lived in `clients` (`clients_note` and so
on): the move to this app changed no data (see migrations clients 0006 and communication 0001).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.utils import timezone

from clients.models import Client, Contact
from delivery.models import WorkItem
from renewals.models import Renewal
from retainers.fields import EARLIEST_INSTANT, LATEST_INSTANT
from retainers.models import WorkspaceOwned


def search_column() -> SearchVectorField[str | None, str | None]:
    """The text's tsvector, kept by a trigger (migration 0004_search) on every insert and
    update, so ranking and rechecking read it rather than parse each body again; not a
    GeneratedField, which makes `manage.py check` connect to the database."""
    return SearchVectorField(null=True, editable=False)


class Note(WorkspaceOwned):
    """A note on a client, or on one delivered session. Shared notes are seen by the client in the portal."""

    class Visibility(models.TextChoices):
        PRIVATE = "private", "Private (team only)"
        SHARED = "shared", "Shared with the client"

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="notes")
    session = models.ForeignKey(WorkItem, on_delete=models.SET_NULL, null=True, blank=True, related_name="notes")
    visibility = models.CharField(max_length=8, choices=Visibility.choices, default=Visibility.PRIVATE)
    body = models.TextField(help_text="Markdown.")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    search = search_column()

    class Meta:
        db_table = "clients_note"
        indexes = [
            models.Index(fields=["workspace", "client", "created_at"], name="note_client_idx"),
            GinIndex(fields=["search"], name="note_search_column_idx"),
            models.Index(fields=["workspace", "created_at"], name="note_recent_idx"),  # search's newest matches
        ]

    def __str__(self) -> str:
        return self.body[:60]


class NoteRevision(WorkspaceOwned):
    """The text a shared note had before an edit: what the client saw stays on record."""

    note = models.ForeignKey(Note, on_delete=models.CASCADE, related_name="revisions")
    body = models.TextField()
    visibility = models.CharField(max_length=8, choices=Note.Visibility.choices)
    edited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    edited_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "clients_noterevision"


class Message(WorkspaceOwned):
    """One message in the thread between a workspace and a client's contacts."""

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="messages")
    body = models.TextField()
    sent_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="A team member; empty when a contact wrote it.",
    )
    sent_by_contact = models.ForeignKey(
        Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="messages"
    )
    read_by_team_at = models.DateTimeField(null=True, blank=True)
    read_by_client_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    search = search_column()

    class Meta:
        db_table = "clients_message"
        indexes = [
            models.Index(fields=["workspace", "client", "created_at"], name="message_client_idx"),
            GinIndex(fields=["search"], name="message_search_column_idx"),
            models.Index(fields=["workspace", "created_at"], name="message_recent_idx"),  # search's newest matches
        ]

    def __str__(self) -> str:
        return self.body[:60]

    @property
    def from_client(self) -> bool:
        return self.sent_by_contact_id is not None


class Attachment(WorkspaceOwned):
    """A file sent with a message, kept in Django's storage and served only to those who may see it."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")
    file = models.FileField(upload_to="attachments/")
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "clients_attachment"


class Task(WorkspaceOwned):
    """A follow-up: made by hand, suggested after a session, or opened by a client's check-in cadence."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        DONE = "done", "Done"

    class Source(models.TextChoices):
        MANUAL = "manual", "Added by hand"
        SESSION = "session", "After a session"
        CHECK_IN = "check_in", "Check-in due"
        RENEWAL = "renewal", "Renewal"

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="tasks")
    title = models.CharField(max_length=200)
    due_at = models.DateTimeField()
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="tasks"
    )
    session = models.ForeignKey(WorkItem, on_delete=models.SET_NULL, null=True, blank=True, related_name="tasks")
    renewal = models.ForeignKey(Renewal, on_delete=models.SET_NULL, null=True, blank=True, related_name="tasks")
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.MANUAL)
    status = models.CharField(max_length=6, choices=Status.choices, default=Status.OPEN)
    reminded_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "clients_task"
        indexes = [
            models.Index(fields=["workspace", "status", "due_at"], name="task_due_idx"),
            models.Index(fields=["workspace", "client", "status"], name="task_client_idx"),
        ]
        constraints = [
            # Typed due times stay in years every zone can show (retainers.fields): 0001-01-01 or
            # 9999-12-31 moved past Python's years by a time-zone change took the dashboard down.
            models.CheckConstraint(
                condition=models.Q(due_at__gte=EARLIEST_INSTANT, due_at__lt=LATEST_INSTANT),
                name="task_due_at_in_range",
            )
        ]

    def __str__(self) -> str:
        return self.title


class ReplyAddress(WorkspaceOwned):
    """A client's reply address, reply+<token>@INBOUND_EMAIL_DOMAIN: emails to the client carry it
    as Reply-To, and what comes back to it lands in the client's thread (communication.inbound).

    The token is kept in plain text: every email to the client must print it, so it has to be
    readable (a hash could not be turned back into the address; one derived from SECRET_KEY would
    change with the key and orphan every address already in clients' mailboxes). It is no secret
    from anyone who reads those emails; what it grants is narrow — a message in this one thread,
    and only from an address of one of the client's contacts — and a leaked one is revoked by
    making a new one. Revoked rows stay, so a reply to an old address is logged as such.
    """

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="reply_addresses")
    token = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # Mail arrives with only the token: the lookup spans workspaces (160 random bits keep
            # tokens unique without a constraint, which could not include the workspace).
            models.Index(fields=["token"], name="reply_address_token_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "client"],
                condition=models.Q(revoked_at__isnull=True),
                name="reply_address_one_current",
            )
        ]

    def __str__(self) -> str:
        return f"reply+{self.token}"


class InboundEmail(WorkspaceOwned):
    """One email received at a client's reply address, and what became of it: the operator's log.

    Posted emails link to the message they became. Dropped ones keep no body; quarantined ones (a sender
    who is not a contact, nothing new to post) keep the start of their text, so nothing a person
    wrote vanishes without a trace. Mail to no known address reaches no workspace and is only
    logged (communication.inbound).
    """

    class Outcome(models.TextChoices):
        POSTED = "posted", "Posted to the thread"
        DROPPED = "dropped", "Dropped"
        QUARANTINED = "quarantined", "Quarantined"

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="inbound_emails")
    received_at = models.DateTimeField(default=timezone.now)
    message_id = models.CharField(max_length=255, blank=True)
    sender = models.CharField(max_length=320, blank=True, help_text="The From address.")
    recipient = models.CharField(max_length=320, help_text="The reply address it came to.")
    subject = models.CharField(max_length=255, blank=True)
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    reason = models.CharField(max_length=200, blank=True)
    body = models.TextField(blank=True, help_text="The start of the text, for quarantined emails only.")
    posted_message = models.ForeignKey(Message, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        indexes = [models.Index(fields=["workspace", "received_at"], name="inbound_email_received_idx")]
        constraints = [
            # An email is posted once, however often the MTA or the provider delivers it.
            models.UniqueConstraint(
                fields=["workspace", "message_id"],
                condition=models.Q(outcome="posted") & ~models.Q(message_id=""),
                name="inbound_email_posted_once",
            )
        ]

    def __str__(self) -> str:
        return f"{self.outcome}: {self.message_id or self.subject}"
