"""Replies by email: each client's reply address, and the emails that come back to it.

Emails to a client carry `Reply-To: reply+<token>@<INBOUND_EMAIL_DOMAIN>` (`reply_address`).
An answer reaches us as one raw RFC 822 message, piped by the MTA into `manage.py receive_email`
or posted by an inbound-mail provider to the webhook (`communication.public_views`); both call
`receive_email`. It posts the email to the client's thread — the new text only, its attachments
within the thread's limits — through the same service as a portal message, so the team is told
the same way. Everything else is dropped or quarantined, never posted, and logged:

| what arrives | outcome |
|---|---|
| to no reply address, or one we never made | dropped; logged only (no workspace to keep a row in) |
| to a revoked address | dropped |
| a bounce (null sender, `multipart/report`, MAILER-DAEMON) | dropped |
| an automatic reply (`Auto-Submitted`, `X-Autoreply`, `Precedence: bulk/junk/list`) | dropped |
| a Message-ID this workspace posted already (an MTA's second delivery) | dropped |
| from someone who is not a contact of that client | quarantined, with the start of its text |
| with nothing new in it (only quoted text) | quarantined, with the start of its text |

Every email that reached a workspace's address leaves an `InboundEmail` row saying which.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import mimetypes
import re
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.message import Message as MimeMessage
from email.parser import BytesParser
from email.utils import getaddresses

from django.conf import settings
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile, UploadedFile
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.utils import timezone

from clients.models import Client, Contact
from communication import mailtext, services
from communication.models import InboundEmail, Message, ReplyAddress
from retainers import tenancy
from retainers.models import User

log = logging.getLogger(__name__)

TOKEN_BYTES = 20  # 160 random bits: 32 base32 characters
LOCAL_PART = re.compile(r"^reply\+([a-z2-7]{32})$")  # matched lower-cased: some MTAs fold the case of addresses
MAX_EMAIL_BYTES = 25 * 1024 * 1024
QUARANTINE_CHARS = 2_000  # how much of a quarantined email's text its log row keeps
SIGNATURE_IMAGE_BYTES = 16 * 1024  # an inline picture the HTML draws, this small, is a logo in a signature
MAX_NOTES = 10  # files left out that the message lists by name
NOTES_ROOM = 2_000  # characters of a message kept for the list of files left out
FULL_TEXT_NAME = "message.txt"


class NotAnEmail(Exception):
    """The input is not an RFC 822 email: nothing to deliver (the command exits 65, the webhook answers 400)."""


class TryLater(Exception):
    """A temporary failure, such as the database being down: the sender's MTA or provider should deliver again."""


@dataclass(frozen=True)
class Receipt:
    """What became of one received email."""

    outcome: str  # an InboundEmail.Outcome value
    reason: str = ""
    message: Message | None = None

    def __str__(self) -> str:
        return f"{self.outcome}: {self.reason}" if self.reason else self.outcome


# --- Reply addresses ----------------------------------------------------------------------------


def new_token() -> str:
    """An unguessable token that survives email: lower-case letters and digits 2-7 only."""
    return base64.b32encode(secrets.token_bytes(TOKEN_BYTES)).decode("ascii").lower()


def address_for(token: str) -> str:
    return f"reply+{token}@{settings.INBOUND_EMAIL_DOMAIN}"


def current_reply_address(client: Client) -> ReplyAddress:
    """The client's current reply address row, made on first use. Safe inside any transaction.

    Two emails queued at once for a new client both try to make it; the partial unique
    constraint lets one win and the other reads the winner's row.
    """
    found = ReplyAddress.objects.filter(workspace_id=client.workspace_id, client=client, revoked_at=None).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return ReplyAddress.objects.create(workspace_id=client.workspace_id, client=client, token=new_token())
    except IntegrityError:
        return ReplyAddress.objects.get(workspace_id=client.workspace_id, client=client, revoked_at=None)


def reply_address(client: Client) -> str:
    """The address a reply to any email to this client should go to: its thread's, reply+<token>@domain."""
    return address_for(current_reply_address(client).token)


def reply_address_of(workspace_id: int, client_id: int) -> str:
    """`reply_address` by ids, as the outbox asks for it (registered in CommunicationConfig.ready)."""
    return reply_address(Client.objects.get(workspace_id=workspace_id, pk=client_id))


def shown_reply_address(client: Client) -> str:
    """The client's current reply address for a page to show, or "" before the first one is made (reads only)."""
    found = ReplyAddress.objects.filter(workspace_id=client.workspace_id, client=client, revoked_at=None).first()
    return address_for(found.token) if found else ""


@transaction.atomic
def regenerate_reply_address(*, client: Client, actor: User | None) -> str:
    """Revoke the client's reply address and make a new one; mail to the old one is dropped from now on.
    Locks the client row, so two clicks leave one current address."""
    Client.objects.select_for_update().filter(pk=client.pk).first()
    ReplyAddress.objects.filter(workspace_id=client.workspace_id, client=client, revoked_at=None).update(
        revoked_at=timezone.now()
    )
    made = ReplyAddress.objects.create(workspace_id=client.workspace_id, client=client, token=new_token())
    log.info("reply address of client %s regenerated by user %s", client.pk, actor.pk if actor else None)
    return address_for(made.token)


def token_of(address: str) -> str | None:
    """The token of a reply address (any domain: the token alone names the client), or None."""
    local = address.strip().strip("<>").rpartition("@")[0].lower()
    match = LOCAL_PART.match(local)
    return match.group(1) if match else None


# --- Reading an email ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EmailFile:
    filename: str
    content_type: str
    content: bytes


def parse(raw: bytes) -> EmailMessage:
    """The email in `raw`, or NotAnEmail: an email has at least a header block with a From."""
    if not raw.strip():
        raise NotAnEmail("The input is empty: expected one RFC 822 email.")
    email = BytesParser(policy=policy.default).parsebytes(raw)
    if email.get("From") is None:
        raise NotAnEmail("The input is not an RFC 822 email: it has no From header.")
    return email


def header(email: MimeMessage, name: str) -> str:
    """A header's decoded value on one line, "" when it is missing or unreadable."""
    try:
        value = email.get(name)
        text = "" if value is None else str(value)
    except Exception:  # the header parser fails in odd ways on malformed headers: treat as absent
        return ""
    return " ".join(mailtext.clean(text).split())


def addresses(email: MimeMessage, *names: str) -> list[str]:
    """The lower-cased addresses in these headers, in order."""
    values = []
    for name in names:
        try:
            values += [str(value) for value in email.get_all(name) or []]
        except Exception:  # as in `header`
            continue
    return [address.strip().lower() for _, address in getaddresses(values) if "@" in address]


def bounce_reason(email: MimeMessage, *, envelope_sender: str | None, sender: str) -> str:
    """Why this is a bounce, or "" when it is not."""
    if envelope_sender is not None and envelope_sender.strip().strip("<>").lower() in ("", "mailer-daemon"):
        return "a bounce: the envelope sender is empty"
    return_path = email.get("Return-Path")
    if return_path is not None and not header(email, "Return-Path").strip("<> "):
        return "a bounce: the Return-Path is empty"
    if email.get_content_type() == "multipart/report":
        return "a bounce: a delivery report (multipart/report)"
    if sender.partition("@")[0] in ("mailer-daemon", "postmaster"):
        return "a bounce: sent by MAILER-DAEMON"
    return ""


def auto_reply_reason(email: MimeMessage) -> str:
    """Why this was sent by a machine (an out-of-office, a list), or "" when a person sent it (RFC 3834)."""
    submitted = header(email, "Auto-Submitted").lower()
    if submitted and not submitted.startswith("no"):
        return f"an automatic reply (Auto-Submitted: {submitted[:50]})"
    for name in ("X-Autoreply", "X-Autorespond"):
        if email.get(name) is not None:
            return f"an automatic reply ({name})"
    precedence = header(email, "Precedence").lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return f"an automatic reply (Precedence: {precedence})"
    return ""


def _leaves(part: MimeMessage) -> Iterator[MimeMessage]:
    """The non-multipart parts, depth first. An attached email (message/rfc822) is one leaf, not opened."""
    if part.get_content_maintype() == "multipart":
        for sub in part.get_payload():
            if isinstance(sub, MimeMessage):
                yield from _leaves(sub)
    else:
        yield part


def _text_of(part: MimeMessage) -> str:
    payload = part.get_payload(decode=True)
    raw = payload if isinstance(payload, bytes) else b""
    charset = part.get_content_charset() or "utf-8"
    try:
        text = raw.decode(charset, errors="replace")
    except LookupError:  # a charset Python does not know
        text = raw.decode("utf-8", errors="replace")
    text = text.replace("\r\n", "\n")
    if str(part.get_param("format") or "").lower() == "flowed":
        text = mailtext.unflow(text, delsp=str(part.get_param("delsp") or "").lower() == "yes")
    return text


def _is_attachment(part: MimeMessage) -> bool:
    return part.get_content_disposition() == "attachment" or bool(part.get_filename())


def body_text(email: EmailMessage) -> str:
    """The email's whole text, quotes and all: its text/plain part, else its HTML part as text (never HTML)."""
    plain = email.get_body(preferencelist=("plain",))
    if plain is not None and not _is_attachment(plain) and (text := mailtext.clean(_text_of(plain))):
        return text
    html = email.get_body(preferencelist=("html",))
    if html is not None and not _is_attachment(html):
        return mailtext.html_to_text(_text_of(html))
    return ""


def _content(part: MimeMessage) -> bytes:
    if part.get_content_maintype() == "message":
        inner = part.get_payload()
        inner = inner[0] if isinstance(inner, list) and inner else inner
        return inner.as_bytes() if isinstance(inner, MimeMessage) else b""
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def files_of(email: EmailMessage) -> list[EmailFile]:
    """The files attached to the email, in order; not the text and HTML bodies, nor small logos the HTML shows."""
    html_part = email.get_body(preferencelist=("html",))
    html = _text_of(html_part) if html_part is not None else ""
    found = []
    for part in _leaves(email):
        content_type = part.get_content_type()
        if not _is_attachment(part) and content_type in ("text/plain", "text/html"):
            continue  # a body, or one of its alternatives
        content = _content(part)
        content_id = header(part, "Content-ID").strip("<> ")
        if (
            content_id
            and part.get_content_disposition() != "attachment"
            and f"cid:{content_id}" in html
            and len(content) <= SIGNATURE_IMAGE_BYTES
        ):
            continue
        name = part.get_filename() or f"attachment{mimetypes.guess_extension(content_type) or ''}"
        found.append(EmailFile(filename=name, content_type=content_type, content=content))
    return found


# --- Receiving ----------------------------------------------------------------------------------


def receive_email(
    raw: bytes, *, envelope_sender: str | None = None, envelope_recipients: Sequence[str] = ()
) -> Receipt:
    """Post one received email to its client's thread, or drop or quarantine it; logged either way.

    Idempotent per workspace and Message-ID (a unique constraint on posted emails): a second
    delivery of the same email is dropped as a duplicate. Raises NotAnEmail when `raw` is not an
    email, TryLater when the database cannot be reached (nothing is written then).
    """
    email = parse(raw)
    try:
        receipt = _receive(email, raw, envelope_sender=envelope_sender, envelope_recipients=envelope_recipients)
    except (OperationalError, InterfaceError) as exc:
        raise TryLater("The database cannot be reached; deliver the email again later.") from exc
    return receipt


@tenancy.scan("inbound email: the client thread a reply address names")
def _receive(
    email: EmailMessage, raw: bytes, *, envelope_sender: str | None, envelope_recipients: Sequence[str]
) -> Receipt:
    recipients = [address.strip().strip("<>").lower() for address in envelope_recipients]
    recipients += addresses(email, "Delivered-To", "X-Original-To", "To", "Cc")
    recipient, token = next(((address, t) for address in recipients if (t := token_of(address))), ("", None))
    message_id = header(email, "Message-ID")[:255] or f"<sha256-{hashlib.sha256(raw).hexdigest()}@no-message-id>"
    sender = next(iter(addresses(email, "From")), "")
    # The one lookup across workspaces: an email names its client only by the token.
    found = ReplyAddress.objects.filter(token=token).select_related("client").first() if token else None
    if found is None:
        reason = "not sent to a reply address" if token is None else "an unknown reply address"
        log.info("inbound email %s from %s to %s dropped: %s", message_id, sender, recipient or recipients, reason)
        return Receipt(InboundEmail.Outcome.DROPPED, reason)

    client = found.client
    entry = InboundEmail(
        workspace_id=client.workspace_id,
        client=client,
        message_id=message_id,
        sender=sender[:320],
        recipient=recipient[:320],
        subject=header(email, "Subject")[:255],
    )
    if found.revoked_at is not None:
        return _log(entry, InboundEmail.Outcome.DROPPED, "the reply address was revoked")
    reason = bounce_reason(email, envelope_sender=envelope_sender, sender=sender) or auto_reply_reason(email)
    if reason:
        return _log(entry, InboundEmail.Outcome.DROPPED, reason)
    if _posted_already(entry):
        return _log(entry, InboundEmail.Outcome.DROPPED, "a duplicate: this Message-ID was posted already")

    whole = body_text(email)
    text = mailtext.new_text(whole)
    files = files_of(email)
    contact = (
        Contact.objects.filter(workspace_id=client.workspace_id, client=client, email__iexact=sender).first()
        if sender
        else None
    )
    if contact is None:
        reason = f"the sender is not a contact of {client.name}"
        return _log(entry, InboundEmail.Outcome.QUARANTINED, reason, body=text or whole)
    if not text and not files:
        reason = "nothing new in it: no text above the quoted email, and no files"
        return _log(entry, InboundEmail.Outcome.QUARANTINED, reason, body=whole)
    return _post(entry, contact=contact, text=text, files=files)


def _posted_already(entry: InboundEmail) -> bool:
    return InboundEmail.objects.filter(
        workspace_id=entry.workspace_id, message_id=entry.message_id, outcome=InboundEmail.Outcome.POSTED
    ).exists()


def _log(entry: InboundEmail, outcome: str, reason: str, *, body: str = "", message: Message | None = None) -> Receipt:
    entry.outcome, entry.reason, entry.body = outcome, reason[:200], body[:QUARANTINE_CHARS]
    if message is None:
        entry.save()
    log.info(
        "inbound email %s from %s to client %s: %s%s",
        entry.message_id,
        entry.sender,
        entry.client_id,
        outcome,
        f" ({reason})" if reason else "",
    )
    return Receipt(outcome, reason, message)


def _post(entry: InboundEmail, *, contact: Contact, text: str, files: list[EmailFile]) -> Receipt:
    """Post the email as the contact's message, with the log row in the same transaction.

    The row goes first: a second delivery racing this one fails on the unique constraint before
    any file is stored. Files are stored by the message service; if the transaction then fails
    they are deleted, so nothing is left half-written.
    """
    body, uploads = compose(text, files)
    stored: list[str] = []
    try:
        with transaction.atomic():
            entry.outcome = InboundEmail.Outcome.POSTED
            entry.save()
            message = services.send_contact_message(contact=contact, body=body, files=uploads, by_email=True)
            stored = [name for name in message.attachments.values_list("file", flat=True) if name]
            entry.posted_message = message
            entry.save(update_fields=["posted_message"])
    except IntegrityError:
        for name in stored:
            default_storage.delete(name)
        entry.pk = None
        if _posted_already(entry):
            return _log(entry, InboundEmail.Outcome.DROPPED, "a duplicate: this Message-ID was posted already")
        raise
    except services.CommunicationError as exc:
        entry.pk = None
        return _log(entry, InboundEmail.Outcome.QUARANTINED, str(exc), body=text)
    except BaseException:
        for name in stored:
            default_storage.delete(name)
        raise
    return _log(entry, InboundEmail.Outcome.POSTED, "", message=message)


def compose(text: str, files: Sequence[EmailFile]) -> tuple[str, list[UploadedFile[bytes]]]:
    """The message's body and the files it keeps: the files the thread accepts, in order, within its
    limits; the others named in a note at the end of the text. A text too long for a message is cut
    and attached whole as message.txt."""
    room = services.MAX_MESSAGE_LENGTH - NOTES_ROOM
    too_long = len(text) > room
    if too_long:
        files = [EmailFile(FULL_TEXT_NAME, "text/plain", text.encode()), *files]
    uploads, notes = _keep(files)
    if too_long:
        attached = bool(uploads) and uploads[0].name == FULL_TEXT_NAME
        text = (
            text[:room].rstrip()
            + "\n\n[…] "
            + (
                f"The email goes on: its whole text is attached as {FULL_TEXT_NAME}."
                if attached
                else f"The rest of the email was cut: a message holds {services.MAX_MESSAGE_LENGTH:,} characters."
            )
        )
    if notes:
        listed = [f"- {note[:150]}" for note in notes[:MAX_NOTES]]
        if len(notes) > MAX_NOTES:
            listed.append(f"- and {len(notes) - MAX_NOTES} more")
        text = "\n\n".join(part for part in (text, "Not kept from the email:\n" + "\n".join(listed)) if part)
    return text, uploads


def _keep(files: Sequence[EmailFile]) -> tuple[list[UploadedFile[bytes]], list[str]]:
    """The files that pass the thread's checks one by one and fit its limits together, and why the others did not."""
    kept: list[UploadedFile[bytes]] = []
    notes: list[str] = []
    total = 0
    for file in files:
        upload = SimpleUploadedFile(file.filename, file.content, content_type=file.content_type)
        try:
            [checked] = services.check_attachments([upload])
        except services.CommunicationError as exc:
            notes.append(str(exc))
            continue
        if len(kept) == services.MAX_FILES:
            notes.append(f"“{checked.filename}”: a message keeps at most {services.MAX_FILES} files.")
        elif total + checked.size > services.MAX_TOTAL_SIZE:
            limit = services.MAX_TOTAL_SIZE // (1024 * 1024)
            notes.append(f"“{checked.filename}”: a message keeps at most {limit} MB of files in all.")
        else:
            total += checked.size
            kept.append(upload)
    return kept, notes
