"""A member's private ICS subscription of their bookings: a URL calendars poll, revocable.

The URL carries `<feed id>.<secret>`; the secret is stored hashed (to check a request, in constant
time) and sealed (so the member's page can show the URL again). Regenerating revokes the old URL:
it answers 404 from then on.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from delivery import ics
from delivery.encryption import SealError, seal, unseal
from delivery.models import Booking, CalendarFeed, Schedule
from retainers import tenancy
from retainers.models import Membership, User, Workspace, hash_secret

PAST_DAYS = 30  # a feed carries the last month of bookings and everything ahead


def current_feed(workspace: Workspace, member: User) -> CalendarFeed | None:
    return CalendarFeed.objects.for_workspace(workspace).filter(member=member, revoked_at=None).first()


@transaction.atomic
def regenerate_feed(*, workspace: Workspace, member: User, now: datetime | None = None) -> CalendarFeed:
    """Revoke the member's feed URL (if any) and make a new one."""
    now = now or timezone.now()
    CalendarFeed.objects.for_workspace(workspace).filter(member=member, revoked_at=None).update(revoked_at=now)
    secret = secrets.token_urlsafe(32)
    return CalendarFeed.objects.create(
        workspace=workspace, member=member, secret_hash=hash_secret(secret), secret_sealed=seal(secret), created_at=now
    )


@transaction.atomic
def revoke_feed(*, workspace: Workspace, member: User, now: datetime | None = None) -> None:
    CalendarFeed.objects.for_workspace(workspace).filter(member=member, revoked_at=None).update(
        revoked_at=now or timezone.now()
    )


def feed_url(feed: CalendarFeed) -> str | None:
    """The full subscription URL, or None when the secret can no longer be read (keys changed)."""
    try:
        secret = unseal(feed.secret_sealed)
    except SealError:
        return None
    return settings.SITE_URL + reverse("delivery_public:calendar_feed", kwargs={"token": f"{feed.pk}.{secret}"})


def find_feed(token: str) -> CalendarFeed | None:
    """The open feed a URL's token points at; None when forged, garbled, revoked or its member left."""
    pk, _, secret = token.partition(".")
    if not pk.isascii() or not pk.isdigit() or len(pk) > 18 or not secret:
        return None
    with tenancy.cross_tenant("calendar feed: the feed a secret URL names"):
        feed = CalendarFeed.objects.select_related("workspace", "member").filter(pk=int(pk), revoked_at=None).first()
    if feed is None or not hmac.compare_digest(feed.secret_hash, hash_secret(secret)):
        return None
    tenancy.enter(feed.workspace_id)  # the rest of the request works in the feed's workspace
    if not Membership.objects.filter(workspace_id=feed.workspace_id, user_id=feed.member_id).exists():
        return None
    return feed


def feed_text(feed: CalendarFeed, *, now: datetime | None = None) -> str:
    """The feed's iCalendar text: the member's bookings from a month ago on, in their zone."""
    now = now or timezone.now()
    schedule = Schedule.objects.filter(workspace_id=feed.workspace_id, member_id=feed.member_id).first()
    zone = schedule.zone_name(feed.workspace.timezone) if schedule else feed.workspace.timezone
    bookings = (
        Booking.objects.filter(
            workspace_id=feed.workspace_id, member_id=feed.member_id, starts_at__gte=now - timedelta(days=PAST_DAYS)
        )
        .select_related("session_type", "client", "contact", "member", "retainer")
        .order_by("starts_at", "pk")
    )
    name = f"{feed.member.get_full_name()}: bookings ({feed.workspace.name})"
    return ics.feed(bookings, zone=ZoneInfo(zone), name=name)
