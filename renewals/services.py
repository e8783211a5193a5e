"""Workflows of renewals: opening one ahead of each term's end, the proposal, the client's answer,
reminders, and settling the renewals nobody answered.

Lock order, everywhere: the retainer row, then the renewal row (delivery locks the retainer
first as well). Emails are written to the outbox inside the transaction that causes them,
each with a key naming the renewal and the event, so a rerun or a retried task sends nothing
twice.

The daily run (`run_renewals`, one task per workspace, each on its own local date) does, in
this order: follow terms that a pause moved, settle what reached its term end unanswered,
open what is due, send the reminders that are due. Every step is idempotent and catches up:

- a renewal opens `renewal_notice_days` before the term ends; a run after downtime opens it
  late with `opened_on` the day it was due (the unique (workspace, retainer, term_ends_on)
  constraint is the last guard). A term that ended while the job was down gets no renewal:
  delivery has already continued or ended it.
- reminders: only the latest offset that came due is sent, once (outbox key
  `renewal-{id}-{side}-{offset}-{recipient}`); offsets it skipped after downtime are not sent
  late. None is sent for an offset at or before the event that began the conversation (the
  day the renewal opened, for the consultant; the day the proposal went out, for the client),
  which was its own email.
  The final notices (FINAL_NOTICE_DAYS) are part of both sides' schedules whatever the
  workspace set, so both always hear what happens at the term end before it does.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import NotRequired, TypedDict

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, connection, transaction
from django.db.models import DateField, Exists, ExpressionWrapper, F, Max, OuterRef, Q, QuerySet
from django.db.models.expressions import CombinedExpression
from django.urls import reverse
from django.utils import timezone

from clients.models import Client, Contact, Retainer, RetainerTerms
from clients.terms import describe_terms
from delivery import services as delivery
from delivery.models import Period
from renewals import evidence as proposal
from renewals import signals
from renewals.models import Renewal, RenewalSettings
from retainers import audit, tenancy
from retainers.daily import claim_days
from retainers.dates import last_day
from retainers.models import DailyRun, Email, User, Workspace
from retainers.money import format_money
from retainers.outbox import queue_email
from retainers.runs import single_run
from retainers.services import consultant_recipients

log = logging.getLogger(__name__)

RUN_LOCK = 7_340_101  # pg advisory lock key of the whole renewals run
WORKSPACE_LOCK_NAMESPACE = 7_340_102  # with the workspace id: one renewals task per workspace at a time
FINAL_NOTICE_DAYS = (7, 1)  # both sides are told what happens at the term end, this many days before
RESPONSE_SALT = "renewals.respond"
RESPONSE_MAX_AGE = timedelta(days=30)  # and never past the term end
MAX_OFFSET_DAYS = 365

Status = Renewal.Status
OPEN = (Status.UPCOMING, Status.PROPOSAL_SENT)
ANSWERED = (Status.ACCEPTED, Status.DECLINED)
SETTLED = (Status.RENEWED, Status.LAPSED)


class RenewalError(Exception):
    """A renewal action that is not allowed; the message is shown to the person who tried it."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


# --- Who hears about it -------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    key: str  # stable part of the outbox key: "c12" for contact 12, "billing" for the billing email
    email: str
    contact: Contact | None


def client_recipients(client: Client, contacts: list[Contact] | None = None) -> list[Recipient]:
    """Who at the client gets the proposal: contacts with portal access (they can answer there too),
    else every contact, else the billing email."""
    if contacts is None:
        contacts = list(Contact.objects.filter(workspace_id=client.workspace_id, client=client).order_by("pk"))
    chosen = [c for c in contacts if c.portal_access] or contacts
    if chosen:
        return [Recipient(f"c{c.pk}", c.email, c) for c in chosen]
    if client.billing_email:
        return [Recipient("billing", client.billing_email, None)]
    return []


def _contacts_by_client(workspace_id: int, client_ids: set[int]) -> dict[int, list[Contact]]:
    grouped: dict[int, list[Contact]] = {client_id: [] for client_id in client_ids}
    for contact in Contact.objects.filter(workspace_id=workspace_id, client_id__in=client_ids).order_by("pk"):
        grouped[contact.client_id].append(contact)
    return grouped


# --- Links --------------------------------------------------------------------------------------


def response_nonce(renewal: Renewal) -> str:
    """Changes whenever the proposal is (re)sent or withdrawn, so older links stop working."""
    if renewal.sent_at is None:
        return ""
    return hashlib.sha256(f"{renewal.pk}:{renewal.sent_at.isoformat()}".encode()).hexdigest()[:16]


def response_token(renewal: Renewal, contact: Contact | None) -> str:
    payload = {"r": renewal.pk, "c": contact.pk if contact else 0, "n": response_nonce(renewal)}
    return signing.dumps(payload, salt=RESPONSE_SALT)


def response_urls(renewal: Renewal, contact: Contact | None) -> dict[str, str]:
    token = response_token(renewal, contact)
    return {
        "accept_url": settings.SITE_URL + reverse("renewals_public:respond_accept", args=[token]),
        "decline_url": settings.SITE_URL + reverse("renewals_public:respond_decline", args=[token]),
    }


def portal_url(renewal: Renewal) -> str:
    return settings.SITE_URL + reverse("portal:renewal_detail", args=[renewal.workspace.slug, renewal.pk])


def renewal_url(renewal: Renewal) -> str:
    return settings.SITE_URL + reverse("renewals:renewal_detail", args=[renewal.workspace.slug, renewal.pk])


@dataclass(frozen=True)
class LinkCheck:
    """What an emailed accept/decline link is worth: `state` is ok, invalid, expired, used or replaced."""

    state: str
    renewal: Renewal | None = None
    contact: Contact | None = None

    @property
    def ok(self) -> bool:
        return self.state == "ok"


def check_response_token(token: str) -> LinkCheck:
    """Read a signed link: tampered → invalid; older than RESPONSE_MAX_AGE or past the term end →
    expired; the renewal answered → used; the proposal re-sent or withdrawn since → replaced."""
    try:
        data = signing.loads(token, salt=RESPONSE_SALT, max_age=RESPONSE_MAX_AGE)
    except signing.SignatureExpired:
        return LinkCheck("expired")
    except signing.BadSignature:
        return LinkCheck("invalid")
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("r"), int)
        or not isinstance(data.get("c"), int)
        or not isinstance(data.get("n"), str)
    ):
        return LinkCheck("invalid")
    with tenancy.cross_tenant("renewal link: the renewal a signed link names"):
        renewal = (
            Renewal.objects.select_related("workspace", "retainer", "retainer__client").filter(pk=data["r"]).first()
        )
    if renewal is None:
        return LinkCheck("invalid")
    tenancy.enter(renewal.workspace_id)  # the rest of the request works in the link's workspace
    contact = None
    if data["c"]:
        contact = Contact.objects.filter(
            workspace_id=renewal.workspace_id, client_id=renewal.retainer.client_id, pk=data["c"]
        ).first()
    if renewal.status in ANSWERED:
        return LinkCheck("used", renewal, contact)
    if renewal.status in SETTLED or renewal.workspace.today() >= renewal.term_ends_on:
        return LinkCheck("expired", renewal, contact)
    if renewal.status != Status.PROPOSAL_SENT or data["n"] != response_nonce(renewal):
        return LinkCheck("replaced", renewal, contact)
    return LinkCheck("ok", renewal, contact)


# --- Opening ----------------------------------------------------------------------------------


def settings_for(workspace: Workspace) -> RenewalSettings:
    """The workspace's reminder offsets; the defaults (unsaved) until an admin changes them."""
    return RenewalSettings.objects.filter(workspace=workspace).first() or RenewalSettings(workspace=workspace)


def clean_offsets(values: object) -> list[int]:
    """Days before the term end, each 1–365, without repeats, largest first."""
    days = set()
    for value in values if isinstance(values, (list, tuple)) else []:
        try:
            day = int(value)
        except (TypeError, ValueError):
            continue
        if 0 < day <= MAX_OFFSET_DAYS:
            days.add(day)
    return sorted(days, reverse=True)


@transaction.atomic
def update_settings(
    *, workspace: Workspace, consultant_offsets: list[int], client_offsets: list[int]
) -> RenewalSettings:
    row, _ = RenewalSettings.objects.get_or_create(workspace=workspace)
    row.consultant_offsets, row.client_offsets = clean_offsets(consultant_offsets), clean_offsets(client_offsets)
    row.save(update_fields=["consultant_offsets", "client_offsets"])
    return row


def _opens_on() -> ExpressionWrapper[CombinedExpression]:
    # date - integer is a date in PostgreSQL: the day the renewal is due to open.
    return ExpressionWrapper(F("term_ends_on") - F("renewal_notice_days"), output_field=DateField())


def due_retainers(workspace_id: int, today: date) -> QuerySet[Retainer]:
    """Active retainers whose renewal is due (or overdue) to open as of `today` and not open yet."""
    this_term = Renewal.objects.filter(retainer=OuterRef("pk"), term_ends_on=OuterRef("term_ends_on"))
    still_open = Renewal.objects.filter(retainer=OuterRef("pk"), status__in=OPEN)
    return (
        Retainer.objects.filter(workspace_id=workspace_id, status=Retainer.Status.ACTIVE, cancel_at_period_end=False)
        .alias(opens_on=_opens_on())
        .filter(opens_on__lte=today, term_ends_on__gt=today)
        .exclude(Exists(this_term))
        .exclude(Exists(still_open))
        .select_related("workspace", "client")
        .order_by("term_ends_on", "pk")
    )


def default_proposal_text(retainer: Retainer) -> str:
    ends = last_day(retainer.term_ends_on)
    return (
        f"Thank you for working with us this term. Your current term ends on {ends.day} {ends:%B %Y}. "
        "Here is what we propose for the next one, based on how this term went."
    )


def open_renewal(*, retainer: Retainer, today: date) -> Renewal | None:
    """Open the renewal of the retainer's current term: evidence, suggestion, proposed terms
    (the retainer's, adjusted by the suggestion), and tell the consultants. None if it exists."""
    built = proposal.build_evidence(retainer, term_ends_on=retainer.term_ends_on, today=today)
    suggestion = built.suggestion
    assert suggestion is not None  # build_evidence always ends with one
    base = built.base_terms or retainer.terms()  # a pending amendment's terms, when there is one
    terms = {**base, "units_per_period": suggestion.units_per_period, "price_minor": suggestion.price_minor}
    try:
        with transaction.atomic():
            renewal = Renewal.objects.create(
                workspace_id=retainer.workspace_id,
                retainer=retainer,
                term_ends_on=retainer.term_ends_on,
                opened_on=retainer.term_ends_on - timedelta(days=retainer.renewal_notice_days),
                # The day it actually opened (later than opened_on after downtime): reminders start after it.
                evidence={**built.as_json(), "opened_as_of": today.isoformat()},
                suggestion=suggestion.kind,
                suggestion_reason=suggestion.reason,
                proposal_text=default_proposal_text(retainer),
                **terms,
            )
    except IntegrityError:
        return None  # another run opened it first: the unique constraint is the last guard
    renewal.workspace, renewal.retainer = retainer.workspace, retainer
    context = {**_context(renewal), "days_left": (renewal.term_ends_on - today).days}
    for user_id, email in consultant_recipients(renewal.workspace_id):
        queue_email(
            to=email,
            template="renewal_opened",
            context=context,
            workspace=renewal.workspace,
            key=f"renewal-{renewal.pk}-opened-{user_id}",
        )
    return renewal


def open_due_renewals(*, workspace: Workspace, today: date) -> list[Renewal]:
    opened = []
    for retainer in due_retainers(workspace.pk, today):
        retainer.workspace = workspace
        if renewal := open_renewal(retainer=retainer, today=today):
            opened.append(renewal)
    return opened


@transaction.atomic
def refresh_evidence(*, renewal: Renewal, today: date | None = None) -> Renewal:
    """Recompute the evidence and suggestion (the open period moves on); the proposed terms stay."""
    renewal = Renewal.objects.select_for_update().select_related("retainer", "workspace").get(pk=renewal.pk)
    if renewal.status not in OPEN:
        raise RenewalError("This renewal is settled: its evidence is kept as it was.")
    built = proposal.build_evidence(
        renewal.retainer, term_ends_on=renewal.term_ends_on, today=today or renewal.workspace.today()
    )
    assert built.suggestion is not None  # build_evidence always ends with one
    renewal.evidence, renewal.suggestion, renewal.suggestion_reason = (
        {**built.as_json(), "opened_as_of": renewal.evidence.get("opened_as_of")},
        built.suggestion.kind,
        built.suggestion.reason,
    )
    renewal.save(update_fields=["evidence", "suggestion", "suggestion_reason"])
    return renewal


# --- The proposal --------------------------------------------------------------------------------

EDITABLE_TERMS = tuple(name for name in RetainerTerms.TERM_FIELDS if name != "currency")


@transaction.atomic
def save_proposal(*, renewal: Renewal, terms: dict[str, object], proposal_text: str, actor: User | None) -> Renewal:
    """Change the proposed terms and text. A sent proposal that changes is withdrawn until sent
    again: the client never accepts terms other than those they were sent."""
    unknown = set(terms) - set(EDITABLE_TERMS)
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    renewal = Renewal.objects.select_for_update().get(pk=renewal.pk)
    if renewal.status not in OPEN:
        raise RenewalError("This renewal was already answered or settled; its proposal can no longer change.")
    proposal_text = proposal_text.strip()
    changed = proposal_text != renewal.proposal_text or any(getattr(renewal, k) != v for k, v in terms.items())
    if not changed:
        return renewal
    for name, value in terms.items():
        setattr(renewal, name, value)
    renewal.proposal_text = proposal_text
    fields = [*terms, "proposal_text"]
    if renewal.status == Status.PROPOSAL_SENT:
        renewal.status, renewal.sent_at = Status.UPCOMING, None
        fields += ["status", "sent_at"]
    renewal.save(update_fields=fields)
    return renewal


def _check_continuing(renewal: Renewal, retainer: Retainer, today: date) -> None:
    if retainer.status == Retainer.Status.ENDED:
        raise RenewalError("This retainer has already ended.")
    if retainer.status == Retainer.Status.PAUSED:
        raise RenewalError("This retainer is paused: its term end will move when it resumes.")
    if retainer.cancel_at_period_end:
        raise RenewalError("This retainer is set to end at the end of its current period, before the term ends.")
    if today >= renewal.term_ends_on:
        raise RenewalError("The term has ended: this proposal can no longer be answered.")


@transaction.atomic
def send_proposal(*, renewal: Renewal, actor: User | None) -> Renewal:
    """Email the proposal to the client's contacts with a portal link and signed accept/decline
    links. Sending again re-sends it and retires the links of the earlier email."""
    retainer = Retainer.objects.select_for_update().select_related("client").get(pk=renewal.retainer_id)
    renewal = Renewal.objects.select_for_update().select_related("workspace").get(pk=renewal.pk)
    if renewal.status not in OPEN:
        raise RenewalError("This renewal was already answered or settled.")
    _check_continuing(renewal, retainer, renewal.workspace.today())
    recipients = client_recipients(retainer.client)
    if not recipients:
        raise RenewalError(f"{retainer.client.name} has no contact or billing email to send the proposal to.")
    renewal.status, renewal.sent_at = Status.PROPOSAL_SENT, timezone.now()
    renewal.save(update_fields=["status", "sent_at"])
    renewal.retainer = retainer
    nonce = response_nonce(renewal)
    for recipient in recipients:
        queue_email(
            to=recipient.email,
            template="renewal_proposal",
            context=client_context(renewal, recipient),
            workspace=renewal.workspace,
            client_id=retainer.client_id,
            key=f"renewal-{renewal.pk}-proposal-{nonce}-{recipient.key}",
            secret=True,  # its accept and decline links act without signing in
        )
    return renewal


# --- The answer ----------------------------------------------------------------------------------


def _lock_for_answer(renewal: Renewal) -> tuple[Retainer, Renewal]:
    retainer = Retainer.objects.select_for_update().select_related("client").get(pk=renewal.retainer_id)
    renewal = Renewal.objects.select_for_update().select_related("workspace").get(pk=renewal.pk)
    renewal.retainer = retainer
    return retainer, renewal


def _check_answerable(renewal: Renewal, retainer: Retainer, *, by_client: bool) -> None:
    if renewal.status in ANSWERED:
        raise RenewalError(f"This proposal was already {renewal.get_status_display().lower()}.")
    if renewal.status in SETTLED:
        raise RenewalError("The term has ended: this proposal can no longer be answered.")
    if by_client and renewal.status != Status.PROPOSAL_SENT:
        raise RenewalError("This proposal was withdrawn; a new one will be sent to you.")
    _check_continuing(renewal, retainer, renewal.workspace.today())


@transaction.atomic
def accept_renewal(*, renewal: Renewal, contact: Contact | None = None, actor: User | None = None) -> Renewal:
    """Accept the proposal: the next term's retainer is signed on the proposed terms from the
    current term's end, and the current retainer is set to end there.

    Idempotent: the renewal row is locked (after its retainer) and its status checked first,
    so accepting twice, even at the same moment, signs one retainer. `contact` is the client's
    person who answered (portal or emailed link); `actor` a team member recording it for them.
    """
    retainer, renewal = _lock_for_answer(renewal)
    if renewal.status == Status.ACCEPTED:
        return renewal
    _check_answerable(renewal, retainer, by_client=actor is None)
    starts_on = retainer.term_ends_on  # the same as the renewal's unless a pause moved it since
    next_retainer = delivery.create_retainer(
        client=retainer.client, name=retainer.name, starts_on=starts_on, plan=retainer.plan, terms=renewal.terms()
    )
    # Not terms, but how the relationship runs: the next term keeps them.
    next_retainer.auto_charge, next_retainer.pause_after_unpaid_days = (
        retainer.auto_charge,
        retainer.pause_after_unpaid_days,
    )
    # One agreement, two terms: pages list the current one and show this as its next term.
    next_retainer.previous_term = retainer
    next_retainer.save(update_fields=["auto_charge", "pause_after_unpaid_days", "previous_term"])
    retainer.auto_renew = False  # delivery ends it at the term end; the next retainer takes over
    retainer.save(update_fields=["auto_renew"])
    renewal.status, renewal.responded_at, renewal.responded_by = Status.ACCEPTED, timezone.now(), contact
    renewal.next_retainer, renewal.term_ends_on = next_retainer, starts_on
    renewal.save(update_fields=["status", "responded_at", "responded_by", "next_retainer", "term_ends_on"])
    _audit_answer(renewal, retainer, "renewal.accepted", actor=actor, contact=contact, next_retainer=next_retainer.pk)

    context = {**_context(renewal), "next_retainer": next_retainer, "recorded_by": actor, "contact": contact}
    for user_id, email in consultant_recipients(renewal.workspace_id):
        queue_email(
            to=email,
            template="renewal_accepted_consultant",
            context=context,
            workspace=renewal.workspace,
            key=f"renewal-{renewal.pk}-accepted-{user_id}",
        )
    for recipient in _answer_recipients(retainer.client, contact):
        queue_email(
            to=recipient.email,
            template="renewal_accepted_client",
            context={**client_context(renewal, recipient, links=False), "next_retainer": next_retainer},
            workspace=renewal.workspace,
            client_id=retainer.client_id,
            key=f"renewal-{renewal.pk}-accepted-client-{recipient.key}",
        )
    return renewal


def _audit_answer(
    renewal: Renewal, retainer: Retainer, action: str, *, actor: User | None, contact: Contact | None, **changes: object
) -> None:
    """A change of terms by the client's answer (or a team member recording it): audited on the retainer."""
    who = f"answered by {contact.name} <{contact.email}>" if contact is not None and actor is None else ""
    audit.record(
        workspace=renewal.workspace_id,
        actor=actor,
        action=action,
        target=retainer,
        summary=" · ".join(filter(None, [retainer.name, who])),
        changes={"renewal": renewal.pk, **changes},
    )


@transaction.atomic
def decline_renewal(
    *, renewal: Renewal, reason: str = "", contact: Contact | None = None, actor: User | None = None
) -> Renewal:
    """Decline: the retainer ends at its term end, and the consultant is asked to find out why
    (an email, and a follow-up task linked to the renewal). Idempotent like accepting."""
    retainer, renewal = _lock_for_answer(renewal)
    if renewal.status == Status.DECLINED:
        return renewal
    _check_answerable(renewal, retainer, by_client=actor is None)
    retainer.auto_renew = False
    retainer.save(update_fields=["auto_renew"])
    now = timezone.now()
    renewal.status, renewal.responded_at, renewal.responded_by = Status.DECLINED, now, contact
    renewal.decline_reason = reason.strip()[:2000]
    renewal.save(update_fields=["status", "responded_at", "responded_by", "decline_reason"])
    _audit_answer(renewal, retainer, "renewal.declined", actor=actor, contact=contact, reason=renewal.decline_reason)
    # The follow-up task ("Ask why ... declined") is communication's: its receiver adds it in this
    # transaction (renewals/signals.py).
    signals.renewal_declined.send(sender=Renewal, renewal=renewal, retainer=retainer, actor=actor, declined_at=now)
    context = {**_context(renewal), "recorded_by": actor, "contact": contact}
    for user_id, email in consultant_recipients(renewal.workspace_id):
        queue_email(
            to=email,
            template="renewal_declined_consultant",
            context=context,
            workspace=renewal.workspace,
            key=f"renewal-{renewal.pk}-declined-{user_id}",
        )
    for recipient in _answer_recipients(retainer.client, contact):
        queue_email(
            to=recipient.email,
            template="renewal_declined_client",
            context=client_context(renewal, recipient, links=False),
            workspace=renewal.workspace,
            client_id=retainer.client_id,
            key=f"renewal-{renewal.pk}-declined-client-{recipient.key}",
        )
    return renewal


def _answer_recipients(client: Client, contact: Contact | None) -> list[Recipient]:
    """The confirmation goes to whoever answered, or (recorded by the team) to everyone the proposal went to."""
    if contact is not None:
        return [Recipient(f"c{contact.pk}", contact.email, contact)]
    return client_recipients(client)


# --- The daily run ---------------------------------------------------------------------------------


def _crossed(workspace: Workspace, renewals: list[Renewal]) -> set[int]:
    """Renewals whose retainer already has a period starting at or after their term end: it went on."""
    if not renewals:
        return set()
    latest = dict(
        Period.objects.filter(workspace=workspace, retainer_id__in={r.retainer_id for r in renewals})
        .values("retainer_id")
        .annotate(latest=Max("start_on"))
        .values_list("retainer_id", "latest")
        .order_by()
    )
    return {r.pk for r in renewals if latest.get(r.retainer_id) and latest[r.retainer_id] >= r.term_ends_on}


def follow_moved_terms(*, workspace: Workspace) -> int:
    """An open renewal whose retainer's term end moved later without the term having ended (a pause
    pushed it back) moves along, so it settles, reminds and opens on the real date."""
    moved = list(
        Renewal.objects.filter(workspace=workspace, status__in=OPEN, retainer__status=Retainer.Status.ACTIVE)
        .filter(retainer__term_ends_on__gt=F("term_ends_on"))
        .select_related("retainer")
    )
    crossed = _crossed(workspace, moved)
    count = 0
    for renewal in moved:
        if renewal.pk in crossed:
            continue  # auto-renewed: settling handles it
        try:
            with transaction.atomic():
                count += Renewal.objects.filter(
                    pk=renewal.pk, status__in=OPEN, term_ends_on=renewal.term_ends_on
                ).update(term_ends_on=renewal.retainer.term_ends_on)
        except IntegrityError:
            log.warning("renewal %s: a renewal for the moved term end already exists", renewal.pk)
    return count


def settle_unanswered(*, workspace: Workspace, today: date) -> int:
    """Renewals unanswered at their term end: renewed when the retainer went on (it auto-renews),
    lapsed when it ended. Claimed with a conditional UPDATE, so an answer or another run wins cleanly."""
    due = list(
        Renewal.objects.filter(workspace=workspace, status__in=OPEN, term_ends_on__lte=today)
        .select_related("retainer", "retainer__client")
        .order_by("term_ends_on", "pk")
    )
    crossed = _crossed(workspace, due)
    recipients = consultant_recipients(workspace.pk)
    settled = 0
    for renewal in due:
        retainer = renewal.retainer
        if renewal.pk in crossed:
            outcome = Status.RENEWED
        elif retainer.status == Retainer.Status.PAUSED:
            continue  # the term end moves when it resumes
        elif retainer.status == Retainer.Status.ENDED:
            outcome = Status.LAPSED
        else:  # still active, its last period not closed yet: delivery will do as the retainer says
            outcome = Status.RENEWED if retainer.auto_renew and not retainer.cancel_at_period_end else Status.LAPSED
        claimed = Renewal.objects.filter(pk=renewal.pk, status__in=OPEN).update(
            status=outcome, settled_at=timezone.now()
        )
        if not claimed:
            continue
        settled += 1
        renewal.status, renewal.workspace = outcome, workspace
        for user_id, email in recipients:
            queue_email(
                to=email,
                template="renewal_settled_consultant",
                context=_context(renewal),
                workspace=workspace,
                key=f"renewal-{renewal.pk}-settled-{user_id}",
            )
    return settled


def latest_due_offset(offsets: list[int], *, days_left: int, started_days_before: int) -> int | None:
    """The latest reminder offset that has come due, after the event that started the conversation.

    `offsets` are days before the term end; one is due once `days_left` is at most it. Only the
    smallest due one counts: after downtime the ones it passed are skipped, not sent late.
    """
    due = [o for o in offsets if days_left <= o < started_days_before]
    return min(due) if due else None


def _local_date(instant: datetime, workspace: Workspace) -> date:
    return timezone.localtime(instant, workspace.tzinfo).date()


def opened_as_of(renewal: Renewal) -> date:
    """The day the renewal actually opened: its `opened_on`, or later when a run caught up."""
    recorded = renewal.evidence.get("opened_as_of") if isinstance(renewal.evidence, dict) else None
    return max(renewal.opened_on, date.fromisoformat(recorded)) if recorded else renewal.opened_on


class _Queued(TypedDict):
    """The arguments of one queue_email call a reminders run plans."""

    to: str
    template: str
    context: dict[str, object]
    client_id: NotRequired[int]
    secret: NotRequired[bool]


def send_due_reminders(*, workspace: Workspace, today: date) -> int:
    """Reminders to both sides on the workspace's offsets, each once. Returns how many were queued."""
    row = settings_for(workspace)
    consultant_offsets = sorted(set(clean_offsets(row.consultant_offsets)) | set(FINAL_NOTICE_DAYS))
    client_offsets = sorted(set(clean_offsets(row.client_offsets)) | set(FINAL_NOTICE_DAYS))
    renewals = list(
        Renewal.objects.filter(
            workspace=workspace, status__in=OPEN, term_ends_on__gt=today, retainer__status=Retainer.Status.ACTIVE
        )
        .select_related("retainer", "retainer__client")
        .order_by("term_ends_on", "pk")
    )
    if not renewals:
        return 0
    consultants = consultant_recipients(workspace.pk)
    contacts = _contacts_by_client(workspace.pk, {r.retainer.client_id for r in renewals})

    planned: list[tuple[str, _Queued]] = []  # (outbox key, queue_email arguments)
    for renewal in renewals:
        renewal.workspace = workspace
        days_left = (renewal.term_ends_on - today).days
        opened_days_before = (renewal.term_ends_on - opened_as_of(renewal)).days
        offset = latest_due_offset(consultant_offsets, days_left=days_left, started_days_before=opened_days_before)
        if offset is not None:
            context = {**_context(renewal), "days_left": days_left, "offset": offset}
            for user_id, email in consultants:
                key = f"renewal-{renewal.pk}-consultant-{offset}-{user_id}"
                planned.append((key, {"to": email, "template": "renewal_reminder_consultant", "context": context}))

        if renewal.status == Status.PROPOSAL_SENT and renewal.sent_at:
            started = (renewal.term_ends_on - _local_date(renewal.sent_at, workspace)).days
            offset = latest_due_offset(client_offsets, days_left=days_left, started_days_before=started)
        else:  # not proposed yet: the client only hears what happens at the term end
            offset = latest_due_offset(
                list(FINAL_NOTICE_DAYS), days_left=days_left, started_days_before=opened_days_before
            )
        if offset is not None:
            client = renewal.retainer.client
            for recipient in client_recipients(client, contacts[client.pk]):
                key = f"renewal-{renewal.pk}-client-{offset}-{recipient.key}"
                context = {**client_context(renewal, recipient), "days_left": days_left, "offset": offset}
                arguments: _Queued = {
                    "to": recipient.email,
                    "template": "renewal_reminder_client",
                    "context": context,
                    "client_id": client.pk,
                    "secret": "accept_url" in context,  # the proposal's links act without signing in
                }
                planned.append((key, arguments))

    sent = set(Email.objects.filter(key__in=[key for key, _ in planned]).values_list("key", flat=True))
    queued = 0
    for key, arguments in planned:
        if key in sent:
            continue
        queue_email(**arguments, workspace=workspace, key=key)
        queued += 1
    return queued


@dataclass
class WorkspaceRun:
    workspace_id: int
    followed: int = 0
    settled: int = 0
    opened: list[int] = field(default_factory=list)
    reminders: int = 0
    skipped: str = ""


@tenancy.per_workspace
def process_workspace(*, workspace_id: int, as_of: date | None = None) -> WorkspaceRun:
    """The renewals of one workspace as of its local date: follow, settle, open, remind.

    One transaction under a per-workspace advisory lock: two runs for the same workspace never
    interleave, and a failure leaves nothing half done for the next run to trip on.
    """
    workspace = Workspace.objects.get(pk=workspace_id)
    today = as_of or workspace.today()
    result = WorkspaceRun(workspace_id)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [WORKSPACE_LOCK_NAMESPACE, workspace_id])
            if not cursor.fetchone()[0]:
                result.skipped = "another renewals task is running for this workspace"
                return result
        result.followed = follow_moved_terms(workspace=workspace)
        result.settled = settle_unanswered(workspace=workspace, today=today)
        result.opened = [r.pk for r in open_due_renewals(workspace=workspace, today=today)]
        result.reminders = send_due_reminders(workspace=workspace, today=today)
    return result


@dataclass
class RunSummary:
    started: bool
    workspaces: int = 0
    opened: int = 0
    settled: int = 0
    reminders: int = 0


def workspaces_to_process() -> list[int]:
    live = Retainer.objects.filter(workspace=OuterRef("pk"), status=Retainer.Status.ACTIVE)
    pending = Renewal.objects.filter(workspace=OuterRef("pk"), status__in=OPEN)
    workspaces = Workspace.objects.filter(Q(Exists(live)) | Q(Exists(pending)))
    return list(workspaces.order_by("pk").values_list("pk", flat=True))


@tenancy.scan("renewals run: which workspaces have renewals due")
def run_renewals(*, as_of: date | None = None, inline: bool = False, now: datetime | None = None) -> RunSummary:
    """The renewals run: one at a time (a session advisory lock; a second run returns at once),
    fanning out one task per workspace, or processing each inline (the management command).

    Beat runs it hourly: each workspace is processed once per local day, after
    `DAILY_JOBS_LOCAL_HOUR` in its time zone (`retainers.daily`). With `as_of` (the command's
    `--as-of`), every workspace is processed as of that date, whatever the hour."""
    from renewals import tasks

    with single_run(RUN_LOCK) as started:
        if not started:
            return RunSummary(started=False)
        summary = RunSummary(started=True)
        workspace_ids = workspaces_to_process()
        if as_of is None:
            days = claim_days(DailyRun.Job.RENEWALS, workspace_ids, now=now)
        else:
            days = dict.fromkeys(workspace_ids, as_of)
        for workspace_id, day in sorted(days.items()):
            summary.workspaces += 1
            if inline:
                result = process_workspace(workspace_id=workspace_id, as_of=day)
                summary.opened += len(result.opened)
                summary.settled += result.settled
                summary.reminders += result.reminders
            else:
                tasks.process_workspace.delay(workspace_id, day.isoformat())
        return summary


# --- Email context ---------------------------------------------------------------------------------


def continues_without_answer(retainer: Retainer) -> bool:
    """What the term end does when nobody answers: renew on the same terms, or end."""
    return retainer.auto_renew and not retainer.cancel_at_period_end


def _context(renewal: Renewal) -> dict[str, object]:
    retainer = renewal.retainer
    locale = renewal.workspace.locale or "en_US"
    return {
        "renewal": renewal,
        "retainer": retainer,
        "client": retainer.client,
        "workspace": renewal.workspace,
        "current_terms": describe_terms(retainer, locale=locale),
        "proposed_terms": describe_terms(renewal, locale=locale),
        "proposed_price": format_money(renewal.price_minor, renewal.currency, locale),
        "renews_without_answer": continues_without_answer(retainer),
        "renewal_url": renewal_url(renewal),
    }


def client_context(renewal: Renewal, recipient: Recipient, *, links: bool = True) -> dict[str, object]:
    context = {**_context(renewal), "recipient": recipient, "contact": recipient.contact}
    context.pop("renewal_url")  # the consultant's page: not for the client
    if recipient.contact is not None and recipient.contact.portal_access:
        context["portal_url"] = portal_url(renewal)
    if links and renewal.status == Status.PROPOSAL_SENT:
        context.update(response_urls(renewal, recipient.contact))
    return context
