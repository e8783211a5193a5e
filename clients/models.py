"""Clients and the people at them (contacts, who may sign in to the portal)."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar, Self

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector
from django.db import models
from django.db.models import Value
from django.db.models.functions import Lower, Replace
from django.utils import timezone

from retainers.models import WorkspaceOwned, WorkspaceQuerySet, currency_constraint
from retainers.search import SEARCH_CONFIG


def email_words(field: str) -> Replace:
    """An address as words for full-text search: "carol@acme.example" → "carol acme.example", so
    "acme" finds it (to_tsvector keeps a whole address as one token)."""
    return Replace(field, Value("@"), Value(" "))


# What each model is searched by (retainers.search): the GIN index below is on the same expression,
# and a query must use this very expression for PostgreSQL to use the index.
CLIENT_SEARCH = SearchVector("name", weight="A", config=SEARCH_CONFIG) + SearchVector(
    email_words("billing_email"), weight="B", config=SEARCH_CONFIG
)
CONTACT_SEARCH = (
    SearchVector("name", weight="A", config=SEARCH_CONFIG)
    + SearchVector(email_words("email"), weight="B", config=SEARCH_CONFIG)
    + SearchVector("role", weight="C", config=SEARCH_CONFIG)
)
RETAINER_SEARCH = SearchVector("name", config=SEARCH_CONFIG)


class Client(WorkspaceOwned):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        ARCHIVED = "archived", "Archived"

    name = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    billing_email = models.EmailField(blank=True, help_text="Invoices and receipts go here.")
    address = models.TextField(blank=True)
    tax_id = models.CharField("Tax ID", max_length=50, blank=True)
    checkin_every_days = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Open a check-in task when there has been no session or message this long."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "status", "name"], name="client_list_idx"),
            GinIndex(CLIENT_SEARCH, name="client_search_idx"),
        ]
        # Names are unique per workspace ignoring case: "Acme" and "ACME" are one client to people.
        constraints = [models.UniqueConstraint("workspace", Lower("name"), name="client_name_unique")]

    def __str__(self) -> str:
        return self.name


class Contact(WorkspaceOwned):
    """A person at a client. With portal access on, they sign in to the portal by emailed code.

    One contact row per person and workspace: the portal is keyed by workspace.
    """

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="contacts")
    name = models.CharField(max_length=150)
    email = models.EmailField()
    role = models.CharField(max_length=100, blank=True, help_text="Their job title or part in the relationship.")
    portal_access = models.BooleanField(default=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="contacts"
    )
    portal_invited_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Last in the class body: below it, `timezone` would name this field rather than django.utils.timezone.
    timezone = models.CharField(
        max_length=64, blank=True, help_text="IANA name, e.g. Europe/Paris. Blank: the workspace's time zone."
    )

    class Meta:
        constraints = [models.UniqueConstraint("workspace", Lower("email"), name="contact_email_unique")]
        indexes = [GinIndex(CONTACT_SEARCH, name="contact_search_idx")]

    def zone_name(self, workspace_timezone: str) -> str:
        """The zone this person reads times in."""
        return self.timezone or workspace_timezone

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"


def terms_constraints() -> list[models.BaseConstraint]:
    """The invariants of one set of terms, refused by the database on every table that holds terms
    (plans, retainers, amendments, renewal proposals). clients.forms.TermsForm checks the same
    rules first, to say which field is wrong."""
    rollover = models.Q(
        model="rollover",
        rollover_cap__isnull=False,
        rollover_cap__gt=0,
        rollover_expiry_periods__isnull=False,
        rollover_expiry_periods__gte=1,
    )
    return [
        # A rollover needs a cap and an expiry; only a rollover has them.
        models.CheckConstraint(
            condition=rollover
            | (~models.Q(model="rollover") & models.Q(rollover_cap__isnull=True, rollover_expiry_periods__isnull=True)),
            name="%(class)s_rollover_terms",
        ),
        # Deliverables, carrying them and the price of an extra one belong to the deliverables model.
        models.CheckConstraint(
            condition=models.Q(model="deliverables")
            | models.Q(deliverables=[], deliverables_carry=False, extra_deliverable_price_minor=0),
            name="%(class)s_deliverables_terms",
        ),
        models.CheckConstraint(
            condition=models.Q(price_minor__gte=0, overage_rate_minor__gte=0, extra_deliverable_price_minor__gte=0),
            name="%(class)s_prices_not_negative",
        ),
        currency_constraint(),
    ]


class RetainerTerms(models.Model):
    """What a client buys, period by period. Plans hold them as a template; a retainer copies them in.

    Its invariants are `terms_constraints()`, which every concrete holder lists in its Meta.
    """

    class Model(models.TextChoices):
        FIXED = "fixed", "Fixed units (unused units lapse)"
        ROLLOVER = "rollover", "Rollover units (unused units roll over)"
        DELIVERABLES = "deliverables", "Deliverables"

    class Unit(models.TextChoices):
        HOURS = "hours", "Hours"
        SESSIONS = "sessions", "Sessions"

    class Cadence(models.TextChoices):
        MONTHLY = "monthly", "Monthly"
        QUARTERLY = "quarterly", "Quarterly"
        YEARLY = "yearly", "Yearly"

    class Timing(models.TextChoices):
        ADVANCE = "advance", "In advance (at period start)"
        ARREARS = "arrears", "In arrears (at period end)"

    class Overage(models.TextChoices):
        BILL = "bill", "Bill extra units at the overage rate"
        CARRY = "carry", "Carry a negative balance into the next period"
        REFUSE = "refuse", "Refuse to record beyond the balance"

    model = models.CharField(max_length=12, choices=Model.choices, default=Model.FIXED)
    unit = models.CharField(max_length=8, choices=Unit.choices, default=Unit.HOURS)
    units_per_period = models.DecimalField(
        max_digits=8, decimal_places=2, default=Decimal("0"), help_text="Units allotted each period."
    )
    price_minor = models.BigIntegerField(default=0, help_text="Fee per period, in the currency's minor unit.")
    currency = models.CharField(max_length=3, default="USD")
    cadence = models.CharField(max_length=10, choices=Cadence.choices, default=Cadence.MONTHLY)
    billing_timing = models.CharField(max_length=8, choices=Timing.choices, default=Timing.ADVANCE)
    overage_policy = models.CharField(max_length=8, choices=Overage.choices, default=Overage.BILL)
    overage_rate_minor = models.BigIntegerField(default=0, help_text="Price of one extra unit, in minor units.")
    rollover_cap = models.DecimalField(
        max_digits=8, decimal_places=2, null=True, blank=True, help_text="Most units that may roll into a period."
    )
    rollover_expiry_periods = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Rolled units expire after this many periods."
    )
    deliverables = models.JSONField(default=list, blank=True, help_text="Names of the deliverables of each period.")
    deliverables_carry = models.BooleanField(
        default=False, help_text="Unfinished deliverables carry into the next period (else they lapse)."
    )
    extra_deliverable_price_minor = models.BigIntegerField(default=0)
    term_periods = models.PositiveSmallIntegerField(default=12, help_text="Periods in one term.")
    auto_renew = models.BooleanField(default=False)
    renewal_notice_days = models.PositiveSmallIntegerField(default=30)

    TERM_FIELDS = (
        "model",
        "unit",
        "units_per_period",
        "price_minor",
        "currency",
        "cadence",
        "billing_timing",
        "overage_policy",
        "overage_rate_minor",
        "rollover_cap",
        "rollover_expiry_periods",
        "deliverables",
        "deliverables_carry",
        "extra_deliverable_price_minor",
        "term_periods",
        "auto_renew",
        "renewal_notice_days",
    )

    class Meta:
        abstract = True

    def terms(self) -> dict[str, object]:
        """The terms as a dict, to copy into another holder of terms."""
        return {name: getattr(self, name) for name in self.TERM_FIELDS}

    @property
    def is_hours(self) -> bool:
        return self.unit == self.Unit.HOURS


class Plan(WorkspaceOwned, RetainerTerms):
    """A reusable template of terms. Editing a plan never changes a signed retainer."""

    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    archived = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint("workspace", Lower("name"), name="plan_name_unique"),
            *terms_constraints(),
        ]

    def __str__(self) -> str:
        return self.name


class RetainerQuerySet[M: Retainer](WorkspaceQuerySet[M]):
    def live(self) -> Self:
        return self.filter(status__in=[Retainer.Status.ACTIVE, Retainer.Status.PAUSED])


class Retainer(WorkspaceOwned, RetainerTerms):
    """One term of an agreement with a client, with its terms copied in at signing.

    The balance fields are a cache of the ledger (delivery app), recomputed from the
    ledger's sums under the retainer's row lock whenever an entry is written; the
    ledger is the truth. They let the clients list filter and sort by health in SQL.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        ENDED = "ended", "Ended"

    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="retainers")
    plan = models.ForeignKey(Plan, on_delete=models.SET_NULL, null=True, blank=True, related_name="retainers")
    name = models.CharField(max_length=120)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    starts_on = models.DateField()
    anchor_on = models.DateField(help_text="Periods are counted from this date (moves when a pause ends).")
    term_ends_on = models.DateField()
    cancel_at_period_end = models.BooleanField(default=False)
    auto_charge = models.BooleanField(
        default=False, help_text="Charge the client's saved card when an invoice is issued."
    )
    pause_after_unpaid_days = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Pause delivery when an invoice is this many days overdue."
    )
    paused_on = models.DateField(null=True, blank=True)
    ended_on = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Cache of the open period, see the class docstring.
    period_available = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"))
    period_used = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"))
    balance = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"))

    objects: ClassVar = RetainerQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "status"], name="retainer_status_idx"),
            GinIndex(RETAINER_SEARCH, name="retainer_search_idx"),
        ]
        constraints = terms_constraints()

    def __str__(self) -> str:
        return self.name

    @property
    def utilization(self) -> Decimal | None:
        """Share of this period's units used, 0–1 (or more when over)."""
        if self.period_available <= 0:
            return None
        return self.period_used / self.period_available


class Amendment(WorkspaceOwned, RetainerTerms):
    """A change of terms, effective at the start of the next period. Kept as history once applied."""

    retainer = models.ForeignKey(Retainer, on_delete=models.CASCADE, related_name="amendments")
    effective_on = models.DateField()
    reason = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "retainer"], condition=models.Q(applied_at=None), name="amendment_one_pending"
            ),
            *terms_constraints(),
        ]

    def __str__(self) -> str:
        return f"Amendment of {self.retainer_id} effective {self.effective_on:%Y-%m-%d}"
