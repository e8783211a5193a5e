"""Forms of the clients app: clients, contacts, the CSV upload, and the one terms form (plans use it).

Amounts are stored as integers in the currency's minor unit (DESIGN: money, converted by
retainers.money); people type and read them as decimals ("1,500.00", "¥150,000").
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

from django import forms
from django.db.models.functions import Lower

from clients import services
from clients.models import Client, Contact, Plan, RetainerTerms
from retainers.choices import CURRENCIES
from retainers.fields import MoneyField, example_amount, format_percent, parse_percent
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
    tax_treatment = forms.ChoiceField(
        label="Tax",
        choices=Client.TaxTreatment.choices,
        initial=Client.TaxTreatment.WORKSPACE,
        required=False,  # left out: the workspace's rate
        help_text="How their invoices are taxed. Reverse charge (EU business clients abroad) needs their VAT number "
        "above; the invoice then shows it beside yours (billing settings).",
    )
    tax_rate = forms.CharField(
        label="Their tax rate (%)",
        max_length=10,
        required=False,
        help_text="With “a rate of their own” only, e.g. 8.25.",
    )

    def __init__(self, *args: Any, workspace: Workspace, client: Client | None = None, **kwargs: Any) -> None:
        if client is not None:
            kwargs.setdefault(
                "initial",
                {
                    "name": client.name,
                    "billing_email": client.billing_email,
                    "address": client.address,
                    "tax_id": client.tax_id,
                    "tax_treatment": client.tax_treatment,
                    "tax_rate": "" if client.tax_rate_bp is None else format_percent(client.tax_rate_bp),
                },
            )
        super().__init__(*args, **kwargs)
        self.workspace, self.client = workspace, client

    def clean(self) -> dict[str, Any]:
        """The treatment and what it needs: a rate of their own has a rate, the reverse charge has
        the client's VAT number (the `client_tax_*` constraints hold the same). Cleaned to
        `tax_treatment` and `tax_rate_bp` (None unless a rate of their own)."""
        data = super().clean()
        assert data is not None  # Form.clean() returns cleaned_data
        treatment = data.get("tax_treatment") or Client.TaxTreatment.WORKSPACE
        data["tax_treatment"] = treatment
        rate_text = (data.pop("tax_rate", "") or "").strip()
        data["tax_rate_bp"] = None
        if treatment == Client.TaxTreatment.OWN_RATE:
            if not rate_text:
                self.add_error("tax_rate", "Enter their rate, e.g. 8.25, or choose another treatment.")
            else:
                try:
                    data["tax_rate_bp"] = parse_percent(rate_text)
                except forms.ValidationError as error:
                    self.add_error("tax_rate", error)
        if treatment == Client.TaxTreatment.REVERSE_CHARGE and not (data.get("tax_id") or "").strip():
            if "tax_id" not in self.errors:
                self.add_error(
                    "tax_id", "The reverse charge needs the client's VAT number: it is printed on each invoice."
                )
        return data

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
        *args: Any,
        workspace: Workspace,
        contact: Contact | None = None,
        prefix: str | None = None,
        **kwargs: Any,
    ) -> None:
        if contact is not None:
            kwargs.setdefault("initial", {"name": contact.name, "email": contact.email, "role": contact.role})
        kwargs["prefix"] = prefix
        super().__init__(*args, **kwargs)
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


# --- Terms: the one terms form -----------------------------------------------------------------

MONEY_FIELDS = {
    "price": "price_minor",
    "overage_rate": "overage_rate_minor",
    "extra_deliverable_price": "extra_deliverable_price_minor",
}


def terms_initial(terms: dict[str, Any]) -> dict[str, object]:
    """RetainerTerms values as the form's initial: money in minor units (MoneyField shows them as
    decimals), deliverables one per line, units without trailing zeros."""
    initial = {k: v for k, v in terms.items() if k not in MONEY_FIELDS.values() and k != "deliverables"}
    for name, minor_name in MONEY_FIELDS.items():
        if minor_name in terms:
            initial[name] = terms[minor_name]
    initial["deliverables"] = "\n".join(terms.get("deliverables") or [])
    if terms.get("units_per_period") is not None:
        initial["units_per_period"] = format_units(Decimal(terms["units_per_period"]))
    if terms.get("rollover_cap") is not None:
        initial["rollover_cap"] = format_units(Decimal(terms["rollover_cap"]))
    return initial


class TermsForm(forms.Form):
    """The terms of a retainer as people fill them in, the one form for them: plans (PlanForm),
    signing a retainer and amending it (delivery.forms), renewal proposals (renewals.forms).

    `clean()` holds the invariants the terms tables also refuse in SQL (clients.models.
    terms_constraints): a rollover needs a cap and an expiry, and only a rollover has them;
    deliverables belong to the deliverables model; no price is negative (MoneyField). The
    fields a model does not use are set to neutral values by `terms()`, so what is saved always
    passes the constraints.

    Money is typed in the currency's major unit and cleaned to minor units. With `currency`
    given (a plan in the workspace's currency, an amendment or a proposal in the retainer's), the
    form has no currency field and its money labels name the currency; without it, the person
    chooses one. Subclasses may drop fields (an amendment keeps model, unit, currency, cadence
    and term length: `fixed_terms()`), and name what holds the terms in the errors (`noun`).
    """

    ROLLOVER_FIELDS = ("rollover_cap", "rollover_expiry_periods")
    UNIT_FIELDS = ("unit", "units_per_period", "overage_policy", "overage_rate")
    DELIVERABLE_FIELDS = ("deliverables", "deliverables_carry", "extra_deliverable_price")
    MAX_DELIVERABLES = 50
    noun = "retainers"  # "Only rollover retainers roll units over"

    model = forms.ChoiceField(label="Retainer model", choices=Terms.Model.choices, widget=forms.RadioSelect)
    # Not required at field level: deliverables terms have no units (clean() checks per model).
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
    currency = forms.ChoiceField(label="Currency", choices=CURRENCIES)
    price = MoneyField(label="Price per period", help_text="What the client pays each period, e.g. 1,500.00.")
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

    def __init__(self, *args: Any, workspace: Workspace, currency: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.workspace = workspace
        self.fields["model"].initial = Terms.Model.FIXED
        if currency is None:
            self.fields["currency"].initial = workspace.currency
            chosen = self._chosen_currency()
        else:
            del self.fields["currency"]
            chosen = currency
        self.currency = chosen  # type: ignore[assignment]  # django-stubs: the form's metaclass takes the declared field off the class
        example = example_amount(chosen, workspace.locale)
        for name in MONEY_FIELDS:
            field = cast(MoneyField, self.fields[name])
            field.currency = chosen  # amounts are checked against its minor unit
            field.locale = workspace.locale or "en_US"
            if currency is not None:
                field.label = f"{field.label} ({currency})"
                field.widget.attrs["placeholder"] = example

    def _chosen_currency(self) -> str:
        """The currency the amounts are in: the posted one if valid, else the initial one."""
        valid = {code for code, _ in CURRENCIES}
        posted = self.data.get(self.add_prefix("currency")) if self.is_bound else None
        if posted in valid:
            return str(posted)
        return str(self.initial.get("currency") or self.workspace.currency)

    def fixed_terms(self) -> dict[str, object]:
        """Terms the form does not let people change (an amendment keeps model, unit, currency…)."""
        return {}

    @property
    def chosen_model(self) -> str:
        """The model the form is showing fields for: the fixed one, the posted one, else the initial one."""
        if "model" in self.fixed_terms():
            return str(self.fixed_terms()["model"])
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

    def _require(self, data: dict[str, object], name: str, message: str) -> None:
        """`message` by the field when it is on the form, empty, and not already in error."""
        value = data.get(name)
        if name in self.fields and name not in self.errors and (value is None or value in ("", [])):
            self.add_error(name, message)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        assert data is not None  # Form.clean() returns cleaned_data
        fixed = self.fixed_terms()
        model = fixed.get("model", data.get("model"))
        if model is None:
            return data
        sessions = fixed.get("unit", data.get("unit")) == Terms.Unit.SESSIONS
        noun = self.noun

        if model in (Terms.Model.FIXED, Terms.Model.ROLLOVER):
            self._require(data, "unit", "Choose one.")
            self._require(data, "overage_policy", "Choose one.")
            self._require(data, "units_per_period", "Enter the units the client gets each period.")
            units = data.get("units_per_period")
            if units is not None and "units_per_period" not in self.errors:
                if units <= 0:
                    self.add_error("units_per_period", "Enter more than zero.")
                elif sessions and units != units.to_integral_value():
                    self.add_error("units_per_period", "Sessions are counted in whole numbers.")
            billed = data.get("overage_policy") == Terms.Overage.BILL
            if billed and not data.get("overage_rate") and "overage_rate" in self.fields:
                if "overage_rate" not in self.errors:
                    self.add_error("overage_rate", "Enter the price of one extra unit, or choose another policy.")

        if model == Terms.Model.ROLLOVER:
            self._require(data, "rollover_cap", f"Rollover {noun} need a cap: the most units that may roll over.")
            self._require(data, "rollover_expiry_periods", "Say after how many periods rolled units expire.")
            cap = data.get("rollover_cap")
            if cap is not None and "rollover_cap" not in self.errors:
                if cap <= 0:
                    self.add_error("rollover_cap", f"Enter more than zero (a cap of zero is a fixed {noun[:-1]}).")
                elif sessions and cap != cap.to_integral_value():
                    self.add_error("rollover_cap", "Sessions are counted in whole numbers.")
        else:
            for name in self.ROLLOVER_FIELDS:
                if data.get(name) is not None and name not in self.errors:
                    self.add_error(name, f"Only rollover {noun} roll units over: clear this, or choose rollover.")

        if model == Terms.Model.DELIVERABLES:
            self._require(data, "deliverables", "List the deliverables of each period, one per line.")
        else:
            for name in ("deliverables", "extra_deliverable_price"):
                if data.get(name) and name not in self.errors:
                    self.add_error(
                        name, f"Only deliverables {noun} list deliverables: clear this, or choose deliverables."
                    )
        return data

    def terms(self) -> dict[str, object]:
        """The cleaned terms, keyed as RetainerTerms fields, with the fields the model does not use
        at their neutral values. Only the terms the form has (plus `fixed_terms()`)."""
        data = self.cleaned_data
        terms: dict[str, object] = {name: data[name] for name in Terms.TERM_FIELDS if name in self.fields}
        for name, minor_name in MONEY_FIELDS.items():
            if name in self.fields:
                terms[minor_name] = data.get(name) or 0
        if "currency" not in self.fields:
            terms["currency"] = self.currency
        terms.update(self.fixed_terms())
        model = terms["model"]
        if model == Terms.Model.DELIVERABLES:
            neutral: dict[str, object] = {
                "unit": Terms.Unit.HOURS,
                "units_per_period": Decimal("0"),
                "overage_policy": Terms.Overage.BILL,
                "overage_rate_minor": 0,
            }
        else:
            neutral = {"deliverables": [], "deliverables_carry": False, "extra_deliverable_price_minor": 0}
        if model != Terms.Model.ROLLOVER:
            neutral.update(rollover_cap=None, rollover_expiry_periods=None)
        terms.update({name: value for name, value in neutral.items() if name in terms or name in self.fields})
        return terms


# --- Plans ------------------------------------------------------------------------------


class PlanForm(TermsForm):
    """A plan: a name and the terms, in the workspace's currency (or the plan's own)."""

    noun = "plans"

    name = forms.CharField(label="Plan name", max_length=120)
    description = forms.CharField(
        label="Description",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=2000,
        help_text="For you and your team; clients see the retainer, not the plan.",
    )

    field_order = ["name", "description"]

    def __init__(
        self, *args: object, workspace: Workspace, currency: str, plan: Plan | None = None, **kwargs: object
    ) -> None:
        if plan is not None:
            kwargs.setdefault("initial", self.initial_from(plan))
        super().__init__(*args, workspace=workspace, currency=currency, **kwargs)
        self.plan = plan
        self.fields["price"].help_text = (
            f"What the client pays each period, in {currency}. Changing a plan never changes a signed "
            "retainer: its terms were copied when it was signed."
        )

    @staticmethod
    def initial_from(plan: Plan) -> dict[str, object]:
        return {**terms_initial(plan.terms()), "name": plan.name, "description": plan.description}

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if plan_name_taken(workspace=self.workspace, name=name, exclude=self.plan):
            raise forms.ValidationError(f"There is already a plan called “{name}”.")
        return name


def plan_name_taken(*, workspace: Workspace, name: str, exclude: Plan | None = None) -> bool:
    plans = Plan.objects.for_workspace(workspace).annotate(name_ci=Lower("name")).filter(name_ci=name.strip().lower())
    if exclude is not None:
        plans = plans.exclude(pk=exclude.pk)
    return plans.exists()
