"""Delivery: periods, the append-only ledger of units, work items and deliverables."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import ClassVar, Self
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import DateTimeRangeField, RangeBoundary, RangeOperators
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.functional import cached_property

from clients.models import Retainer
from retainers.models import WorkspaceOwned, WorkspaceQuerySet, currency_constraint


class Period(WorkspaceOwned):
    """One billing cycle of a retainer: the half-open date range [start_on, end_on).

    The figures after `status` are filled when the period closes, from the ledger.
    """

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    retainer = models.ForeignKey(Retainer, on_delete=models.CASCADE, related_name="periods")
    seq = models.PositiveIntegerField(help_text="1 for the retainer's first period, counting on across pauses.")
    anchor_index = models.IntegerField(help_text="Index of this period counted from the retainer's anchor.")
    start_on = models.DateField()
    end_on = models.DateField()
    status = models.CharField(max_length=6, choices=Status.choices, default=Status.OPEN)
    allotted = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"))
    rolled_in = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"))
    used = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"))
    expired = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"))
    rolled_out = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"))
    overage = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"))
    # Of the units used beyond the balance, those the client approved (delivery.approvals): billed
    # at each approval's rate, apart from `overage`, which is billed at the period's rate.
    approved_overage = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"))
    closed_at = models.DateTimeField(null=True, blank=True)
    # The prices in force for this period, copied when it opens, so that billing a period
    # late (after downtime, or after an amendment took effect) uses that period's own terms.
    currency = models.CharField(max_length=3, default="USD")
    billing_timing = models.CharField(max_length=8, default="advance")
    price_minor = models.BigIntegerField(default=0)
    overage_rate_minor = models.BigIntegerField(default=0)
    extra_deliverable_price_minor = models.BigIntegerField(default=0)
    # The first day the billing run held this period's invoice (a renewed term's first invoice waits
    # while the previous term's is unpaid past due): once released it is issued dated that day.
    invoice_held_on = models.DateField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "retainer", "seq"], name="period_seq_unique"),
            models.UniqueConstraint(
                fields=["workspace", "retainer"], condition=models.Q(status="open"), name="period_one_open"
            ),
            models.CheckConstraint(condition=models.Q(end_on__gt=models.F("start_on")), name="period_not_empty"),
            models.CheckConstraint(
                condition=models.Q(price_minor__gte=0, overage_rate_minor__gte=0, extra_deliverable_price_minor__gte=0),
                name="period_prices_not_negative",
            ),
            currency_constraint(),
        ]
        ordering = ["retainer", "seq"]

    def __str__(self) -> str:
        return f"{self.start_on:%d %b %Y} – {self.end_on:%d %b %Y}"

    def contains(self, day: date) -> bool:
        return self.start_on <= day < self.end_on

    @cached_property
    def last_on(self) -> date:
        """The last day in the period: periods are half-open, people read inclusive ranges."""
        return self.end_on - timedelta(days=1)


class WorkItem(WorkspaceOwned):
    """A session or piece of work delivered. Billable items draw on the retainer's balance.

    Editing makes a new item that `replaces` the old one (whose ledger entry is reversed),
    so the ledger never changes; the user sees one row, the newest.
    """

    retainer = models.ForeignKey(Retainer, on_delete=models.CASCADE, related_name="work_items")
    period = models.ForeignKey(Period, on_delete=models.PROTECT, related_name="work_items")
    delivered_on = models.DateField()
    quantity = models.DecimalField(max_digits=8, decimal_places=2)
    description = models.CharField(max_length=500)
    billable = models.BooleanField(default=True)
    delivered_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    deliverable = models.ForeignKey(
        "delivery.Deliverable", on_delete=models.SET_NULL, null=True, blank=True, related_name="work_items"
    )
    replaces = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    removed_at = models.DateTimeField(null=True, blank=True, help_text="Set when reversed or replaced.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["workspace", "retainer", "delivered_on"], name="workitem_day_idx")]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "replaces"], name="workitem_replaced_once"),
            models.CheckConstraint(condition=models.Q(quantity__gt=0), name="workitem_quantity_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.delivered_on} {self.quantity} {self.description}"


class LedgerEntry(WorkspaceOwned):
    """One movement of units. Append-only: a database trigger refuses UPDATE and DELETE.

    A period's balance is the sum of its entries; a closed period sums to zero, because
    closing moves what is left out (rolled out, expired, billed as overage).
    """

    class Kind(models.TextChoices):
        ALLOTMENT = "allotment", "Allotment"
        ROLLOVER_IN = "rollover_in", "Rolled in"
        ROLLOVER_OUT = "rollover_out", "Rolled out"
        DELIVERY = "delivery", "Delivery"
        EXPIRY = "expiry", "Expired"
        OVERAGE = "overage", "Billed as overage"
        ADJUSTMENT = "adjustment", "Adjustment"
        REVERSAL = "reversal", "Reversal"

    retainer = models.ForeignKey(Retainer, on_delete=models.PROTECT, related_name="ledger")
    period = models.ForeignKey(Period, on_delete=models.PROTECT, related_name="entries")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    quantity = models.DecimalField(max_digits=10, decimal_places=2, help_text="Positive credits, negative debits.")
    origin_seq = models.PositiveIntegerField(
        help_text="The period whose allotment these units came from: rolled units expire by it."
    )
    reason = models.CharField(max_length=255, blank=True)
    work_item = models.ForeignKey(WorkItem, on_delete=models.PROTECT, null=True, blank=True, related_name="entries")
    reverses = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["workspace", "retainer", "period"], name="ledger_period_idx")]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "reverses"], name="ledger_reversed_once"),
            # An entry moves units: a zero would be a row that says nothing (and sums hide it).
            models.CheckConstraint(condition=~models.Q(quantity=0), name="ledger_quantity_not_zero"),
        ]
        ordering = ["created_at", "pk"]
        verbose_name_plural = "ledger entries"

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.quantity:+}"


class Deliverable(WorkspaceOwned):
    """A named deliverable of one period (deliverables retainers)."""

    class Status(models.TextChoices):
        PLANNED = "planned", "Planned"
        IN_PROGRESS = "in_progress", "In progress"
        DELIVERED = "delivered", "Delivered"
        LAPSED = "lapsed", "Lapsed"
        CARRIED = "carried", "Carried to next period"

    retainer = models.ForeignKey(Retainer, on_delete=models.CASCADE, related_name="deliverable_items")
    period = models.ForeignKey(Period, on_delete=models.PROTECT, related_name="deliverables")
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PLANNED)
    extra = models.BooleanField(default=False, help_text="Beyond the plan: billed as an extra deliverable.")
    carried_from = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    delivered_on = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["period", "pk"]
        constraints = [models.UniqueConstraint(fields=["workspace", "carried_from"], name="deliverable_carried_once")]

    def __str__(self) -> str:
        return self.name


class OverageApproval(WorkspaceOwned):
    """The client's answer to "may we go beyond the balance?" for one period of a retainer.

    Asked by the low-balance alerts or by a consultant (status `requested`, at most one waiting
    per period), answered once by a contact in the portal or by a signed emailed link: the
    conditional UPDATE in `delivery.approvals.answer_overage` is what makes a link single use.
    An approval lets `quantity` units be recorded beyond the balance of its period, even under
    "refuse"; at the period's close `used` is what it covered (billed at `rate_minor`) and the
    rest lapses.
    """

    class Status(models.TextChoices):
        REQUESTED = "requested", "Waiting for the client"
        APPROVED = "approved", "Approved"
        DECLINED = "declined", "Declined"
        LAPSED = "lapsed", "Lapsed unanswered"

    class Via(models.TextChoices):
        PORTAL = "portal", "Portal"
        LINK = "link", "Emailed link"

    retainer = models.ForeignKey(Retainer, on_delete=models.CASCADE, related_name="overage_approvals")
    period = models.ForeignKey(Period, on_delete=models.PROTECT, related_name="overage_approvals")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.REQUESTED)
    offered = models.DecimalField(max_digits=8, decimal_places=2, help_text="Most units the client may approve.")
    quantity = models.DecimalField(
        max_digits=8, decimal_places=2, default=Decimal("0"), help_text="Units approved (0 until approved)."
    )
    rate_minor = models.BigIntegerField(help_text="Price of one approved unit, in minor units.")
    currency = models.CharField(max_length=3)
    message = models.TextField(blank=True, help_text="The consultant's words to the client.")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    requested_at = models.DateTimeField(default=timezone.now)
    answered_by = models.ForeignKey(
        "clients.Contact", on_delete=models.SET_NULL, null=True, blank=True, related_name="overage_answers"
    )
    answered_name = models.CharField(max_length=320, blank=True, help_text="Who answered, kept if the contact goes.")
    answered_at = models.DateTimeField(null=True, blank=True)
    answered_via = models.CharField(max_length=6, choices=Via.choices, blank=True)
    answered_ip = models.GenericIPAddressField(null=True, blank=True)
    decline_reason = models.CharField(max_length=500, blank=True)
    used = models.DecimalField(
        max_digits=8, decimal_places=2, default=Decimal("0"), help_text="Units it covered, set when the period closes."
    )
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["workspace", "period", "status"], name="overage_approval_period_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "period"], condition=models.Q(status="requested"), name="overage_one_waiting"
            ),
            models.CheckConstraint(
                condition=models.Q(offered__gt=0, quantity__gte=0, quantity__lte=models.F("offered"), used__gte=0)
                & models.Q(used__lte=models.F("quantity"), rate_minor__gte=0),
                name="overage_approval_quantities",
            ),
            models.CheckConstraint(
                condition=models.Q(status="approved", quantity__gt=0) | ~models.Q(status="approved"),
                name="overage_approved_some",
            ),
            currency_constraint(),
        ]

    def __str__(self) -> str:
        return f"Overage approval #{self.pk} ({self.get_status_display().lower()})"

    @property
    def unused(self) -> Decimal:
        return self.quantity - self.used


# --- Bookings: session types, availability, bookings, calendars ------------------------------------
#
# A consultant (a workspace member) offers session types that draw units from retainers; clients book
# them in the member's free time (weekly hours, date overrides, minus bookings and the busy times read
# from their CalDAV calendar). The workflows are in delivery.booking, the slot arithmetic in
# delivery.slots, the calendars in delivery.ics and delivery.caldav_sync.


def default_reminder_minutes() -> list[int]:
    return [24 * 60]


class SessionType(WorkspaceOwned):
    """Something a client can book with one member: "Coaching call, 60 minutes"."""

    member = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="session_types")
    name = models.CharField(max_length=120)
    duration_minutes = models.PositiveSmallIntegerField(default=60)
    # What one booking draws, in the retainer's own unit: hour-based retainers lose `hours`,
    # session-based ones `sessions`.
    hours = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("1"))
    sessions = models.PositiveSmallIntegerField(default=1)
    all_retainers = models.BooleanField(
        default=True, help_text="Any live retainer in units may book it; else only the chosen ones."
    )
    location = models.CharField(max_length=500, blank=True, help_text="An address, or the video link.")
    reminder_minutes = models.JSONField(default=default_reminder_minutes, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint("workspace", "member", Lower("name"), name="sessiontype_name")]
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name

    def units_for(self, retainer: Retainer) -> Decimal:
        """What one booking of this type draws from `retainer`, in its unit."""
        return Decimal(self.sessions) if retainer.unit == "sessions" else self.hours


class SessionTypeRetainer(WorkspaceOwned):
    """A retainer a session type draws from, when it does not draw from all of them."""

    session_type = models.ForeignKey(SessionType, on_delete=models.CASCADE, related_name="retainer_links")
    retainer = models.ForeignKey(Retainer, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "session_type", "retainer"], name="sessiontype_retainer")
        ]


class Schedule(WorkspaceOwned):
    """A member's booking rules: their zone, buffers, notice, how far ahead, how many a day.

    Its row is also the lock that serialises bookings with one member (delivery.booking).
    """

    class Step(models.IntegerChoices):
        FIVE = 5, "every 5 minutes"
        TEN = 10, "every 10 minutes"
        FIFTEEN = 15, "every 15 minutes"
        TWENTY = 20, "every 20 minutes"
        THIRTY = 30, "every 30 minutes"
        HOUR = 60, "every hour"

    member = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    timezone = models.CharField(max_length=64, blank=True, help_text="Blank: the workspace's time zone.")
    buffer_before_minutes = models.PositiveSmallIntegerField(default=0)
    buffer_after_minutes = models.PositiveSmallIntegerField(default=0)
    min_notice_minutes = models.PositiveIntegerField(default=12 * 60)
    horizon_days = models.PositiveSmallIntegerField(default=60)
    daily_cap = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Blank: no limit.")
    step_minutes = models.PositiveSmallIntegerField(choices=Step.choices, default=Step.THIRTY)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "member"], name="schedule_one_per_member")]

    def __str__(self) -> str:
        return f"Schedule of {self.member_id}"

    def zone_name(self, workspace_timezone: str) -> str:
        return self.timezone or workspace_timezone


class WeeklyHours(WorkspaceOwned):
    """One range of a weekday's hours, in the member's zone (several make a day with a break)."""

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="weekly_hours")
    weekday = models.PositiveSmallIntegerField(help_text="0 is Monday.")
    starts = models.TimeField()
    ends = models.TimeField(help_text="00:00 means midnight at the end of the day.")

    class Meta:
        indexes = [models.Index(fields=["workspace", "schedule"], name="weeklyhours_schedule_idx")]
        constraints = [models.CheckConstraint(condition=models.Q(weekday__lte=6), name="weeklyhours_weekday")]
        ordering = ["weekday", "starts"]


class DateOverride(WorkspaceOwned):
    """One date's own hours, replacing the weekday's: rows without times mean unavailable all day."""

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="overrides")
    on = models.DateField()
    starts = models.TimeField(null=True, blank=True)
    ends = models.TimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["workspace", "schedule", "on"], name="dateoverride_day_idx")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(starts__isnull=True, ends__isnull=True)
                | models.Q(starts__isnull=False, ends__isnull=False),
                name="dateoverride_both_times_or_none",
            )
        ]
        ordering = ["on", "starts"]


class BookingPolicy(WorkspaceOwned):
    """A retainer's booking rules. A retainer without a row has the defaults (delivery.booking.policy_for)."""

    class LateCancel(models.TextChoices):
        KEEP = "keep", "The units are used (the session counts)"
        RETURN = "return", "The units are returned"

    class NoShow(models.TextChoices):
        CONSUME = "consume", "The units are used (the session counts)"
        RETURN = "return", "The units are returned"

    retainer = models.ForeignKey(Retainer, on_delete=models.CASCADE, related_name="+")
    cancel_window_hours = models.PositiveSmallIntegerField(
        default=24, help_text="Clients reschedule or cancel freely until this many hours before a session."
    )
    late_cancel = models.CharField(max_length=6, choices=LateCancel.choices, default=LateCancel.KEEP)
    no_show = models.CharField(max_length=7, choices=NoShow.choices, default=NoShow.CONSUME)
    nudge_after_days = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text='Email a "book your next session" nudge after this many days without one.'
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "retainer"], name="bookingpolicy_one")]
        verbose_name_plural = "booking policies"


class TsTzRange(models.Func):
    function = "TSTZRANGE"
    output_field = DateTimeRangeField()


class BookingQuerySet(WorkspaceQuerySet["Booking"]):
    def reserving(self, retainer: Retainer, *, start_on: date, end_on: date, zone: ZoneInfo) -> Self:
        """The retainer's active bookings that start on the workspace's days [start_on, end_on) (`zone`
        is the workspace's): what they reserve is the period's "booked" figure, which the ledger's
        "refuse" rule keeps for them (delivery.booking.booked_units, delivery.services)."""
        return self.filter(
            workspace_id=retainer.workspace_id,
            retainer=retainer,
            status=Booking.Status.BOOKED,
            starts_at__gte=datetime.combine(start_on, time(0), tzinfo=zone),
            starts_at__lt=datetime.combine(end_on, time(0), tzinfo=zone),
        )


class Booking(WorkspaceOwned):
    """A session booked with a member, drawing `units` from a retainer.

    While `booked` it reserves its units (delivery.booking.booked_units); held, it became a work
    item in the ledger. Two active bookings of one member never overlap, buffers included: an
    exclusion constraint on [blocked_from, blocked_until) decides when two people book at once.
    """

    class Status(models.TextChoices):
        BOOKED = "booked", "Booked"
        HELD = "held", "Held"
        NO_SHOW = "no_show", "No-show"
        CANCELLED = "cancelled", "Cancelled"
        LATE_CANCELLED = "late_cancelled", "Cancelled late"

    session_type = models.ForeignKey(SessionType, on_delete=models.PROTECT, related_name="bookings")
    retainer = models.ForeignKey(Retainer, on_delete=models.PROTECT, related_name="bookings")
    client = models.ForeignKey("clients.Client", on_delete=models.PROTECT, related_name="bookings")
    contact = models.ForeignKey(
        "clients.Contact", on_delete=models.SET_NULL, null=True, blank=True, related_name="bookings"
    )
    member = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="bookings")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    blocked_from = models.DateTimeField(help_text="Start minus the buffer before, when booked.")
    blocked_until = models.DateTimeField(help_text="End plus the buffer after, when booked.")
    units = models.DecimalField(max_digits=8, decimal_places=2)
    unit = models.CharField(max_length=8, help_text="The retainer's unit when booked.")
    status = models.CharField(max_length=14, choices=Status.choices, default=Status.BOOKED)
    work_item = models.ForeignKey(WorkItem, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    uid = models.CharField(max_length=255, help_text="The iCalendar UID: stable across changes.")
    sequence = models.PositiveIntegerField(default=0, help_text="The iCalendar SEQUENCE: one more per change.")
    booked_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    booked_at = models.DateTimeField(default=timezone.now)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    changed_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.CharField(max_length=500, blank=True)
    settled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    settled_at = models.DateTimeField(null=True, blank=True, help_text="When marked held or no-show.")
    # The member's CalDAV calendar: which SEQUENCE it holds (None: not written yet), and where.
    calendar_sequence = models.IntegerField(null=True, blank=True)
    calendar_href = models.CharField(max_length=1000, blank=True)

    objects: ClassVar = BookingQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "member", "starts_at"], name="booking_member_idx"),
            models.Index(fields=["workspace", "retainer", "status", "starts_at"], name="booking_retainer_idx"),
            models.Index(fields=["workspace", "status", "starts_at"], name="booking_due_idx"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "uid"], name="booking_uid_unique"),
            models.CheckConstraint(condition=models.Q(ends_at__gt=models.F("starts_at")), name="booking_not_empty"),
            models.CheckConstraint(
                condition=models.Q(blocked_from__lte=models.F("starts_at"), blocked_until__gte=models.F("ends_at")),
                name="booking_blocked_covers_session",
            ),
            ExclusionConstraint(
                name="booking_no_overlap",
                expressions=[
                    ("workspace", RangeOperators.EQUAL),
                    ("member", RangeOperators.EQUAL),
                    (TsTzRange("blocked_from", "blocked_until", RangeBoundary()), RangeOperators.OVERLAPS),
                ],
                condition=models.Q(status="booked"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.session_type_id} at {self.starts_at:%Y-%m-%d %H:%M} UTC ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.BOOKED


class CalendarConnection(WorkspaceOwned):
    """A member's CalDAV calendar: its busy times are read, their bookings written to it.

    The app password is sealed with Fernet (delivery.encryption); it is never shown again.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Not synced yet"
        OK = "ok", "Working"
        FAILED = "failed", "Not answering"

    member = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    url = models.URLField(max_length=1000)
    username = models.CharField(max_length=254)
    password_sealed = models.TextField()
    calendar_url = models.URLField(max_length=1000, blank=True, help_text="The calendar found at `url`.")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    failed_since = models.DateTimeField(null=True, blank=True)
    failure_notified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "member"], name="calendarconnection_one")]

    def __str__(self) -> str:
        return f"CalDAV of {self.member_id}: {self.url}"


class BusyBlock(WorkspaceOwned):
    """A busy time read from a member's calendar. Booking pages read these, never the calendar."""

    connection = models.ForeignKey(CalendarConnection, on_delete=models.CASCADE, related_name="busy_blocks")
    member = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["workspace", "member", "starts_at"], name="busyblock_member_idx")]


class CalendarFeed(WorkspaceOwned):
    """A member's private ICS subscription of their bookings. The URL holds `pk.secret`; the secret is
    stored hashed (to check) and sealed (to show the URL again). Regenerating revokes the old one."""

    member = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    secret_hash = models.CharField(max_length=64)
    secret_sealed = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "member"], condition=models.Q(revoked_at=None), name="calendarfeed_one_open"
            )
        ]
