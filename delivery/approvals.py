"""Overage the client approves first (issue 14): asking, answering, and what it allows.

A retainer with `overage_needs_approval` refuses work beyond its balance (whatever its overage
policy) unless the client approved extra units for the period; a retainer under "refuse" takes
approvals the same way. The limit itself is checked by `delivery.services._check_balance`, under
the retainer's row lock. Here:

- `request_overage` (a consultant, with a message) and `offer_overage` (the low-balance alerts)
  open the period's one waiting request and email the client's portal contacts a signed link;
- `answer_overage` approves or declines it once: a conditional UPDATE on the waiting status is
  the single use, for the portal and the link alike; the consultants are emailed either way;
- `overage_offer` is the one read-model of what is on offer: how far over, at what cost.

At the period's close (`services._close_round`) approved units that covered work are billed at the
approval's rate (`billing.overage`), and what was not used lapses with the period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone

from clients.models import Contact, Retainer, RetainerTerms
from delivery.models import OverageApproval, Period
from delivery.services import ZERO, DeliveryError, _lock
from retainers import audit, tenancy
from retainers.models import Membership, User, Workspace
from retainers.money import format_money, multiply
from retainers.outbox import queue_email
from retainers.units import format_units

Status = OverageApproval.Status
LINK_SALT = "delivery.overage-approval"
MAX_MESSAGE = 2000


def link_max_age() -> int:
    """Seconds an emailed approval link works (setting OVERAGE_LINK_MAX_AGE_DAYS, 14 by default)."""
    return int(settings.OVERAGE_LINK_MAX_AGE_DAYS) * 86400


# --- What is on offer ------------------------------------------------------------------------------


def approved_units(period: Period) -> Decimal:
    """Units the client approved beyond the balance for this period (all approvals together)."""
    return OverageApproval.objects.filter(
        workspace_id=period.workspace_id, period=period, status=Status.APPROVED
    ).aggregate(q=Sum("quantity", default=ZERO))["q"]


@dataclass(frozen=True)
class OverageOffer:
    """How far over a retainer is and what approving more would cost: emails and both sides' pages
    show these, formatted here so that no template multiplies."""

    unit: str
    over: Decimal  # units used beyond the balance so far
    over_cost: str
    approved: Decimal  # units approved this period
    approved_left: Decimal  # approved units not yet used
    block: Decimal
    block_cost: str
    rate: str

    @property
    def is_over(self) -> bool:
        return self.over > 0


def overage_offer(retainer: Retainer, period: Period, *, balance: Decimal, approved: Decimal) -> OverageOffer:
    """The figures of an overage offer for the period whose balance (negative when over) is `balance`
    and whose approvals add up to `approved`."""
    locale = retainer.workspace.locale or "en_US"
    over = max(-balance, ZERO)
    rate = period.overage_rate_minor
    return OverageOffer(
        unit=retainer.get_unit_display().lower(),
        over=over,
        over_cost=format_money(multiply(rate, over), period.currency, locale),
        approved=approved,
        approved_left=max(approved - over, ZERO),
        block=retainer.overage_block,
        block_cost=format_money(multiply(rate, retainer.overage_block), period.currency, locale),
        rate=format_money(rate, period.currency, locale),
    )


def offered_cost(approval: OverageApproval) -> str:
    """What approving everything offered would cost, formatted."""
    locale = approval.retainer.workspace.locale or "en_US"
    return format_money(multiply(approval.rate_minor, approval.offered), approval.currency, locale)


def waiting_for(period: Period) -> OverageApproval | None:
    return OverageApproval.objects.filter(
        workspace_id=period.workspace_id, period=period, status=Status.REQUESTED
    ).first()


# --- Links --------------------------------------------------------------------------------------------


def approval_token(approval: OverageApproval, contact: Contact) -> str:
    return signing.dumps({"a": approval.pk, "c": contact.pk}, salt=LINK_SALT)


def approval_url(approval: OverageApproval, contact: Contact) -> str:
    return settings.SITE_URL + reverse("delivery_public:overage_answer", args=[approval_token(approval, contact)])


@dataclass(frozen=True)
class LinkCheck:
    """What an emailed link is worth: `state` is ok, invalid, expired, used or lapsed."""

    state: str
    approval: OverageApproval | None = None
    contact: Contact | None = None

    @property
    def ok(self) -> bool:
        return self.state == "ok"


def check_token(token: str) -> LinkCheck:
    """Read a signed link: tampered → invalid; older than the max age → expired; answered → used;
    its period closed → lapsed. The one lookup across workspaces here is by the signed id."""
    try:
        data = signing.loads(token, salt=LINK_SALT, max_age=link_max_age())
    except signing.SignatureExpired:
        return LinkCheck("expired")
    except signing.BadSignature:
        return LinkCheck("invalid")
    if not isinstance(data, dict) or not isinstance(data.get("a"), int) or not isinstance(data.get("c"), int):
        return LinkCheck("invalid")
    with tenancy.cross_tenant("overage link: the approval a signed link names"):
        approval = (
            OverageApproval.objects.select_related("workspace", "retainer", "retainer__client", "period")
            .filter(pk=data["a"])
            .first()
        )
    if approval is None:
        return LinkCheck("invalid")
    tenancy.enter(approval.workspace_id)  # the rest of the request works in the link's workspace
    contact = Contact.objects.filter(
        workspace_id=approval.workspace_id, client_id=approval.retainer.client_id, pk=data["c"]
    ).first()
    if contact is None:
        return LinkCheck("invalid")
    if approval.status in (Status.APPROVED, Status.DECLINED):
        return LinkCheck("used", approval, contact)
    if approval.status == Status.LAPSED or approval.period.status != Period.Status.OPEN:
        return LinkCheck("lapsed", approval, contact)
    return LinkCheck("ok", approval, contact)


# --- Asking -------------------------------------------------------------------------------------------


def _portal_contacts(retainer: Retainer) -> list[Contact]:
    return list(
        Contact.objects.filter(workspace_id=retainer.workspace_id, client_id=retainer.client_id, portal_access=True)
        .exclude(email="")
        .order_by("pk")
    )


def _open_request(
    retainer: Retainer, *, offered: Decimal, message: str, actor: User | None, now: datetime
) -> OverageApproval:
    """The period's waiting request, opened or (asked again) refreshed. Under the retainer's lock."""
    if retainer.status != Retainer.Status.ACTIVE:
        raise DeliveryError("Only an active retainer can ask for overage.")
    if retainer.model == RetainerTerms.Model.DELIVERABLES:
        raise DeliveryError("A deliverables retainer has no units to go over.")
    if offered <= 0 or offered >= Decimal("10000"):
        raise DeliveryError("Offer between 0 and 10,000 units.", field="offered")
    if retainer.unit == RetainerTerms.Unit.SESSIONS and offered != offered.to_integral_value():
        raise DeliveryError("Sessions are counted in whole numbers.", field="offered")
    period = Period.objects.select_for_update().get(retainer=retainer, status=Period.Status.OPEN)
    approval = (
        OverageApproval.objects.select_for_update()
        .filter(workspace_id=retainer.workspace_id, period=period, status=Status.REQUESTED)
        .first()
    )
    if approval is None:
        approval = OverageApproval(workspace_id=retainer.workspace_id, retainer=retainer, period=period)
    approval.offered = offered.quantize(Decimal("0.01"))
    approval.rate_minor, approval.currency = period.overage_rate_minor, period.currency
    approval.message = message.strip()[:MAX_MESSAGE]
    approval.requested_by, approval.requested_at = actor, now
    approval.save()
    audit.record(
        workspace=retainer.workspace_id,
        actor=actor,
        action="overage.requested",
        target=approval,
        client_id=retainer.client_id,
        summary=f"{retainer.name}: up to {format_units(approval.offered, retainer.unit)}",
        changes={"offered": str(approval.offered), "rate_minor": approval.rate_minor},
    )
    return approval


def _email_client(approval: OverageApproval, contacts: list[Contact], *, balance: Decimal) -> None:
    retainer = approval.retainer
    offer = overage_offer(retainer, approval.period, balance=balance, approved=approved_units(approval.period))
    stamp = int(approval.requested_at.timestamp())
    for contact in contacts:
        queue_email(
            to=contact.email,
            template="overage_request",
            context={
                "recipient_name": contact.name,
                "workspace": retainer.workspace,
                "retainer": retainer,
                "approval": approval,
                "offer": offer,
                "offered": format_units(approval.offered, retainer.unit),
                "offered_cost": offered_cost(approval),
                "url": approval_url(approval, contact),
            },
            workspace=retainer.workspace,
            client_id=retainer.client_id,
            key=f"overage-ask-{approval.pk}-{stamp}-contact{contact.pk}",
            secret=True,  # the link approves or declines without signing in
        )


@transaction.atomic
def request_overage(
    *, retainer: Retainer, offered: Decimal, message: str, actor: User, now: datetime | None = None
) -> OverageApproval:
    """A consultant asks the client to approve up to `offered` extra units this period, with a
    message; the client's portal contacts are emailed a signed link. Locks the retainer. Asking
    again while a request waits replaces its offer and message (and emails again)."""
    now = now or timezone.now()
    retainer = _lock(retainer)
    contacts = _portal_contacts(retainer)
    if not contacts:
        raise DeliveryError("No contact at this client has portal access: give one access first, so they can answer.")
    approval = _open_request(retainer, offered=offered, message=message, actor=actor, now=now)
    _email_client(approval, contacts, balance=retainer.balance)
    return approval


def offer_overage(*, retainer: Retainer, now: datetime | None = None) -> OverageApproval | None:
    """The low-balance alerts' offer: the period's waiting request (opened with the retainer's block
    if there is none) for a retainer whose overage needs approval; None for the others. The alert
    email carries its link, so nothing is emailed here. Locks the retainer."""
    if not retainer.overage_needs_approval or retainer.model == RetainerTerms.Model.DELIVERABLES:
        return None
    with transaction.atomic():
        retainer = _lock(retainer)
        period = Period.objects.filter(retainer=retainer, status=Period.Status.OPEN).first()
        if period is None or retainer.status != Retainer.Status.ACTIVE:
            return None
        waiting = waiting_for(period)
        if waiting is not None:
            return waiting
        return _open_request(
            retainer, offered=retainer.overage_block, message="", actor=None, now=now or timezone.now()
        )


# --- Answering ----------------------------------------------------------------------------------------


def _admins(workspace: Workspace) -> list[Membership]:
    members = Membership.objects.for_workspace(workspace).filter(user__is_active=True).select_related("user")
    return [m for m in members.order_by("pk") if m.is_admin]


@transaction.atomic
def answer_overage(
    *,
    approval: OverageApproval,
    approve: bool,
    contact: Contact,
    via: str,
    quantity: Decimal | None = None,
    reason: str = "",
    ip: str | None = None,
    now: datetime | None = None,
) -> OverageApproval:
    """The client approves up to the offered units (or declines), once: a conditional UPDATE on
    the waiting status, so a second click, a second tab or a replayed link changes nothing. The
    workspace's owners and admins are emailed either way. Locks the retainer."""
    now = now or timezone.now()
    retainer = _lock(approval.retainer)
    if contact.client_id != retainer.client_id or contact.workspace_id != retainer.workspace_id:
        raise DeliveryError("This request is for another client.")
    approval = OverageApproval.objects.select_related("period").get(pk=approval.pk)
    if approval.status != Status.REQUESTED:
        raise DeliveryError(f"This request was already answered ({approval.get_status_display().lower()}).")
    if approval.period.status != Period.Status.OPEN:
        raise DeliveryError("This request was for a period that has ended.")
    if approve:
        if quantity is None or quantity <= 0:
            raise DeliveryError("Enter how many units you approve.", field="quantity")
        if quantity > approval.offered:
            raise DeliveryError(f"You may approve up to {format_units(approval.offered)}.", field="quantity")
        if retainer.unit == RetainerTerms.Unit.SESSIONS and quantity != quantity.to_integral_value():
            raise DeliveryError("Sessions are counted in whole numbers.", field="quantity")
        quantity = quantity.quantize(Decimal("0.01"))
    changed = OverageApproval.objects.filter(pk=approval.pk, status=Status.REQUESTED).update(
        status=Status.APPROVED if approve else Status.DECLINED,
        quantity=quantity if approve else ZERO,
        answered_by=contact,
        answered_name=f"{contact.name} <{contact.email}>"[:320],
        answered_at=now,
        answered_via=via,
        answered_ip=ip or None,
        decline_reason="" if approve else reason.strip()[:500],
    )
    if changed != 1:  # unreachable under the lock, kept as the guard that makes a link single use
        raise DeliveryError("This request was already answered.")
    approval.refresh_from_db()
    audit.record(  # the client's answer: no member acted; the summary says who, and the request's IP where
        workspace=retainer.workspace_id,
        actor=None,
        action="overage.approved" if approve else "overage.declined",
        target=approval,
        client_id=retainer.client_id,
        summary=f"{retainer.name}: {format_units(approval.quantity, retainer.unit)} by {contact.name} ({via})"
        if approve
        else f"{retainer.name}: declined by {contact.name} ({via})",
        changes={"quantity": str(approval.quantity)},
    )
    workspace = retainer.workspace
    url = settings.SITE_URL + reverse(
        "delivery:retainer_detail", kwargs={"workspace_slug": workspace.slug, "retainer_id": retainer.pk}
    )
    context = {
        "workspace": workspace,
        "retainer": retainer,
        "client": retainer.client,
        "approval": approval,
        "quantity": format_units(approval.quantity, retainer.unit),
        "unit": retainer.get_unit_display().lower(),
        "cost": format_money(
            multiply(approval.rate_minor, approval.quantity), approval.currency, workspace.locale or "en_US"
        ),
        "url": url,
    }
    for member in _admins(workspace):
        queue_email(
            to=member.user.email,
            template="overage_answered",
            context={**context, "recipient_name": member.user.get_short_name()},
            workspace=workspace,
            key=f"overage-answer-{approval.pk}-user{member.user_id}",
        )
    return approval
