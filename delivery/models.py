"""Delivery: periods, the append-only ledger of units, work items and deliverables."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone

from clients.models import Retainer
from retainers.models import WorkspaceOwned


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
    closed_at = models.DateTimeField(null=True, blank=True)
    # The prices in force for this period, copied when it opens, so that billing a period
    # late (after downtime, or after an amendment took effect) uses that period's own terms.
    currency = models.CharField(max_length=3, default="USD")
    billing_timing = models.CharField(max_length=8, default="advance")
    price_minor = models.BigIntegerField(default=0)
    overage_rate_minor = models.BigIntegerField(default=0)
    extra_deliverable_price_minor = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "retainer", "seq"], name="period_seq_unique"),
            models.UniqueConstraint(
                fields=["workspace", "retainer"], condition=models.Q(status="open"), name="period_one_open"
            ),
            models.CheckConstraint(condition=models.Q(end_on__gt=models.F("start_on")), name="period_not_empty"),
        ]
        ordering = ["retainer", "seq"]

    def __str__(self) -> str:
        return f"{self.start_on:%d %b %Y} – {self.end_on:%d %b %Y}"

    def contains(self, day) -> bool:
        return self.start_on <= day < self.end_on


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
        constraints = [models.UniqueConstraint(fields=["workspace", "replaces"], name="workitem_replaced_once")]

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
        constraints = [models.UniqueConstraint(fields=["workspace", "reverses"], name="ledger_reversed_once")]
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
