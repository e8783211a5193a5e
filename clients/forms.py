"""Forms of the clients app: clients, contacts, the CSV upload and plans (the one terms form).

Amounts are stored as integers in the currency's minor unit (DESIGN: money, converted by
retainers.money); people type and read them as decimals ("1,500.00", "¥150,000").
"""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.db.models.functions import Lower

from clients import services
from clients.models import Client, Contact, Plan, RetainerTerms
from retainers.fields import MoneyField, example_amount
from retainers.forms import QueryFilterForm
from retainers.models import Workspace
from retainers.units import format_units

Terms = RetainerTerms

# --- Clients and contacts -------------------------------------------------------------


class ClientForm(forms.Form):
    name = forms.CharField(label="Name", max_length=200)
    billing_email = forms.EmailField(label="Billing email", required=False, help_text="Invoices and receipts go here.")
    address = forms.CharField(
        label="Billing address", required=False, widget=forms.Textarea(attrs={"rows": 3}), max_length=2000
    )
    tax_id = forms.CharField(label="Tax ID", max_length=50, required=False, help_text="VAT or tax number, if any.")

    def __init__(self, *args: object, workspace: Workspace, client: Client | None = None, **kwargs: object) -> None:
        if client is not None:
            kwargs.setdefault(
                "initial",
                {
                    "name": client.name,
                    "billing_email": client.billing_email,
                    "address": client.address,
                    "tax_id": client.tax_id,
                },
            )
        super().__init__(*args, **kwargs)
        self.workspace, self.client = workspace, client

    def clean_name(self) -> str:
        # The `client_name_unique` constraint decides; this check gives the friendly error early.
        name = self.cleaned_data["name"].strip()
        if services.client_name_taken(workspace=self.workspace, name=name, exclude=self.client):
            raise forms.ValidationError(f"There is already a client called “{name}”.")
        return name


class ContactForm(forms.Form):
    name = forms.CharField(label="Name", max_length=150)
    email = forms.EmailField(label="Email", help_text="One contact per address in this workspace.")
    role = forms.CharField(label="Role", max_length=100, required=False, help_text="Job title or part in the work.")
    portal_access = forms.BooleanField(
        label="Give portal access", required=False, help_text="Emails them an invitation to the client portal."
    )

    def __init__(
        self,
        *args: object,
        workspace: Workspace,
        contact: Contact | None = None,
        prefix: str | None = None,
        **kwargs: object,
    ) -> None:
        if contact is not None:
            kwargs.setdefault("initial", {"name": contact.name, "email": contact.email, "role": contact.role})
        super().__init__(*args, prefix=prefix, **kwargs)
        self.workspace, self.contact = workspace, contact
        if contact is not None:
            del self.fields["portal_access"]  # an existing contact has its own toggle button
            if contact.portal_access:
                self.fields["email"].help_text = "Their portal login. Turn portal access off to change it."

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip().lower()
        if self.contact is not None and self.contact.portal_access and email != self.contact.email.lower():
            raise forms.ValidationError(
                "This contact has portal access, and the email is their login. "
                "Turn portal access off first, change the email, then turn it on again to invite the new address."
            )
        others = Contact.objects.for_workspace(self.workspace).filter(email__iexact=email)
        if self.contact is not None:
            others = others.exclude(pk=self.contact.pk)
        other = others.select_related("client").first()
        if other is not None:
            raise forms.ValidationError(f"{other.name} at {other.client.name} already uses this email.")
        return email


class ClientFilterForm(QueryFilterForm):
    """The list's search, filters and sort, from the query string. Bad values fall back to the defaults."""

    STATUS_CHOICES = [("active", "Active"), ("archived", "Archived"), ("all", "All")]
    HEALTH_CHOICES = [
        ("", "Any health"),
        ("over", "Over their balance"),
        ("low", "Running low (under 20% left)"),
        ("healthy", "Healthy"),
        ("none", "No live retainer"),
    ]
    SORT_CHOICES = [
        ("name", "Name A–Z"),
        ("-name", "Name Z–A"),
        ("-created", "Newest first"),
        ("created", "Oldest first"),
        ("-utilization", "Most used first"),
        ("utilization", "Least used first"),
        ("remaining", "Least left first"),
        ("-remaining", "Most left first"),
    ]
    DEFAULTS = {"q": "", "status": "active", "health": "", "sort": "name"}

    q = forms.CharField(label="Search", required=False, max_length=200)
    status = forms.ChoiceField(label="Status", choices=STATUS_CHOICES, required=False)
    health = forms.ChoiceField(label="Health", choices=HEALTH_CHOICES, required=False)
    sort = forms.ChoiceField(label="Sort", choices=SORT_CHOICES, required=False)


class ImportUploadForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="UTF-8, up to 1 MB and 2,000 rows, with a header row. Columns: name (required), billing_email, "
        "address, tax_id, contact_name, contact_email, contact_role.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )


# --- Plans ------------------------------------------------------------------------------


class PlanForm(forms.Form):
    """The terms of a plan, with the fields that only some retainer models use checked for that model only."""

    ROLLOVER_FIELDS = ("rollover_cap", "rollover_expiry_periods")
    UNIT_FIELDS = ("unit", "units_per_period", "overage_policy", "overage_rate")
    DELIVERABLE_FIELDS = ("deliverables", "deliverables_carry", "extra_deliverable_price")
    MAX_DELIVERABLES = 50

    name = forms.CharField(label="Plan name", max_length=120)
    description = forms.CharField(
        label="Description",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=2000,
        help_text="For you and your team; clients see the retainer, not the plan.",
    )
    model = forms.ChoiceField(label="Retainer model", choices=Terms.Model.choices, widget=forms.RadioSelect)
    # Not required at field level: deliverables plans have no units (clean() checks per model).
    unit = forms.ChoiceField(label="Unit", choices=Terms.Unit.choices, initial=Terms.Unit.HOURS, required=False)
    units_per_period = forms.DecimalField(
        label="Units per period",
        max_digits=8,
        decimal_places=2,
        min_value=Decimal("0"),
        required=False,
        help_text="Hours with up to 2 decimals; sessions in whole numbers.",
    )
    overage_policy = forms.ChoiceField(
        label="Beyond the allotment", choices=Terms.Overage.choices, initial=Terms.Overage.BILL, required=False
    )
    overage_rate = MoneyField(label="Overage rate", required=False, help_text="Price of one extra hour or session.")
    rollover_cap = forms.DecimalField(
        label="Rollover cap",
        max_digits=8,
        decimal_places=2,
        min_value=Decimal("0"),
        required=False,
        help_text="The most unused units that may roll into the next period.",
    )
    rollover_expiry_periods = forms.IntegerField(
        label="Rolled units expire after",
        min_value=1,
        max_value=120,
        required=False,
        help_text="Number of periods after which unused rolled units expire.",
    )
    deliverables = forms.CharField(
        label="Deliverables each period",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One per line, e.g. “Monthly report”.",
    )
    deliverables_carry = forms.BooleanField(
        label="Unfinished deliverables carry into the next period",
        required=False,
        help_text="Otherwise they lapse at the period end.",
    )
    extra_deliverable_price = MoneyField(
        label="Price of an extra deliverable", required=False, help_text="Billed when you deliver beyond the list."
    )
    price = MoneyField(label="Price per period")
    cadence = forms.ChoiceField(label="Billing cadence", choices=Terms.Cadence.choices, initial=Terms.Cadence.MONTHLY)
    billing_timing = forms.ChoiceField(label="Invoice", choices=Terms.Timing.choices, initial=Terms.Timing.ADVANCE)
    term_periods = forms.IntegerField(
        label="Term length", min_value=1, max_value=120, initial=12, help_text="In periods, e.g. 12 monthly periods."
    )
    auto_renew = forms.BooleanField(label="Renew automatically at the end of the term", required=False)
    renewal_notice_days = forms.IntegerField(
        label="Renewal notice",
        min_value=0,
        max_value=365,
        initial=30,
        help_text="Days before the term ends that the renewal is prepared and sent.",
    )

    def __init__(
        self, *args: object, workspace: Workspace, currency: str, plan: Plan | None = None, **kwargs: object
    ) -> None:
        if plan is not None:
            kwargs.setdefault("initial", self.initial_from(plan))
        super().__init__(*args, **kwargs)
        self.workspace, self.currency, self.plan = workspace, currency, plan
        example = example_amount(currency)
        for name in ("price", "overage_rate", "extra_deliverable_price"):
            field = self.fields[name]
            field.currency = currency
            field.label = f"{field.label} ({currency})"
            field.widget.attrs["placeholder"] = example
        self.fields["price"].help_text = (
            f"What the client pays each period, in {currency}. Changing a plan never changes a signed "
            "retainer: its terms were copied when it was signed."
        )
        self.fields["model"].initial = Terms.Model.FIXED

    @staticmethod
    def initial_from(plan: Plan) -> dict[str, object]:
        initial = {name: getattr(plan, name) for name in Terms.TERM_FIELDS if name not in {"deliverables"}}
        initial.update(
            name=plan.name,
            description=plan.description,
            price=plan.price_minor,
            overage_rate=plan.overage_rate_minor,
            extra_deliverable_price=plan.extra_deliverable_price_minor,
            deliverables="\n".join(plan.deliverables),
            units_per_period=format_units(plan.units_per_period),
            rollover_cap=None if plan.rollover_cap is None else format_units(plan.rollover_cap),
        )
        return initial

    @property
    def chosen_model(self) -> str:
        """The model the form is showing fields for: the posted one, else the initial one."""
        value = self.data.get(self.add_prefix("model")) if self.is_bound else None
        value = value or self.initial.get("model") or self.fields["model"].initial
        return value if value in Terms.Model.values else Terms.Model.FIXED

    def _has_errors(self, names: tuple[str, ...]) -> bool:
        return self.is_bound and any(name in self.errors for name in names)

    # The template hides (and disables, so they are not posted) the groups the chosen model
    # does not use, except when they hold an error: an error is always shown next to its field.
    @property
    def shows_units(self) -> bool:
        return self.chosen_model != Terms.Model.DELIVERABLES or self._has_errors(self.UNIT_FIELDS)

    @property
    def shows_rollover(self) -> bool:
        return self.chosen_model == Terms.Model.ROLLOVER or self._has_errors(self.ROLLOVER_FIELDS)

    @property
    def shows_deliverables(self) -> bool:
        return self.chosen_model == Terms.Model.DELIVERABLES or self._has_errors(self.DELIVERABLE_FIELDS)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if plan_name_taken(workspace=self.workspace, name=name, exclude=self.plan):
            raise forms.ValidationError(f"There is already a plan called “{name}”.")
        return name

    def clean_deliverables(self) -> list[str]:
        names = [line.strip() for line in self.cleaned_data["deliverables"].splitlines() if line.strip()]
        if len(names) > self.MAX_DELIVERABLES:
            raise forms.ValidationError(f"List at most {self.MAX_DELIVERABLES} deliverables.")
        too_long = [name for name in names if len(name) > 200]
        if too_long:
            raise forms.ValidationError(f"Keep each name under 200 characters: “{too_long[0][:40]}…” is longer.")
        seen = set()
        for name in names:
            if name.lower() in seen:
                raise forms.ValidationError(f"“{name}” is listed twice.")
            seen.add(name.lower())
        return names

    def clean(self) -> dict[str, object]:
        data = super().clean()
        model = data.get("model")
        if model is None:
            return data
        sessions = data.get("unit") == Terms.Unit.SESSIONS
        if model in (Terms.Model.FIXED, Terms.Model.ROLLOVER):
            for name in ("unit", "overage_policy"):
                if not data.get(name) and name not in self.errors:
                    self.add_error(name, "Choose one.")
            units = data.get("units_per_period")
            if units is None and "units_per_period" not in self.errors:
                self.add_error("units_per_period", "Enter the units the client gets each period.")
            elif units is not None and units <= 0:
                self.add_error("units_per_period", "Enter more than zero.")
            elif units is not None and sessions and units != units.to_integral_value():
                self.add_error("units_per_period", "Sessions are counted in whole numbers.")
            if data.get("overage_policy") == Terms.Overage.BILL and not data.get("overage_rate"):
                if "overage_rate" not in self.errors:
                    self.add_error("overage_rate", "Enter the price of one extra unit, or choose another policy.")
        if model == Terms.Model.ROLLOVER:
            cap = data.get("rollover_cap")
            if cap is None and "rollover_cap" not in self.errors:
                self.add_error("rollover_cap", "Rollover plans need a cap: the most units that may roll over.")
            elif cap is not None and cap <= 0:
                self.add_error("rollover_cap", "Enter more than zero (a cap of zero is a fixed plan).")
            elif cap is not None and sessions and cap != cap.to_integral_value():
                self.add_error("rollover_cap", "Sessions are counted in whole numbers.")
            if data.get("rollover_expiry_periods") is None and "rollover_expiry_periods" not in self.errors:
                self.add_error("rollover_expiry_periods", "Say after how many periods rolled units expire.")
        else:
            for name in self.ROLLOVER_FIELDS:
                if data.get(name) is not None:
                    self.add_error(name, "Only rollover plans roll units over: clear this, or choose rollover.")
        if model == Terms.Model.DELIVERABLES:
            if not data.get("deliverables") and "deliverables" not in self.errors:
                self.add_error("deliverables", "List the deliverables of each period, one per line.")
        elif data.get("deliverables"):
            self.add_error(
                "deliverables", "Only deliverables plans list deliverables: clear this, or choose deliverables."
            )
        return data

    def terms(self) -> dict[str, object]:
        """The cleaned terms, with the fields the model does not use at their neutral values."""
        data = self.cleaned_data
        model = data["model"]
        units_based = model != Terms.Model.DELIVERABLES
        return {
            "model": model,
            "unit": data["unit"] if units_based else Terms.Unit.HOURS,
            "units_per_period": data["units_per_period"] if units_based else Decimal("0"),
            "price_minor": data["price"],
            "currency": self.currency,
            "cadence": data["cadence"],
            "billing_timing": data["billing_timing"],
            "overage_policy": data["overage_policy"] if units_based else Terms.Overage.BILL,
            "overage_rate_minor": (data["overage_rate"] or 0) if units_based else 0,
            "rollover_cap": data["rollover_cap"] if model == Terms.Model.ROLLOVER else None,
            "rollover_expiry_periods": data["rollover_expiry_periods"] if model == Terms.Model.ROLLOVER else None,
            "deliverables": data["deliverables"] if not units_based else [],
            "deliverables_carry": data["deliverables_carry"] if not units_based else False,
            "extra_deliverable_price_minor": (data["extra_deliverable_price"] or 0) if not units_based else 0,
            "term_periods": data["term_periods"],
            "auto_renew": data["auto_renew"],
            "renewal_notice_days": data["renewal_notice_days"],
        }


def plan_name_taken(*, workspace: Workspace, name: str, exclude: Plan | None = None) -> bool:
    plans = Plan.objects.for_workspace(workspace).annotate(name_ci=Lower("name")).filter(name_ci=name.strip().lower())
    if exclude is not None:
        plans = plans.exclude(pk=exclude.pk)
    return plans.exists()
