"""Reminders of bookings: part of the reminders job (communication.reminders, beat every 15 minutes,
and `manage.py send_reminders`), which calls the two steps below for each workspace.

For each workspace, as of one instant `now`:

1. before each active booking, at each of its session type's offsets (default 24 hours), the
   contact and the member get a reminder, once: the outbox key holds the booking, the offset, the
   start time (a moved booking is reminded again) and the recipient. After downtime only the
   nearest offset that has passed is sent, not a burst of stale ones; an offset that had passed
   when the booking was made or moved is skipped (the confirmation just said it all);
2. a client with a live retainer whose policy asks for it ("nudge after N days"), nothing booked
   ahead and neither a booking made nor a session held in the last N days, gets one "book your
   next session" email per quiet spell (the key holds the spell's start), if some active session
   type can be booked on that retainer.

Everything is idempotent and catches up, as the other reminders are (delivery.reminders).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, Max, OuterRef, Q
from django.urls import reverse

from clients.models import Contact, Retainer, RetainerTerms
from delivery.booking import describe_when, member_zone
from delivery.models import Booking, BookingPolicy, Schedule, SessionType, SessionTypeRetainer
from retainers.models import Email, Workspace
from retainers.outbox import queue_email

MAX_OFFSET = timedelta(days=14)  # offsets are at most two weeks: the query looks that far ahead


def _offset(booking: Booking, now: datetime) -> int | None:
    """The nearest reminder offset (minutes) that has passed for this booking, if it should be sent."""
    passed = [m for m in booking.session_type.reminder_minutes if booking.starts_at - timedelta(minutes=m) <= now]
    if not passed:
        return None
    minutes = min(passed)
    made = booking.changed_at or booking.booked_at
    if booking.starts_at - timedelta(minutes=minutes) < made:
        return None  # booked (or moved) inside this offset: the confirmation was the reminder
    return minutes


def send_reminders(*, workspace: Workspace, now: datetime) -> int:
    """Remind the contact and the member of each active booking whose offset has come, once each."""
    bookings = list(
        Booking.objects.for_workspace(workspace)
        .filter(status=Booking.Status.BOOKED, starts_at__gt=now, starts_at__lte=now + MAX_OFFSET)
        .select_related("session_type", "contact", "member", "client", "retainer")
        .order_by("starts_at", "pk")
    )
    schedules = {s.member_id: s for s in Schedule.objects.for_workspace(workspace)}
    planned: list[tuple[str, dict]] = []
    for booking in bookings:
        minutes = _offset(booking, now)
        if minutes is None:
            continue
        stamp = int(booking.starts_at.timestamp())
        base = {
            "booking": booking,
            "workspace": workspace,
            "session_type": booking.session_type,
            "member_name": booking.member.get_full_name(),
            "client": booking.client,
        }
        if booking.contact is not None:
            zone = ZoneInfo(booking.contact.zone_name(workspace.timezone))
            planned.append((
                f"booking-{booking.pk}-remind-{minutes}-{stamp}-contact",
                {"to": booking.contact.email, "reply_to": booking.member.email, "client_id": booking.client_id,
                 "context": {**base, "recipient_name": booking.contact.name,
                 "for_client": True, "when": describe_when(booking, zone)}},
            ))  # fmt: skip
        zone = member_zone(workspace, schedules.get(booking.member_id))
        planned.append((
            f"booking-{booking.pk}-remind-{minutes}-{stamp}-member",
            {"to": booking.member.email, "context": {**base, "recipient_name": booking.member.get_short_name(),
             "for_client": False, "when": describe_when(booking, zone)}},
        ))  # fmt: skip
    done = set(Email.objects.filter(key__in=[key for key, _ in planned]).values_list("key", flat=True))
    sent = 0
    for key, email in planned:
        if key in done:
            continue
        with transaction.atomic():
            queue_email(**email, template="booking_reminder", key=key, workspace=workspace)
        sent += 1
    return sent


def send_nudges(*, workspace: Workspace, now: datetime) -> int:
    """Email the portal contacts of each quiet retainer whose policy nudges, once per quiet spell."""
    policies = {
        p.retainer_id: p
        for p in BookingPolicy.objects.for_workspace(workspace).filter(
            nudge_after_days__isnull=False, retainer__status=Retainer.Status.ACTIVE
        )
    }
    if not policies:
        return 0
    bookable_types = SessionType.objects.filter(workspace=workspace, active=True)
    linked = SessionTypeRetainer.objects.filter(workspace=workspace, retainer=OuterRef("pk"), session_type__active=True)
    retainers = list(
        Retainer.objects.for_workspace(workspace)
        .filter(pk__in=policies)
        .exclude(model=RetainerTerms.Model.DELIVERABLES)
        .filter(Q(Exists(bookable_types.filter(all_retainers=True))) | Q(Exists(linked)))
        .annotate(
            last_booked_at=Max("bookings__booked_at"),
            last_session_at=Max(
                "bookings__starts_at",
                filter=Q(bookings__status__in=[Booking.Status.BOOKED, Booking.Status.HELD, Booking.Status.NO_SHOW]),
            ),
            upcoming=Exists(
                Booking.objects.filter(
                    workspace=workspace, retainer=OuterRef("pk"), status=Booking.Status.BOOKED, starts_at__gt=now
                )
            ),
        )
        .filter(upcoming=False)
        .select_related("client")
        .order_by("pk")
    )
    contacts: dict[int, list[Contact]] = defaultdict(list)
    for contact in (
        Contact.objects.for_workspace(workspace)
        .filter(client__in={r.client_id for r in retainers}, portal_access=True)
        .order_by("pk")
    ):
        contacts[contact.client_id].append(contact)
    url = settings.SITE_URL + reverse("portal:overview", kwargs={"workspace_slug": workspace.slug})
    planned: list[tuple[str, dict]] = []
    for retainer in retainers:
        # Quiet since the last booking was made, or the last session took place, whichever is later.
        quiet_since = max(filter(None, [retainer.last_booked_at, retainer.last_session_at, retainer.created_at]))
        days = policies[retainer.pk].nudge_after_days
        assert days is not None  # the policies were chosen for it
        if now - quiet_since < timedelta(days=days):
            continue
        for contact in contacts[retainer.client_id]:
            planned.append((
                f"booking-nudge-{retainer.pk}-{int(quiet_since.timestamp())}-contact{contact.pk}",
                {"to": contact.email, "client_id": retainer.client_id,
                 "context": {"workspace": workspace, "retainer": retainer,
                 "client": retainer.client, "recipient_name": contact.name, "days": days, "url": url}},
            ))  # fmt: skip
    done = set(Email.objects.filter(key__in=[key for key, _ in planned]).values_list("key", flat=True))
    sent = 0
    for key, email in planned:
        if key in done:
            continue
        with transaction.atomic():
            queue_email(**email, template="booking_nudge", key=key, workspace=workspace)
        sent += 1
    return sent
