"""The email outbox: every email the product sends goes through `queue_email`.

An email is a row written inside the caller's transaction; a Celery task sends it after
commit, and a beat sweep every minute retries what failed (with backoff) or was never
picked up (worker down). A rolled-back transaction leaves no row, so sends nothing.
"""

from __future__ import annotations

import base64
import logging
import smtplib
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import policy as email_policy
from email.message import EmailMessage, MIMEPart
from email.policy import Policy
from email.utils import formataddr, parseaddr
from typing import Any, cast

from django.conf import settings
from django.core.files.storage import default_storage
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F, Q
from django.dispatch import Signal
from django.template import Context, Engine, TemplateDoesNotExist
from django.template.loader import get_template, render_to_string
from django.utils import timezone
from django.utils.html import linebreaks, urlize
from django.utils.safestring import mark_safe

from retainers.models import Email, Membership, Workspace

log = logging.getLogger(__name__)

CLAIM_FOR = timedelta(minutes=5)
SWEEP_BATCH = 200


def platform_sender() -> str:
    return parseaddr(settings.DEFAULT_FROM_EMAIL)[0] or "Retainers"


def sender_name(workspace: Workspace | None) -> str:
    """The From display name: a workspace's emails, to its clients and its own team alike, come from
    the workspace's name; account emails (no workspace) from the platform."""
    return workspace.name if workspace is not None else platform_sender()


# How a client's thread reply address is made: communication owns reply addresses and registers the
# function at start-up (CommunicationConfig.ready), as this core module may not import it. Called with
# (workspace id, client id) inside the queueing transaction; it may create the address.
type ReplyAddressFn = Callable[[int, int], str]
_reply_address: ReplyAddressFn | None = None


def register_reply_address(function: ReplyAddressFn) -> None:
    global _reply_address
    _reply_address = function


def owner_address(workspace_id: int) -> str:
    """The first owner's email: who a client's reply reaches when there is no thread address."""
    return (
        Membership.objects.filter(workspace_id=workspace_id, role=Membership.Role.OWNER, user__is_active=True)
        .order_by("pk")
        .values_list("user__email", flat=True)
        .first()
        or ""
    )


def client_reply_to(*, workspace_id: int, client_id: int, fallback: str = "") -> str:
    """The Reply-To of every email to a client, so that a reply reaches the consultant: the client's
    thread address when inbound email is set up (INBOUND_EMAIL_DOMAIN), else `fallback` (the person
    the email is about, such as a booking's host) or the workspace owner's address."""
    if settings.INBOUND_EMAIL_DOMAIN and _reply_address is not None:
        return _reply_address(workspace_id, client_id)
    return fallback or owner_address(workspace_id)


# --- Branding: the workspace's name, logo and colour on its emails ------------------------------

DEFAULT_ACCENT = "#2f5bd3"
LOGO_CID = "workspace-logo"


@dataclass(frozen=True)
class Branding:
    """Who an email looks like it comes from: a name, an accent colour (#rrggbb) and a logo (a PNG
    in default storage, or none)."""

    name: str
    accent: str = DEFAULT_ACCENT
    logo_path: str = ""


@dataclass(frozen=True)
class Brand:
    """What the email layout shows: the branding, with the logo as the image source the email
    can use (`cid:` in a sent email, a `data:` URI in a preview)."""

    name: str
    accent: str
    logo_src: str = ""


# Sent with sender=Workspace and workspace=…; a receiver returns that workspace's Branding. The
# billing app holds the logo and the colour (BillingProfile) and answers (billing.apps); the
# outbox cannot import it, being below it.
email_branding = Signal()


def branding_for(workspace: Workspace | None) -> Branding:
    """The workspace's branding, or the product's own for platform emails (sign-in, sign-up)."""
    if workspace is None:
        return Branding(name=platform_sender())
    for _receiver, answer in email_branding.send(sender=Workspace, workspace=workspace):
        if isinstance(answer, Branding):
            return answer
    return Branding(name=workspace.name)


def logo_data_uri(branding: Branding) -> str:
    """The logo inline as a data: URI, for a page that shows an email (the CSP allows data: images)."""
    if not branding.logo_path:
        return ""
    with default_storage.open(branding.logo_path, "rb") as handle:
        return "data:image/png;base64," + base64.b64encode(handle.read()).decode("ascii")


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    body_text: str
    body_html: str


def render_email(template: str, context: Mapping[str, object], *, branding: Branding, logo_src: str) -> RenderedEmail:
    """One email type's parts from its templates (emails/<template>/subject.txt, body.txt and an
    optional body.html in the branded layout): what `queue_email` sends and the previews show."""
    brand = Brand(name=branding.name, accent=branding.accent, logo_src=logo_src if branding.logo_path else "")
    context = {"site_url": settings.SITE_URL, **context, "brand": brand}
    subject = " ".join(render_text(f"emails/{template}/subject.txt", context).split())
    body_text = render_text(f"emails/{template}/body.txt", context).strip() + "\n"
    return RenderedEmail(subject, body_text, _render_html(template, context, subject, body_text, brand))


def _workspace_of(context: Mapping[str, object]) -> Workspace | None:
    """The workspace an email speaks for: named in its context, or its client's."""
    workspace = context.get("workspace")
    if isinstance(workspace, Workspace):
        return workspace
    client_workspace = getattr(context.get("client"), "workspace", None)
    return client_workspace if isinstance(client_workspace, Workspace) else None


def retry_delay(attempts: int) -> timedelta:
    """Backoff after the n-th failed attempt: 1, 2, 4 … minutes, capped at an hour."""
    return timedelta(minutes=min(2 ** max(attempts - 1, 0), 60))


def queue_email(
    *,
    to: str,
    template: str,
    context: Mapping[str, object],
    workspace: Workspace | None = None,
    client_id: int | None = None,
    key: str | None = None,
    reply_to: str = "",
    attachments: Iterable[Mapping[str, str]] = (),
    secret: bool = False,
) -> Email:
    """Write one email to the outbox and send it after commit.

    A workspace's email names the workspace as its sender (`sender_name`); one to a client
    (`client_id`, with its `workspace`) gets the Reply-To that reaches the consultant
    (`client_reply_to`; an explicit `reply_to` is then only the fallback). A `secret` email (a
    working link or code) has its body redacted once it is sent.

    `template` names a folder under templates/emails/ holding subject.txt, body.txt and
    (optionally) body.html. A `key` makes the call idempotent: queueing the same key twice
    returns the first email and sends nothing more. `attachments` are dicts with the
    default-storage `path`, a `filename` and a `mimetype`, or small text kept in the row
    (`content` instead of `path`), such as a `calendar_invitation`.

    The HTML part carries the branding of `workspace` (by default the context's `workspace`, or
    its `client`'s): name, accent colour, and the logo as an inline part the HTML shows by cid.
    """
    workspace = workspace or _workspace_of(context)
    branding = branding_for(workspace)
    rendered = render_email(template, context, branding=branding, logo_src=f"cid:{LOGO_CID}")
    parts = list(attachments)
    if branding.logo_path:
        parts.append({"path": branding.logo_path, "filename": "logo.png", "mimetype": "image/png", "cid": LOGO_CID})
    if client_id is not None:
        if workspace is None:
            raise ValueError("an email to a client is sent in its workspace's name: pass workspace=")
        reply_to = client_reply_to(workspace_id=workspace.pk, client_id=client_id, fallback=reply_to)
    return _queue(
        to=to,
        subject=rendered.subject,
        body_text=rendered.body_text,
        body_html=rendered.body_html,
        sender_name=sender_name(workspace),
        key=key,
        reply_to=reply_to,
        attachments=parts,
        secret=secret,
    )


def calendar_invitation(ics: str, *, method: str) -> dict[str, str]:
    """An iCalendar invitation as an attachment of `queue_email`. Sent twice, as mail clients look for
    it in different places: a `text/calendar; method=...` part beside the text and HTML (Outlook,
    Apple Mail, Gmail's invitation card), and an invite.ics file for every other client."""
    return {"content": ics, "filename": "invite.ics", "mimetype": "application/ics", "method": method}


def queue_rendered_email(
    *, to: str, subject: str, body_text: str, body_html: str | None, sender_name: str, secret: bool = False
) -> Email:
    """Queue an email whose parts are already rendered (allauth's own templates)."""
    subject = " ".join(subject.split())
    return _queue(
        to=to,
        subject=subject,
        body_text=body_text,
        body_html=body_html or _html_from_text(subject, body_text),
        sender_name=sender_name,
        secret=secret,
    )


def render_text(name: str, context: Mapping[str, object]) -> str:
    """A subject or text part: not HTML, so "Smith & Jones" must not arrive as "Smith &amp; Jones".

    Returned as a plain `str`, not the SafeString a template render gives: the text holds user
    values unescaped, so a page that shows it (an email preview) must escape it like any value.
    """
    # The Django engine's own Template (not the backend wrapper): it renders a Context, whose autoescape we set.
    rendered = Engine.get_default().get_template(name).render(Context(dict(context), autoescape=False))
    return str.__str__(rendered)  # a copy as a plain str: str(rendered) would keep it marked safe


def _render_html(template: str, context: Mapping[str, object], subject: str, body_text: str, brand: Brand) -> str:
    try:
        html = get_template(f"emails/{template}/body.html")
    except TemplateDoesNotExist:
        return _html_from_text(subject, body_text, brand)
    return html.render({**context, "subject": subject})


def _html_from_text(subject: str, body_text: str, brand: Brand | None = None) -> str:
    """Every email has an HTML part: without a template of its own, the escaped text in the layout,
    its web addresses as links."""
    if brand is None:
        branding = branding_for(None)
        brand = Brand(name=branding.name, accent=branding.accent)
    content = mark_safe(linebreaks(urlize(body_text, autoescape=True)))  # urlize escaped the text itself
    return render_to_string("emails/layout.html", {"subject": subject, "content": content, "brand": brand})


def _queue(
    *,
    to: str,
    subject: str,
    body_text: str,
    body_html: str,
    sender_name: str,
    key: str | None = None,
    reply_to: str = "",
    attachments: list | None = None,
    secret: bool = False,
) -> Email:
    # Header injection: a workspace name is user input and ends up in the From header.
    sender_name = " ".join(sender_name.split())[:120]
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "retainers.localhost"
    fields = {
        "to": to,
        "from_name": sender_name,
        "reply_to": reply_to,
        "subject": subject[:255],
        "body_text": body_text,
        "body_html": body_html,
        "attachments": attachments or [],
        "message_id": f"<{uuid.uuid4().hex}@{domain}>",
        "secret": secret,
    }
    if key:
        email, created = Email.objects.get_or_create(key=key, defaults=fields)
        if not created:
            return email
    else:
        email = Email.objects.create(**fields)
    email_id = email.pk
    transaction.on_commit(lambda: _enqueue(email_id))
    return email


def _enqueue(email_id: int) -> None:
    from retainers import tasks

    try:
        tasks.send_email.delay(email_id)
    except Exception:  # broker down: the every-minute sweep sends it later
        log.warning("could not enqueue email %s; the outbox sweep will send it", email_id, exc_info=True)


class _Message(EmailMultiAlternatives):
    """An email that may carry an iCalendar part among its alternatives, with the METHOD parameter
    Django's `attach_alternative` cannot write."""

    calendar: tuple[str, str] | None = None

    def message(self, *, policy: Policy[Any] | None = email_policy.default) -> EmailMessage:
        message = super().message(policy=policy)
        if self.calendar is not None:
            content, method = self.calendar
            alternative = next(p for p in message.walk() if p.get_content_type() == "multipart/alternative")
            part = MIMEPart(policy=policy or email_policy.default)
            part.set_content(content, subtype="calendar", charset="utf-8", params={"method": method})
            # typeshed types attach() for whole messages; a MIMEPart is what a multipart holds.
            alternative.attach(cast(EmailMessage, part))
        return message


def _inline_image(data: bytes, attachment: Mapping[str, str]) -> MIMEPart:
    """An image the HTML part shows as cid:<cid>: inline, with its Content-ID."""
    part = MIMEPart(policy=email_policy.default)
    maintype, _, subtype = attachment["mimetype"].partition("/")
    part.set_content(
        data, maintype=maintype, subtype=subtype, disposition="inline", filename=attachment["filename"],
        cid=f"<{attachment['cid']}>",
    )  # fmt: skip
    return part


def _claim(email_id: int, *, now: datetime) -> bool:
    """Take the row for sending: queued and due, or a claim whose worker died."""
    due = Q(status=Email.Status.QUEUED, next_attempt_at__lte=now) | Q(
        status=Email.Status.SENDING, claimed_until__lt=now
    )
    return (
        Email.objects.filter(due, pk=email_id).update(
            status=Email.Status.SENDING, claimed_until=now + CLAIM_FOR, attempts=F("attempts") + 1
        )
        == 1
    )


def send_email(email_id: int) -> bool:
    """Send one outbox email if it is due. Returns True when it was handed to SMTP now.

    Safe to call any number of times: a sent email is never claimed again.
    """
    now = timezone.now()
    if not _claim(email_id, now=now):
        return False
    email = Email.objects.get(pk=email_id)
    message = _Message(
        subject=email.subject,
        body=email.body_text,
        from_email=formataddr((email.from_name, parseaddr(settings.DEFAULT_FROM_EMAIL)[1])),
        to=[email.to],
        reply_to=[email.reply_to] if email.reply_to else None,
        headers={"Message-ID": email.message_id},
    )
    message.attach_alternative(email.body_html, "text/html")
    for attachment in email.attachments:
        if "cid" in attachment:  # shown inside the HTML (the logo), not offered as a file
            with default_storage.open(attachment["path"], "rb") as handle:
                message.attach(_inline_image(handle.read(), attachment))
            continue
        if "content" in attachment:
            message.attach(attachment["filename"], attachment["content"].encode(), attachment["mimetype"])
            if "method" in attachment:
                message.calendar = (attachment["content"], attachment["method"])
            continue
        with default_storage.open(attachment["path"], "rb") as handle:
            message.attach(attachment["filename"], handle.read(), attachment["mimetype"])
    try:
        message.send()
    except (smtplib.SMTPException, OSError) as exc:
        failed = email.attempts >= settings.OUTBOX_MAX_ATTEMPTS
        Email.objects.filter(pk=email.pk).update(
            status=Email.Status.FAILED if failed else Email.Status.QUEUED,
            next_attempt_at=now + retry_delay(email.attempts),
            claimed_until=None,
            last_error=f"{type(exc).__name__}: {exc}"[:2000],
        )
        log.warning("email %s attempt %s failed: %s", email.pk, email.attempts, exc)
        return False
    done = {"status": Email.Status.SENT, "sent_at": timezone.now(), "claimed_until": None, "last_error": ""}
    if email.secret:
        # The link or code worked for its reader; kept in the table it would work for anyone who reads that.
        done |= {"body_text": REDACTED_TEXT, "body_html": _html_from_text(email.subject, REDACTED_TEXT)}
    Email.objects.filter(pk=email.pk).update(**done)
    return True


def send_due_emails(*, limit: int = SWEEP_BATCH) -> int:
    """Send every email that is due (retries, and those whose enqueue was lost). Returns how many went out."""
    now = timezone.now()
    due = Q(status=Email.Status.QUEUED, next_attempt_at__lte=now) | Q(
        status=Email.Status.SENDING, claimed_until__lt=now
    )
    ids = list(Email.objects.filter(due).order_by("next_attempt_at").values_list("pk", flat=True)[:limit])
    return sum(send_email(email_id) for email_id in ids)


REDACTED_TEXT = "[Redacted once sent: this email held a working link or code.]\n"
PRUNED_TEXT = "[Removed after the outbox retention period.]\n"


def prune_outbox(*, now: datetime | None = None) -> tuple[int, int]:
    """Forget sent emails older than OUTBOX_RETENTION_DAYS: (deleted, emptied).

    A row with a `key` stays as a minimal record (to, subject, status, dates, the key) with its
    body and attachments emptied: the key is what keeps a job from sending the same email again,
    and the renewal history lists those emails. A row without a key is deleted. Unsent rows are
    never touched. Idempotent.
    """
    cutoff = (now or timezone.now()) - timedelta(days=settings.OUTBOX_RETENTION_DAYS)
    old = Email.objects.filter(status=Email.Status.SENT, sent_at__lt=cutoff)
    deleted, _ = old.filter(key=None).delete()
    emptied = (
        old.exclude(key=None).exclude(body_text=PRUNED_TEXT).update(body_text=PRUNED_TEXT, body_html="", attachments=[])
    )
    return deleted, emptied
