"""Low-balance alerts: the delivery part of the reminders job (communication.reminders runs it
every 15 minutes, and `manage.py send_reminders`).

A live retainer below 20% of this period's units, or used up, is reported to the owners and
admins and to the client's portal contacts, once per period and threshold (outbox keys
`lowbal-{period_id}-{threshold}-{recipient}`). The state is in the outbox, so running twice,
or after a long downtime, sends each alert once.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.urls import reverse

from clients.models import Contact, Retainer, RetainerTerms
from delivery import approvals
from delivery.models import Period
from retainers.models import Email, Membership, Workspace
from retainers.money import format_money, multiply
from retainers.outbox import queue_email
from retainers.units import format_units

THRESHOLDS = (20, 0)  # percent left; 0 means used up


def _admins(workspace: Workspace) -> list[Membership]:
    members = Membership.objects.for_workspace(workspace).filter(user__is_active=True).select_related("user")
    return [m for m in members.order_by("pk") if m.is_admin]


def _site(path: str) -> str:
    return settings.SITE_URL + path


# --- Low-balance alerts -------------------------------------------------------------------------


def over_sentence(retainer: Retainer, *, rate_minor: int, currency: str, locale: str) -> str:
    """For a retainer used beyond its balance: how far over, and what happens to it by its
    overage policy ("3.00 hours over the 10.00 available. 3.00 hours at £150.00 an hour: £450.00 on
    the next invoice."), at the open period's rate and currency; "" when not over.
    The amount is what closing the period bills (`multiply`, as billing's invoice lines do)."""
    if retainer.balance >= 0:
        return ""
    unit = retainer.get_unit_display().lower()
    over, available = -retainer.balance, retainer.period_available
    said = f"{format_units(over, retainer.unit)} {unit} over the {format_units(available, retainer.unit)} available."
    rate = rate_minor
    # Under "bill", and whatever the policy when overage needs the client's approval: then the units
    # over are approved ones (no work is recorded beyond), billed at the close.
    if (retainer.overage_policy == RetainerTerms.Overage.BILL or retainer.overage_needs_approval) and rate:
        one = unit.removesuffix("s")
        price = f"{format_money(rate, currency, locale)} {'an' if one == 'hour' else 'a'} {one}"
        cost = format_money(multiply(rate, over), currency, locale)
        return f"{said} {format_units(over, retainer.unit)} {unit} at {price}: {cost} on the next invoice."
    if retainer.overage_policy == RetainerTerms.Overage.CARRY:
        return f"{said} They are carried into the next period as a negative balance."
    return said


def send_low_balance_alerts(*, workspace: Workspace) -> int:
    """Tell both sides when a live retainer's units run low (<20% left) or out (none left).

    Once per period and threshold: the outbox key holds the period, the threshold and the
    recipient, so running again (or after downtime) queues nothing twice. The thresholds are
    bands: a retainer that goes from plenty straight to nothing gets the "used up" alert only.
    """
    open_period = Period.objects.filter(workspace=workspace, retainer=OuterRef("pk"), status=Period.Status.OPEN)
    retainers = list(
        Retainer.objects.for_workspace(workspace)
        .live()
        .low_or_over()
        .filter(period_available__gt=0)
        .annotate(
            period_id=Subquery(open_period.values("pk")[:1]),
            period_end_on=Subquery(open_period.values("end_on")[:1]),
            period_overage_rate_minor=Subquery(open_period.values("overage_rate_minor")[:1]),
            period_currency=Subquery(open_period.values("currency")[:1]),
        )
        .filter(period_id__isnull=False)
        .select_related("client")
        .order_by("pk")
    )
    if not retainers:
        return 0
    admins = _admins(workspace)
    contacts: dict[int, list[Contact]] = {}
    for contact in (
        Contact.objects.for_workspace(workspace)
        .filter(client__in={r.client_id for r in retainers}, portal_access=True)
        .order_by("pk")
    ):
        contacts.setdefault(contact.client_id, []).append(contact)

    keys = [
        f"lowbal-{r.period_id}-{0 if r.balance <= 0 else 20}-contact{c.pk}"
        for r in retainers
        for c in contacts.get(r.client_id, [])
    ]
    told = set(Email.objects.filter(key__in=keys).values_list("key", flat=True))
    planned: list[tuple[str, dict]] = []
    for retainer in retainers:
        threshold = 0 if retainer.balance <= 0 else 20
        # Overage that needs approval: the client's alert offers it (the period's waiting request,
        # opened here when there is none), with how far over and what it costs.
        approval = offer = None
        untold = [
            c
            for c in contacts.get(retainer.client_id, [])
            if f"lowbal-{retainer.period_id}-{threshold}-contact{c.pk}" not in told
        ]
        if untold and retainer.overage_needs_approval:
            approval = approvals.offer_overage(retainer=retainer)
            if approval is not None:
                retainer.workspace = workspace
                offer = approvals.overage_offer(
                    retainer,
                    approval.period,
                    balance=retainer.balance,
                    approved=approvals.approved_units(approval.period),
                )
        elif untold and retainer.balance < 0 and retainer.overage_policy == RetainerTerms.Overage.BILL:
            # Already over under "bill": how far, and what the next invoice will add for it.
            retainer.workspace = workspace
            period = Period.objects.get(pk=retainer.period_id)
            offer = approvals.overage_offer(retainer, period, balance=retainer.balance, approved=Decimal("0"))
        base = {
            "retainer": retainer,
            "client": retainer.client,
            "workspace": workspace,
            "used_up": threshold == 0,
            "threshold": threshold,
            "remaining": format_units(max(retainer.balance, Decimal("0"))),
            "available": format_units(retainer.period_available),
            "unit": retainer.get_unit_display().lower(),
            "last_day": retainer.period_end_on - timedelta(days=1),
            "overage": retainer.get_overage_policy_display().lower(),
            "over": over_sentence(
                retainer,
                rate_minor=retainer.period_overage_rate_minor,
                currency=retainer.period_currency,
                locale=workspace.locale or "en_US",
            ),
            "told_client": bool(contacts.get(retainer.client_id)),
            "approval": approval,
            "offer": offer,
            "offered_cost": approvals.offered_cost(approval) if approval else "",
        }
        retainer_url = _site(
            reverse("delivery:retainer_detail", kwargs={"workspace_slug": workspace.slug, "retainer_id": retainer.pk})
        )
        for m in admins:
            planned.append((
                f"lowbal-{retainer.period_id}-{threshold}-user{m.user_id}",
                {"to": m.user.email, "template": "low_balance",
                 "context": {**base, "recipient_name": m.user.get_short_name(), "url": retainer_url}},
            ))  # fmt: skip
        portal_url = _site(reverse("portal:overview", kwargs={"workspace_slug": workspace.slug}))
        for contact in contacts.get(retainer.client_id, []):
            planned.append((
                f"lowbal-{retainer.period_id}-{threshold}-contact{contact.pk}",
                {"to": contact.email, "template": "low_balance_client", "client_id": retainer.client_id,
                 "context": {**base, "recipient_name": contact.name, "url": portal_url,
                             "approve_url": approvals.approval_url(approval, contact) if approval else ""},
                 # The approval link answers without signing in: the body is redacted once sent.
                 "secret": approval is not None},
            ))  # fmt: skip
    # One query tells which were sent on an earlier run; those are not rendered again.
    done = set(Email.objects.filter(key__in=[key for key, _ in planned]).values_list("key", flat=True))
    queued = 0
    for key, email in planned:
        if key in done:
            continue
        with transaction.atomic():
            queue_email(**email, key=key, workspace=workspace)
        queued += 1
    return queued
