"""Clients and the people at them (contacts, who may sign in to the portal)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from functools import cached_property
from typing import ClassVar, Self

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector
from django.db import models
from django.db.models import Exists, OuterRef, Value
from django.db.models.functions import Lower, Replace
from django.utils import timezone

from retainers.fields import format_percent
from retainers.models import WorkspaceOwned, WorkspaceQuerySet, currency_constraint
from retainers.search import SEARCH_CONFIG
from retainers.units import utilisation, utilisation_percent


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

    class TaxTreatment(models.TextChoices):
        """How the client's invoices are taxed (billing/tax.py applies it)."""

        WORKSPACE = "workspace", "Your tax rate (billing settings)"
        OWN_RATE = "own_rate", "A rate of their own"
        EXEMPT = "exempt", "Exempt: no tax"
        REVERSE_CHARGE = "reverse_charge", "EU reverse charge: no tax, the client accounts for VAT"

    name = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    billing_email = models.EmailField(blank=True, help_text="Invoices and receipts go here.")
    address = models.TextField(blank=True)
    tax_id = models.CharField("Tax ID", max_length=50, blank=True)
    tax_treatment = models.CharField(max_length=20, choices=TaxTreatment.choices, default=TaxTreatment.WORKSPACE)
    tax_rate_bp = models.PositiveIntegerField(
        null=True, blank=True, help_text="Their own rate in basis points (2000 = 20%), with the own-rate treatment."
    )
    checkin_every_days = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Open a check-in task when there has been no session or message this long."
    )
    checkin_email_client = models.BooleanField(
        default=False, help_text="When a check-in opens, also email the client's portal contacts to book a session."
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "status", "name"], name="client_list_idx"),
            GinIndex(CLIENT_SEARCH, name="client_search_idx"),
        ]
        # Names are unique per workspace ignoring case: "Acme" and "ACME" are one client to people.
        constraints = [
            models.UniqueConstraint("workspace", Lower("name"), name="client_name_unique"),
            # A rate of their own has a rate (at most 100%); the other treatments have none.
            models.CheckConstraint(
                condition=models.Q(tax_treatment="own_rate", tax_rate_bp__isnull=False, tax_rate_bp__lte=10000)
                | (~models.Q(tax_treatment="own_rate") & models.Q(tax_rate_bp__isnull=True)),
                name="client_tax_rate_with_own_rate",
            ),
            # Reverse charge names the client's VAT number on every invoice.
            models.CheckConstraint(
                condition=~models.Q(tax_treatment="reverse_charge") | ~models.Q(tax_id=""),
                name="client_reverse_charge_has_tax_id",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def tax_rate_percent(self) -> str:
        """Their own tax rate as people write it ("8.25"); empty without one."""
        return "" if self.tax_rate_bp is None else format_percent(self.tax_rate_bp)


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
        """How often a period comes round; the facts about each cadence live here, once."""

        MONTHLY = "monthly", "Monthly"
        QUARTERLY = "quarterly", "Quarterly"
        YEARLY = "yearly", "Yearly"

        @property
        def months(self) -> int:
            """Months in one period."""
            return {"monthly": 1, "quarterly": 3, "yearly": 12}[self.value]

        @property
        def per_year(self) -> int:
            """Periods in a year."""
            return 12 // self.months

        @property
        def noun(self) -> str:
            """One period, as people say it: “month”, “quarter”, “year”."""
            return {"monthly": "month", "quarterly": "quarter", "yearly": "year"}[self.value]

        def counted(self, n: int) -> str:
            """“1 month”, “6 months”, “2 quarters”."""
            return f"{n} {self.noun}{'s' if n != 1 else ''}"

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

    @property
    def cadence_facts(self) -> RetainerTerms.Cadence:
        """The cadence with its facts (`months`, `per_year`, `noun`, `counted(n)`)."""
        return self.Cadence(self.cadence)

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


LOW_SHARE = Decimal("0.2")  # under 20% of what the period made available left is "running low"


class Health(models.TextChoices):
    """How a retainer with units stands this period, from its cached balance (deliverables
    retainers have no units to count: their health is "")."""

    OVER = "over", "Over the allotment"
    LOW = "low", "Running low"
    HEALTHY = "healthy", "Healthy"


# The one classification of health, in SQL (queryset methods below) and in Python (Retainer.health).
_UNITS = ~models.Q(model="deliverables")
_OVER = models.Q(balance__lt=0)
_LOW = models.Q(period_available__gt=0, balance__gte=0, balance__lt=models.F("period_available") * LOW_SHARE)


def health_expression() -> models.Case:
    """A retainer's health in SQL: "over", "low", "healthy", or "" for a deliverables retainer."""
    return models.Case(
        models.When(~_UNITS, then=models.Value("")),
        models.When(_OVER, then=models.Value(Health.OVER.value)),
        models.When(_LOW, then=models.Value(Health.LOW.value)),
        default=models.Value(Health.HEALTHY.value),
    )


class RetainerQuerySet[M: Retainer](WorkspaceQuerySet[M]):
    def live(self) -> Self:
        return self.filter(status__in=[Retainer.Status.ACTIVE, Retainer.Status.PAUSED])

    def in_force(self, *, on: date) -> Self:
        """One live term per agreement on `on`: a renewal's next term is left out until it starts
        (it shows as "next term starts …" on the current one), and a term is left out once the
        next term that replaces it has started (even if it is still live until the run ends it).
        A first term signed ahead of its start is in force: it is the agreement's only term."""
        started_next = Retainer.objects.filter(previous_term=OuterRef("pk"), starts_on__lte=on)
        return self.live().exclude(previous_term__isnull=False, starts_on__gt=on).exclude(Exists(started_next))

    def current(self, *, on: date) -> Self:
        """Live retainers whose term covers `on`: started, and not yet replaced by a next term."""
        return self.in_force(on=on).filter(starts_on__lte=on)

    def over(self) -> Self:
        """Retainers with units that used more than their balance this period."""
        return self.filter(_UNITS & _OVER)

    def low(self) -> Self:
        """Retainers with units under LOW_SHARE of the period's units left (and not over)."""
        return self.filter(_UNITS & _LOW)

    def low_or_over(self) -> Self:
        return self.filter(_UNITS & (_OVER | _LOW))

    def healthy(self) -> Self:
        return self.filter(_UNITS).exclude(_OVER | _LOW)

    def with_health(self) -> Self:
        """Annotated with `health`: "over", "low", "healthy", or "" for a deliverables retainer."""
        return self.annotate(health=health_expression())


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
    overage_needs_approval = models.BooleanField(
        default=False, help_text="Work beyond the balance needs the client's approval first, whatever the policy."
    )
    overage_block = models.DecimalField(
        max_digits=8,
        decimal_places=2,
        default=Decimal("5"),
        help_text="Units the client is offered to approve at once.",
    )
    paused_on = models.DateField(null=True, blank=True)
    ended_on = models.DateField(null=True, blank=True)
    # The term this one renews (an accepted renewal signs the next term as its own retainer).
    previous_term = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="next_terms"
    )
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
        constraints = [
            *terms_constraints(),
            models.CheckConstraint(condition=models.Q(overage_block__gt=0), name="retainer_overage_block_positive"),
        ]

    def __str__(self) -> str:
        return self.name

    @cached_property
    def next_term(self) -> Retainer | None:
        """The accepted renewal's retainer while it has not ended (the term after this one)."""
        return self.next_terms.exclude(status=Retainer.Status.ENDED).order_by("starts_on", "pk").first()

    @property
    def health_state(self) -> str:
        """The queryset's `with_health()` in Python, from the same cached figures: "over", "low",
        "healthy", or "" for a deliverables retainer."""
        if self.model == RetainerTerms.Model.DELIVERABLES:
            return ""
        if self.balance < 0:
            return Health.OVER
        if self.period_available > 0 and self.balance < self.period_available * LOW_SHARE:
            return Health.LOW
        return Health.HEALTHY

    @property
    def utilisation(self) -> Decimal | None:
        """This period's utilisation (retainers.units.utilisation), from the cached figures."""
        return utilisation(self.period_used, self.period_available)

    @property
    def utilisation_percent(self) -> int | None:
        return utilisation_percent(self.period_used, self.period_available)

    @property
    def limits_overage(self) -> bool:
        """Whether work (and bookings) stop at the balance plus what the client approved: under
        "refuse", or when overage needs the client's approval (delivery.approvals)."""
        return self.overage_policy == RetainerTerms.Overage.REFUSE or self.overage_needs_approval


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
