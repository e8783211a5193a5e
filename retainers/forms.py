"""Forms of the core, and the project-wide form markup (errors next to their fields)."""

from __future__ import annotations

import re
import zoneinfo
from decimal import Decimal, InvalidOperation
from functools import cache

from allauth.account.forms import SignupForm as AllauthSignupForm
from django import forms
from django.contrib.auth import password_validation
from django.db import transaction
from django.forms.renderers import TemplatesSetting
from django.http import HttpRequest

from retainers import money, services
from retainers.models import Membership, User

CURRENCIES = [
    ("USD", "USD – US dollar"),
    ("EUR", "EUR – Euro"),
    ("GBP", "GBP – Pound sterling"),
    ("CAD", "CAD – Canadian dollar"),
    ("AUD", "AUD – Australian dollar"),
    ("NZD", "NZD – New Zealand dollar"),
    ("CHF", "CHF – Swiss franc"),
    ("SEK", "SEK – Swedish krona"),
    ("NOK", "NOK – Norwegian krone"),
    ("DKK", "DKK – Danish krone"),
    ("PLN", "PLN – Polish złoty"),
    ("JPY", "JPY – Japanese yen"),
    ("SGD", "SGD – Singapore dollar"),
    ("HKD", "HKD – Hong Kong dollar"),
    ("INR", "INR – Indian rupee"),
    ("ZAR", "ZAR – South African rand"),
    ("BRL", "BRL – Brazilian real"),
    ("MXN", "MXN – Mexican peso"),
    ("AED", "AED – UAE dirham"),
    ("KWD", "KWD – Kuwaiti dinar"),
]


@cache
def timezone_choices() -> list[tuple[str, str]]:
    names = sorted(n for n in zoneinfo.available_timezones() if "/" in n and not n.startswith(("Etc/", "SystemV/")))
    return [("UTC", "UTC"), *((n, n.replace("_", " ")) for n in names)]


MAX_MAJOR_UNITS = Decimal("1000000000")  # a billion per period, line or payment is a typo
# Digits with optional thousands commas (in groups of three) and an optional decimal part.
AMOUNT = re.compile(r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+")


def format_units(quantity: Decimal) -> str:
    """Hours or sessions for reading: whole numbers without decimals (“10”), others with two (“6.50”)."""
    if quantity == quantity.to_integral_value():
        return f"{quantity:.0f}"
    return f"{quantity:.2f}"


def example_amount(currency: str) -> str:
    places = money.precision(currency)
    return "1,500" + ("." + "0" * places if places else "")


class MoneyField(forms.Field):
    """An amount typed in the currency's major unit ("1,500.00", "£1,500", "1 500 GBP"),
    cleaned to integer minor units. The one money input of the project.

    More decimals than the currency has are refused rather than rounded: "1.234" pounds is
    more likely a typo than a wish to charge £1.23. Negative amounts are refused; zero only
    with `allow_zero`.
    """

    widget = forms.TextInput

    def __init__(self, *, currency: str = "USD", allow_zero: bool = True, **kwargs: object) -> None:
        self.currency = currency
        self.allow_zero = allow_zero
        super().__init__(**kwargs)

    def widget_attrs(self, widget: forms.Widget) -> dict[str, str]:
        return {**super().widget_attrs(widget), "inputmode": "decimal", "maxlength": "30", "autocomplete": "off"}

    def prepare_value(self, value: object) -> object:
        if isinstance(value, int):  # stored minor units given as the initial value
            return f"{money.from_minor(value, self.currency)}"
        return value

    def to_python(self, value: object) -> int | None:
        text = str(value).strip() if value is not None else ""
        if not text:
            return None
        if len(text) > 30:
            raise forms.ValidationError("That amount is too long.", code="max_length")
        text = re.sub(r"\s+", "", text)
        text = re.sub(rf"^(?:{self.currency}|[^\d.,\-])+|(?:{self.currency}|[^\d.])+$", "", text, flags=re.I)
        if text.startswith("-"):
            raise forms.ValidationError(
                "Enter zero or more." if self.allow_zero else "Enter an amount above zero.", code="negative"
            )
        example = example_amount(self.currency)
        if not AMOUNT.fullmatch(text):
            raise forms.ValidationError(
                f"Enter an amount in {self.currency}, like {example} "
                "(a dot for decimals, commas only between thousands).",
                code="invalid",
            )
        try:
            amount = Decimal(text.replace(",", ""))
        except InvalidOperation:
            raise forms.ValidationError(
                f"Enter an amount in {self.currency}, like {example}.", code="invalid"
            ) from None
        if amount >= MAX_MAJOR_UNITS:
            raise forms.ValidationError("That amount is too large.", code="max_value")
        places = money.precision(self.currency)
        if amount != amount.quantize(Decimal(1).scaleb(-places)):
            if places == 0:
                message = f"{self.currency} has no minor unit: enter a whole amount, like {example}."
            else:
                message = f"{self.currency} has {places} decimal places at most, like {example}."
            raise forms.ValidationError(message, code="decimals")
        if amount == 0 and not self.allow_zero:
            raise forms.ValidationError("Enter an amount above zero.", code="min_value")
        return money.to_minor(amount, self.currency)


class QueryFilterForm(forms.Form):
    """A list's search, filters and sort from the query string. `values()` never fails: a bad or
    missing value falls back to its entry in DEFAULTS, so a hand-edited URL still shows the list."""

    DEFAULTS: dict[str, str] = {}

    def values(self) -> dict[str, str]:
        self.is_valid()
        values = dict(self.DEFAULTS)
        for name, value in getattr(self, "cleaned_data", {}).items():
            if value:
                values[name] = value.strip() if name == "q" else value
        return values


class FormRenderer(TemplatesSetting):
    """Every form renders each field in a `.field` block with its errors right under the label."""

    form_template_name = "forms/form.html"
    field_template_name = "forms/field.html"


class WorkspaceFieldsMixin(forms.Form):
    workspace_name = forms.CharField(label="Business name", max_length=120, help_text="Shown to your clients.")
    timezone = forms.ChoiceField(
        label="Time zone", choices=timezone_choices, initial="UTC", help_text="Periods and due dates follow it."
    )
    currency = forms.ChoiceField(label="Default currency", choices=CURRENCIES, initial="USD")


class SignupForm(WorkspaceFieldsMixin, AllauthSignupForm):
    """Sign-up creates the user and their first workspace, together or not at all."""

    name = forms.CharField(label="Your name", max_length=150)

    field_order = ["name", "email", "password1", "password2", "workspace_name", "timezone", "currency"]

    def save(self, request: HttpRequest) -> User:
        with transaction.atomic():
            user = super().save(request)
            user.name = self.cleaned_data["name"].strip()
            user.save(update_fields=["name"])
            services.create_workspace(
                owner=user,
                name=self.cleaned_data["workspace_name"],
                timezone_name=self.cleaned_data["timezone"],
                currency=self.cleaned_data["currency"],
            )
        return user


class WorkspaceForm(WorkspaceFieldsMixin):
    pass


class InviteForm(forms.Form):
    email = forms.EmailField(label="Email address")
    role = forms.ChoiceField(label="Role", choices=Membership.Role.choices, initial=Membership.Role.MEMBER)

    def __init__(self, *args: object, roles: list[str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = [c for c in Membership.Role.choices if c[0] in roles]


class InvitationSignupForm(forms.Form):
    """The account of someone joining by invitation: their email is the invited one."""

    name = forms.CharField(label="Your name", max_length=150)
    password1 = forms.CharField(label="Password", widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    password2 = forms.CharField(
        label="Password (again)", widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def __init__(self, *args: object, email: str, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.email = email

    def clean_password1(self) -> str:
        password = self.cleaned_data["password1"]
        password_validation.validate_password(password, User(email=self.email, name=self.data.get("name", "")))
        return password

    def clean(self) -> dict[str, object]:
        data = super().clean()
        if data.get("password1") and data.get("password2") and data["password1"] != data["password2"]:
            self.add_error("password2", "The two passwords differ.")
        return data


class RoleForm(forms.Form):
    role = forms.ChoiceField(label="Role", choices=Membership.Role.choices)
