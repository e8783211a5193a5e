"""Billing: the workspace's billing profile, invoices with their lines, payments, Stripe events.

Money is integer minor units with an ISO currency on the same row (retainers/money.py).
An issued invoice is never edited: corrections are credit notes.
"""

from __future__ import annotations

from datetime import date
from typing import ClassVar, Self

from django.conf import settings
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Greatest
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
    reminder_offsets = models.JSONField(default=default_reminder_offsets, help_text="Days after the due date.")
    retry_days = models.JSONField(default=default_retry_days, help_text="Days after a failed charge to retry.")
    members_move_money = models.BooleanField(
        default=False,
        help_text="Members may void, credit, write off, refund and charge now (owners and admins always may).",
    )
    accent_color = models.CharField(
        max_length=7, blank=True, help_text="#rrggbb, lower case: buttons and the band on emails. Empty: ours."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace"], name="billingprofile_one_per_workspace"),
            # It is written into emails' style attributes: only a colour may ever be there.
            models.CheckConstraint(
                condition=Q(accent_color="") | Q(accent_color__regex=r"^#[0-9a-f]{6}$"),
                name="billingprofile_accent_color_hex",
            ),
        ]

    def __str__(self) -> str:
        return self.legal_name or f"Billing profile {self.workspace_id}"


class InvoiceSequence(WorkspaceOwned):
    """The last invoice number used per workspace and year; its row is the lock that keeps numbers gapless."""

    year = models.PositiveSmallIntegerField()
    last_number = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "year"], name="invoicesequence_unique")]


class InvoiceState(models.TextChoices):
    """The one vocabulary of an invoice's status, for both sides: the consultant's pages, the
    portal, the PDF, the emails and the CSV all say what `Invoice.state()` says."""

    DRAFT = "draft", "Draft"
    OPEN = "open", "Open"
    PART_PAID = "part_paid", "Part paid"
    OVERDUE = "overdue", "Overdue"
    PAID = "paid", "Paid"
    OVERPAID = "overpaid", "Overpaid"
    REFUNDED = "refunded", "Refunded"
    VOID = "void", "Void"
    UNCOLLECTIBLE = "uncollectible", "Uncollectible"
    CREDIT_NOTE = "credit_note", "Credit note"

    @property
    def tone(self) -> str:
        """The badge class pages show it with."""
        return STATE_TONES[self]


STATE_TONES = {  # the badge of each state (templates/billing/_status.html)
    InvoiceState.DRAFT: "badge-muted",
    InvoiceState.OPEN: "badge-info",
    InvoiceState.PART_PAID: "badge-warning",
    InvoiceState.OVERDUE: "badge-danger",
    InvoiceState.PAID: "badge-success",
    InvoiceState.OVERPAID: "badge-warning",
    InvoiceState.REFUNDED: "badge-muted",
    InvoiceState.VOID: "badge-muted",
    InvoiceState.UNCOLLECTIBLE: "badge-warning",
    InvoiceState.CREDIT_NOTE: "badge-info",
}

# The amounts of an invoice as SQL, the twins of the properties below.
NET_TOTAL = F("total_minor") - F("credited_minor")
BALANCE = NET_TOTAL - F("paid_minor")
OWED = Greatest(BALANCE - F("refunded_minor"), Value(0))


class InvoiceQuerySet[M: Invoice](WorkspaceQuerySet[M]):
    def outstanding(self) -> Self:
        return self.filter(status=Invoice.Status.OPEN)

    def in_state(self, state: str, *, today: date, for_client: bool = False) -> Self:
        """The invoices `Invoice.state(on=today)` puts in `state`: the same rules, in SQL (a test holds
        the two together). An unknown state matches nothing."""
        status = Invoice.Status
        overpaid = Q(status__in=[status.OPEN, status.PAID, status.UNCOLLECTIBLE], paid_minor__gt=NET_TOTAL)
        open_ = Q(status=status.OPEN) & ~overpaid
        overdue = open_ & Q(due_on__lt=today)
        uncollectible = Q(status=status.UNCOLLECTIBLE) & ~overpaid
        if for_client:  # a write-off is the consultant's bookkeeping: the client still sees what is due
            overdue, uncollectible = overdue | uncollectible, Q(pk__in=[])
        rules = {
            InvoiceState.DRAFT: Q(status=status.DRAFT),
            InvoiceState.VOID: Q(status=status.VOID),
            InvoiceState.OVERPAID: overpaid,
            InvoiceState.UNCOLLECTIBLE: uncollectible,
            InvoiceState.REFUNDED: Q(status=status.PAID, paid_minor__lt=NET_TOTAL),
            InvoiceState.PAID: Q(status=status.PAID, paid_minor=NET_TOTAL),
            InvoiceState.OVERDUE: overdue,
            InvoiceState.PART_PAID: open_ & ~overdue & Q(paid_minor__gt=0),
            InvoiceState.OPEN: open_ & ~overdue & Q(paid_minor__lte=0),
        }
        if state == InvoiceState.CREDIT_NOTE:
            return self.filter(kind=Invoice.Kind.CREDIT_NOTE)
        if state not in rules:
            return self.none()
        return self.filter(rules[InvoiceState(state)]).exclude(kind=Invoice.Kind.CREDIT_NOTE)


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
    # The client's tax treatment as it was when the invoice was issued (billing/tax.py): a later
    # change to the client or the billing settings never changes an issued invoice.
    tax_treatment = models.CharField(max_length=20, choices=Client.TaxTreatment.choices, blank=True)
    tax_mention = models.TextField(blank=True, help_text="The legal mention printed under the totals.")
    seller_tax_id = models.CharField("Our tax ID", max_length=50, blank=True)
    buyer_tax_id = models.CharField("Client's tax ID", max_length=50, blank=True)
    subtotal_minor = models.BigIntegerField(default=0)
    tax_minor = models.BigIntegerField(default=0)
    total_minor = models.BigIntegerField(default=0)
    paid_minor = models.BigIntegerField(default=0, help_text="Payments less refunds.")
    credited_minor = models.BigIntegerField(default=0, help_text="What credit notes took off this invoice.")
    refunded_minor = models.BigIntegerField(
        default=0,
        help_text="Refunds the client is not asked to pay again (dunning leaves them alone) until the consultant asks.",
    )
    carry_credit_minor = models.BigIntegerField(
        default=0, help_text="Of the credit balance, what goes to the client's next invoice when it is issued."
    )
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
    # Delivery (billing/sending.py): rendering the PDF, then emailing or charging it. A task queued
    # on commit does it; the sweep (`manage.py deliver_invoices`) does what a lost task did not.
    delivery_due_at = models.DateTimeField(null=True, blank=True, help_text="When the invoice was issued.")
    delivered_at = models.DateTimeField(null=True, blank=True, help_text="Emailed, or its card charge attempted.")
    delivery_claimed_at = models.DateTimeField(null=True, blank=True)
    delivery_error = models.TextField(blank=True, help_text="Why the last delivery failed, for the consultant.")
    pdf_stale_at = models.DateTimeField(
        null=True, blank=True, help_text="Money moved after the stored PDF was rendered: render it again."
    )

    objects: ClassVar = InvoiceQuerySet.as_manager()

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
            # The invoices page's order (billing.selectors.NEWEST_FIRST): its first page is the index's
            # first 50 entries, not a sort of every invoice of the workspace.
            models.Index(
                F("workspace"),
                F("issued_on").desc(nulls_first=True),
                F("number").desc(),
                F("id").desc(),
                name="invoice_newest_idx",
            ),
            # Search finds an invoice by the start of its number (LIKE '2026-00%'): pattern ops make
            # that an index range, whatever the database's collation.
            models.Index(
                fields=["workspace", "number"], opclasses=["int8_ops", "varchar_pattern_ops"], name="invoice_number_idx"
            ),
            # The delivery sweep's few candidates among millions of delivered invoices.
            models.Index(
                fields=["delivery_due_at"],
                condition=models.Q(delivered_at=None) & ~models.Q(delivery_due_at=None),
                name="invoice_undelivered_idx",
            ),
            models.Index(fields=["pdf_stale_at"], condition=~models.Q(pdf_stale_at=None), name="invoice_pdf_stale_idx"),
        ]

    def __str__(self) -> str:
        return self.number or f"Draft #{self.pk}"

    @property
    def balance_minor(self) -> int:
        """What the invoice's books leave unpaid; below zero, a credit balance (overpaid)."""
        return self.total_minor - self.paid_minor - self.credited_minor

    @property
    def owed_minor(self) -> int:
        """What the client is asked to pay: the balance less what the consultant refunded
        (a refund is not asked back unless the consultant says so)."""
        return max(self.balance_minor - self.refunded_minor, 0)

    @property
    def credit_balance_minor(self) -> int:
        """What was paid beyond the invoice: to refund, or to apply to the client's next invoice."""
        return max(-self.balance_minor, 0)

    @property
    def free_credit_minor(self) -> int:
        """The credit balance not already set aside for the client's next invoice (`carry_credit_minor`):
        what can still be refunded or applied elsewhere."""
        return self.credit_balance_minor - self.carry_credit_minor

    def is_overdue(self, *, on: date) -> bool:
        return self.status == self.Status.OPEN and self.due_on is not None and self.due_on < on

    def state(self, *, on: date, for_client: bool = False) -> InvoiceState:
        """The invoice's status in the one vocabulary both sides read (InvoiceState), as of `on`.

        `for_client`: an uncollectible invoice is the consultant's write-off; its client still
        sees what is due (overdue). InvoiceQuerySet.in_state is the same rule in SQL.
        """
        if self.kind == self.Kind.CREDIT_NOTE:
            return InvoiceState.CREDIT_NOTE
        if self.status == self.Status.DRAFT:
            return InvoiceState.DRAFT
        if self.status == self.Status.VOID:
            return InvoiceState.VOID
        if self.balance_minor < 0:
            return InvoiceState.OVERPAID
        if self.status == self.Status.UNCOLLECTIBLE:
            return InvoiceState.OVERDUE if for_client else InvoiceState.UNCOLLECTIBLE
        if self.status == self.Status.PAID:
            return InvoiceState.REFUNDED if self.balance_minor > 0 else InvoiceState.PAID
        if self.is_overdue(on=on):
            return InvoiceState.OVERDUE
        return InvoiceState.PART_PAID if self.paid_minor > 0 else InvoiceState.OPEN


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
    """A movement of money on an invoice: a payment (succeeded, pending or failed) or a refund.

    A card refund carries Stripe's status (pending, succeeded, failed, canceled); pending and
    succeeded ones count against the invoice, a failed or canceled one no longer does. A credit
    moved from an overpaid invoice to the next is a pair of rows of method `credit`: a refund
    on the first, a payment on the second; no money moves.
    """

    class Kind(models.TextChoices):
        PAYMENT = "payment", "Payment"
        REFUND = "refund", "Refund"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    class Method(models.TextChoices):
        CARD = "card", "Card"
        BANK_TRANSFER = "bank_transfer", "Bank transfer"
        OTHER = "other", "Other"
        CREDIT = "credit", "Credit"

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
    refund_of = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="refunds",
        help_text="The refunded payment.",
    )
    credit_from = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="+", help_text="The credit moved here."
    )
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    # The day the money arrived when someone records it by hand (a bank transfer entered days later);
    # empty for payments recorded as they happen, whose day is created_at's in the workspace's zone.
    received_on = models.DateField(null=True, blank=True)
    # A card payment's receipt is queued after the invoice's PDF says PAID (billing/sending.py).
    receipt_due_at = models.DateTimeField(null=True, blank=True)
    receipt_queued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "stripe_id"], condition=~models.Q(stripe_id=""), name="payment_stripe_id_unique"
            ),
            # A refund is its own row (kind "refund") with a positive amount, never a negative payment.
            models.CheckConstraint(condition=models.Q(amount_minor__gt=0), name="payment_amount_positive"),
            currency_constraint(),
        ]
        indexes = [
            models.Index(fields=["workspace", "client", "created_at"], name="payment_client_idx"),
            models.Index(
                fields=["receipt_due_at"],
                condition=models.Q(receipt_queued_at=None) & ~models.Q(receipt_due_at=None),
                name="payment_receipt_due_idx",
            ),
        ]

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


class StripeAccount(WorkspaceOwned):
    """The workspace's Stripe account, connected through Stripe's onboarding (billing/connect.py):
    its id comes from Stripe's answer, never from a person. The id is the primary key, so one
    account belongs to one workspace across the platform; a workspace has one account, which a
    disconnect sets aside (`disconnected_at`) and a reconnect takes up again."""

    account_id = models.CharField(max_length=64, primary_key=True)
    charges_enabled = models.BooleanField(default=False, help_text="Stripe's word: the account may take payments.")
    details_submitted = models.BooleanField(default=False, help_text="The onboarding form was completed.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now, help_text="When Stripe's state was last read.")
    disconnected_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace"], name="stripeaccount_one_per_workspace")]

    def __str__(self) -> str:
        return self.account_id

    @property
    def connected(self) -> bool:
        """Payments go through it: not disconnected, and Stripe lets it take charges."""
        return self.disconnected_at is None and self.charges_enabled


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
