"""Billing: the workspace's billing profile, invoices with their lines, payments, Stripe events.

Money is integer minor units with an ISO currency on the same row (retainers/money.py).
An issued invoice is never edited: corrections are credit notes.
"""

from __future__ import annotations

from datetime import date

from django.conf import settings
from django.db import models
from django.utils import timezone

from clients.models import Client, Retainer
from delivery.models import Period
from retainers.models import WorkspaceOwned, WorkspaceQuerySet, currency_constraint


def default_reminder_offsets() -> list[int]:
    return [3, 10, 30]


def default_retry_days() -> list[int]:
    return [1, 3, 7]


class BillingProfile(WorkspaceOwned):
    """How a workspace bills: who it is on the invoice, tax, terms, Stripe, reminders. One per workspace."""

    legal_name = models.CharField(max_length=200, blank=True, help_text="On invoices; the workspace name if empty.")
    address = models.TextField(blank=True)
    tax_id = models.CharField("Tax ID", max_length=50, blank=True)
    logo = models.ImageField(upload_to="logos/", blank=True)
    tax_label = models.CharField(max_length=20, default="Tax", help_text="E.g. VAT, GST, Sales tax.")
    tax_rate_bp = models.PositiveIntegerField(default=0, help_text="Tax rate in basis points: 2000 = 20%.")
    payment_terms_days = models.PositiveSmallIntegerField(default=14)
    payment_instructions = models.TextField(blank=True, help_text="Bank details for transfers, shown on invoices.")
    stripe_account_id = models.CharField(max_length=64, blank=True)
    reminder_offsets = models.JSONField(default=default_reminder_offsets, help_text="Days after the due date.")
    retry_days = models.JSONField(default=default_retry_days, help_text="Days after a failed charge to retry.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace"], name="billingprofile_one_per_workspace")]

    def __str__(self) -> str:
        return self.legal_name or f"Billing profile {self.workspace_id}"


class InvoiceSequence(WorkspaceOwned):
    """The last invoice number used per workspace and year; its row is the lock that keeps numbers gapless."""

    year = models.PositiveSmallIntegerField()
    last_number = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "year"], name="invoicesequence_unique")]


class InvoiceQuerySet(WorkspaceQuerySet):
    def outstanding(self) -> InvoiceQuerySet:
        return self.filter(status=Invoice.Status.OPEN)


class Invoice(WorkspaceOwned):
    class Kind(models.TextChoices):
        SCHEDULED = "scheduled", "Retainer period"
        CLOSING = "closing", "Final usage"
        MANUAL = "manual", "Manual"
        CREDIT_NOTE = "credit_note", "Credit note"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        OPEN = "open", "Open"
        PAID = "paid", "Paid"
        VOID = "void", "Void"
        UNCOLLECTIBLE = "uncollectible", "Uncollectible"

    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="invoices")
    retainer = models.ForeignKey(Retainer, on_delete=models.PROTECT, null=True, blank=True, related_name="invoices")
    period = models.ForeignKey(Period, on_delete=models.PROTECT, null=True, blank=True, related_name="invoices")
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.MANUAL)
    credit_for = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="credit_notes")
    number = models.CharField(max_length=20, blank=True)
    status = models.CharField(max_length=14, choices=Status.choices, default=Status.DRAFT)
    currency = models.CharField(max_length=3)
    issued_on = models.DateField(null=True, blank=True)
    due_on = models.DateField(null=True, blank=True)
    period_start_on = models.DateField(null=True, blank=True)
    period_end_on = models.DateField(null=True, blank=True, help_text="Exclusive, like the period's.")
    tax_label = models.CharField(max_length=20, default="Tax")
    tax_rate_bp = models.PositiveIntegerField(default=0)
    subtotal_minor = models.BigIntegerField(default=0)
    tax_minor = models.BigIntegerField(default=0)
    total_minor = models.BigIntegerField(default=0)
    paid_minor = models.BigIntegerField(default=0, help_text="Payments less refunds.")
    credited_minor = models.BigIntegerField(default=0, help_text="What credit notes took off this invoice.")
    auto_charge = models.BooleanField(default=False)
    pdf = models.FileField(upload_to="invoices/", blank=True)
    memo = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    charge_attempts = models.PositiveSmallIntegerField(default=0)
    next_charge_on = models.DateField(null=True, blank=True)
    reminders_sent = models.PositiveSmallIntegerField(default=0)
    overdue_notified_at = models.DateTimeField(null=True, blank=True)

    objects = InvoiceQuerySet.as_manager()

    class Meta:
        constraints = [
            # The last guard of "every period billed exactly once".
            models.UniqueConstraint(
                fields=["workspace", "retainer", "period", "kind"],
                condition=models.Q(kind__in=["scheduled", "closing"]),
                name="invoice_one_per_period",
            ),
            models.UniqueConstraint(
                fields=["workspace", "number"], condition=~models.Q(number=""), name="invoice_number_unique"
            ),
            models.CheckConstraint(
                condition=models.Q(total_minor=models.F("subtotal_minor") + models.F("tax_minor")),
                name="invoice_total_is_subtotal_plus_tax",
            ),
            currency_constraint(),
        ]
        indexes = [
            models.Index(fields=["workspace", "status", "due_on"], name="invoice_status_idx"),
            models.Index(fields=["workspace", "client", "issued_on"], name="invoice_client_idx"),
        ]

    def __str__(self) -> str:
        return self.number or f"Draft #{self.pk}"

    @property
    def balance_minor(self) -> int:
        return self.total_minor - self.paid_minor - self.credited_minor

    def is_overdue(self, *, on: date) -> bool:
        return self.status == self.Status.OPEN and self.due_on is not None and self.due_on < on


class InvoiceLine(WorkspaceOwned):
    class Kind(models.TextChoices):
        FEE = "fee", "Retainer fee"
        OVERAGE = "overage", "Overage"
        EXTRA_DELIVERABLE = "extra_deliverable", "Extra deliverable"
        MANUAL = "manual", "Manual"

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.MANUAL)
    description = models.CharField(max_length=255)
    quantity = models.DecimalField(max_digits=10, decimal_places=2, default=1)
    unit_price_minor = models.BigIntegerField()
    amount_minor = models.BigIntegerField()
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "pk"]

    def __str__(self) -> str:
        return self.description


class Payment(WorkspaceOwned):
    """A movement of money on an invoice: a payment (succeeded, pending or failed) or a refund."""

    class Kind(models.TextChoices):
        PAYMENT = "payment", "Payment"
        REFUND = "refund", "Refund"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    class Method(models.TextChoices):
        CARD = "card", "Card"
        BANK_TRANSFER = "bank_transfer", "Bank transfer"
        OTHER = "other", "Other"

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="payments")
    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="payments")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.PAYMENT)
    status = models.CharField(max_length=10, choices=Status.choices)
    method = models.CharField(max_length=14, choices=Method.choices)
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    stripe_id = models.CharField(max_length=64, blank=True, help_text="PaymentIntent or Refund id.")
    failure_message = models.CharField(max_length=255, blank=True)
    note = models.CharField(max_length=255, blank=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "stripe_id"], condition=~models.Q(stripe_id=""), name="payment_stripe_id_unique"
            ),
            # A refund is its own row (kind "refund") with a positive amount, never a negative payment.
            models.CheckConstraint(condition=models.Q(amount_minor__gt=0), name="payment_amount_positive"),
            currency_constraint(),
        ]
        indexes = [models.Index(fields=["workspace", "client", "created_at"], name="payment_client_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount_minor} {self.currency} ({self.status})"


class StripeCustomer(WorkspaceOwned):
    """A client's customer on the workspace's connected Stripe account, and their saved card."""

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="stripe_customers")
    customer_id = models.CharField(max_length=64)
    payment_method_id = models.CharField(max_length=64, blank=True)
    card_brand = models.CharField(max_length=20, blank=True)
    card_last4 = models.CharField(max_length=4, blank=True)
    card_exp = models.CharField(max_length=7, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "client"], name="stripecustomer_one_per_client")]


class StripeEvent(models.Model):
    """A webhook event, stored in the same transaction as its effect so it takes effect once.

    Platform table: an event arrives before we know (from its account) which workspace it is for.
    """

    event_id = models.CharField(max_length=64, unique=True)
    type = models.CharField(max_length=100)
    account = models.CharField(max_length=64, blank=True)
    created = models.DateTimeField(help_text="When Stripe created the event.")
    received_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"
