"""Forms of billing: the invoices filter, invoice actions, invoices by hand, billing settings.

Amounts are typed as decimals in the invoice's currency ("1,500.00") and cleaned to
integer minor units with retainers.money; choice fields are scoped to one workspace.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, cast

from babel import Locale
from django import forms
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db.models.functions import Lower

from billing import logos
from billing.models import BillingProfile, Invoice, InvoiceState, Payment
from clients.models import Client
from delivery.forms import PlainSelect
from retainers import money
from retainers.fields import (
    MAX_AMOUNT_MINOR,
    DateField,
    MoneyField,
    format_percent,
    largest_amount,
    localize_money_fields,
    parse_percent,
)
from retainers.models import Workspace

# --- The invoices page -------------------------------------------------------------------


class InvoiceFilterForm(forms.Form):
    """The filters of the invoices page and its CSV export, read from the query string. An invalid
    value (a date like 2026-02-30) is refused, not ignored: a list or an export filtered by less
    than was asked would pass for the one asked for."""

    UNPAID = "unpaid"  # open, part paid or overdue: everything still asking for money
    STATUSES = [("", "All"), (UNPAID, "Unpaid (open, part paid, overdue)"), *InvoiceState.choices]

    status = forms.ChoiceField(label="Status", choices=STATUSES, required=False)
    client = forms.ModelChoiceField(
        label="Client", queryset=Client.objects.none(), required=False, empty_label="All clients"
    )
    issued_from = DateField(label="Issued from", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    issued_to = DateField(label="Issued to", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    q = forms.CharField(label="Search", required=False, max_length=200)

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")  # a row of labelled filters, like the clients list's
        super().__init__(*args, **kwargs)
        clients = cast("forms.ModelChoiceField[Client]", self.fields["client"])
        clients.queryset = Client.objects.for_workspace(workspace).order_by(Lower("name"), "pk")
        # Every client is an option: at 1,000 of them a model instance and a widget template per option
        # took most of the invoices page's time. One narrow query, written by PlainSelect; validation
        # still goes through the queryset.
        options = list(clients.queryset.values_list("pk", "name"))
        clients.widget = PlainSelect(choices=[("", clients.empty_label), *options])
        self.fields["q"].widget.attrs.update(
            {"type": "search", "placeholder": "Number or client", "autocomplete": "off"}
        )

    def values(self) -> dict[str, object]:
        """The filters that are valid. Callers check `errors` first: a bad value (an unknown client,
        a malformed date) is not dropped silently."""
        self.is_valid()
        cleaned = getattr(self, "cleaned_data", {})
        return {name: cleaned.get(name) for name in self.fields if name not in self.errors}


# --- Invoice actions -----------------------------------------------------------------


class PaymentForm(forms.Form):
    """A payment received by hand: a bank transfer or other, in part or in full."""

    METHODS = [(Payment.Method.BANK_TRANSFER, "Bank transfer"), (Payment.Method.OTHER, "Other")]

    method = forms.ChoiceField(label="Method", choices=METHODS, initial=Payment.Method.BANK_TRANSFER)
    note = forms.CharField(
        label="Note", required=False, max_length=255, help_text="E.g. the bank reference. Only your team sees it."
    )

    def __init__(self, *args: Any, invoice: Invoice, locale: str = "en_US", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        today = invoice.workspace.today()
        earliest = invoice.issued_on or today
        self.fields["received_on"] = DateField(
            label="Received on",
            initial=today,
            required=False,  # empty: today, as it was before the field existed
            widget=forms.DateInput(attrs={"type": "date", "min": earliest.isoformat(), "max": today.isoformat()}),
            help_text="The day the money arrived, e.g. the bank statement's date.",
        )
        self.fields["amount"] = MoneyField(
            label=f"Amount ({invoice.currency})",
            currency=invoice.currency,
            allow_zero=False,
            initial=max(invoice.owed_minor, 0),
            help_text="Less than the balance records a partial payment; the invoice stays open.",
        )
        self.order_fields(["amount", "received_on", "method", "note"])
        localize_money_fields(self, locale)


class CreditNoteForm(forms.Form):
    reason = forms.CharField(
        label="Reason", max_length=200, help_text="Printed on the credit note, e.g. “2 hours billed twice”."
    )

    def __init__(
        self, *args: Any, invoice: Invoice, creditable_minor: int, locale: str = "en_US", **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["amount"] = MoneyField(
            label=f"Amount to credit ({invoice.currency}, tax included)",
            currency=invoice.currency,
            allow_zero=False,
            initial=max(creditable_minor, 0),
        )
        self.order_fields(["amount", "reason"])
        localize_money_fields(self, locale)


class RefundForm(forms.Form):
    reason = forms.CharField(
        label="Reason", required=False, max_length=200, help_text="Optional; kept with the refund."
    )

    def __init__(
        self, *args: Any, payment: Payment, refundable_minor: int, locale: str = "en_US", **kwargs: Any
    ) -> None:
        kwargs.setdefault("prefix", f"refund-{payment.pk}")  # one form per payment on the page
        super().__init__(*args, **kwargs)
        self.fields["amount"] = MoneyField(
            label=f"Amount to refund ({payment.currency})",
            currency=payment.currency,
            allow_zero=False,
            initial=refundable_minor,
        )
        self.order_fields(["amount", "reason"])
        localize_money_fields(self, locale)


# --- An invoice by hand ----------------------------------------------------------------


class InvoiceForm(forms.Form):
    client = forms.ModelChoiceField(label="Client", queryset=Client.objects.none(), empty_label="Choose a client")
    memo = forms.CharField(
        label="Memo",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Printed under the lines, e.g. a purchase order number.",
    )

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast("forms.ModelChoiceField[Client]", self.fields["client"]).queryset = (
            Client.objects.for_workspace(workspace).filter(status=Client.Status.ACTIVE).order_by(Lower("name"), "pk")
        )


class LineForm(forms.Form):
    description = forms.CharField(label="Description", max_length=255)
    # Optional, 1 when left empty: an untouched row is then entirely blank, so it is skipped.
    quantity = forms.DecimalField(
        label="Quantity",
        required=False,
        max_digits=10,
        decimal_places=2,
        min_value=Decimal("0.01"),
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "placeholder": "1"}),
    )

    def __init__(self, *args: Any, currency: str, locale: str = "en_US", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.currency = currency
        self.fields["unit_price"] = MoneyField(
            label=f"Unit price ({currency})", currency=currency, allow_zero=True, locale=locale
        )

    def clean_quantity(self) -> Decimal:
        quantity = self.cleaned_data["quantity"]
        return Decimal("1") if quantity is None else quantity

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        assert data is not None  # Form.clean() returns cleaned_data
        quantity, unit_price = data.get("quantity"), data.get("unit_price")
        if isinstance(quantity, Decimal) and isinstance(unit_price, int):
            if money.multiply(unit_price, quantity) > MAX_AMOUNT_MINOR:
                self.add_error(
                    "quantity",
                    f"This line comes to more than {largest_amount(self.currency)}, the most one card payment "
                    "can take: lower the quantity or the price, or split the work over two invoices.",
                )
        return data


class BaseLineFormSet(forms.BaseFormSet):
    default_error_messages = {
        **forms.BaseFormSet.default_error_messages,
        "too_few_forms": "Add at least one line.",
        "too_many_forms": "An invoice has %(num)d lines at most.",
    }

    def lines(self) -> list[tuple[str, Decimal, int]]:
        """(description, quantity, unit price in minor units) of each filled-in row."""
        return [
            (f.cleaned_data["description"].strip(), f.cleaned_data["quantity"], f.cleaned_data["unit_price"])
            for f in self.forms
            if f.cleaned_data
        ]


MAX_LINES = 50
DEFAULT_LINE_ROWS = 5
LineFormSet = forms.formset_factory(
    LineForm,
    formset=BaseLineFormSet,
    extra=DEFAULT_LINE_ROWS,
    min_num=1,
    validate_min=True,
    max_num=MAX_LINES,
    validate_max=True,
    absolute_max=MAX_LINES,
)


# --- Billing settings -----------------------------------------------------------------

# Locales people bill in most; each is a Babel locale, so amounts are written its way.
LOCALES = [
    "en_US", "en_GB", "en_IE", "en_CA", "en_AU", "en_NZ", "en_IN", "en_SG", "en_ZA",
    "de_DE", "de_AT", "de_CH", "fr_FR", "fr_BE", "fr_CA", "fr_CH", "es_ES", "es_MX",
    "it_IT", "nl_NL", "nl_BE", "pt_PT", "pt_BR", "sv_SE", "nb_NO", "da_DK", "fi_FI",
    "pl_PL", "cs_CZ", "ja_JP", "zh_Hans_CN", "ar_AE",
]  # fmt: skip


def locale_choices(currency: str) -> list[tuple[str, str]]:
    """Each locale with how it writes an amount in the workspace's currency."""
    choices = []
    for code in LOCALES:
        name = Locale.parse(code).get_display_name("en_US") or code
        choices.append((code, f"{name} – {money.format_money(123456789, currency, code)}"))
    return choices


class DaysListField(forms.CharField):
    """Comma-separated days, e.g. "3, 10, 30": cleaned to a sorted list of distinct integers, 1–365."""

    MAX_ITEMS = 10

    def prepare_value(self, value: object) -> object:
        if isinstance(value, list):
            return ", ".join(str(day) for day in value)
        return value

    def clean(self, value: object) -> list[int]:
        text = super().clean(value) or ""
        parts = [part.strip() for part in re.split(r"[,\s]+", text) if part.strip()]
        days = set()
        for part in parts:
            if not part.isdigit():
                raise forms.ValidationError(f"“{part}” is not a whole number of days.", code="invalid")
            day = int(part)
            if not 1 <= day <= 365:
                raise forms.ValidationError(f"{day} is out of range: use days from 1 to 365.", code="range")
            days.add(day)
        if len(days) > self.MAX_ITEMS:
            raise forms.ValidationError(f"{self.MAX_ITEMS} days at most.", code="too_many")
        return sorted(days)


class BillingSettingsForm(forms.Form):
    legal_name = forms.CharField(
        label="Legal name", max_length=200, required=False, help_text="On invoices; your workspace name if empty."
    )
    address = forms.CharField(label="Address", required=False, widget=forms.Textarea(attrs={"rows": 3}))
    tax_id = forms.CharField(label="Tax ID", max_length=50, required=False)
    logo = forms.FileField(
        label="Logo",
        required=False,
        widget=forms.ClearableFileInput(attrs={"accept": "image/png,image/jpeg"}),
        help_text=(
            "PNG or JPEG, 500 KB and 4,000 pixels a side at most. Shown at the top of your invoices, "
            "kept at up to 600 × 200 pixels."
        ),
    )
    accent_color = forms.CharField(
        label="Accent colour",
        max_length=7,
        required=False,
        help_text="A colour as #rrggbb, e.g. #0f766e: the buttons and the band on the emails your clients get. "
        "Empty: ours.",
        widget=forms.TextInput(attrs={"placeholder": "#2f5bd3", "autocomplete": "off", "spellcheck": "false"}),
    )
    tax_label = forms.CharField(label="Tax label", max_length=20, initial="Tax", help_text="E.g. VAT, GST, Sales tax.")
    tax_rate = forms.CharField(
        label="Tax rate (%)",
        max_length=10,
        initial="0",
        help_text="Up to 2 decimals, e.g. 20 or 8.25. Applies to invoices issued from now on.",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    payment_terms_days = forms.IntegerField(
        label="Payment terms (days)", min_value=0, max_value=365, help_text="Days from issue to the due date."
    )
    payment_instructions = forms.CharField(
        label="Payment instructions",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Bank details for transfers, printed on open invoices.",
    )
    reminder_offsets = DaysListField(
        label="Overdue reminders (days after the due date)",
        required=False,
        help_text="Comma-separated, e.g. 3, 10, 30. Empty: no reminders.",
    )
    retry_days = DaysListField(
        label="Card retries (days after a failed charge)",
        required=False,
        help_text="Comma-separated, e.g. 1, 3, 7. Empty: no retries.",
    )
    locale = forms.ChoiceField(label="Number format", help_text="How amounts are written on pages and invoices.")
    members_move_money = forms.BooleanField(
        label="Members may move money",
        required=False,
        help_text="Let members (not only owners and admins) void, issue credit notes, write off, refund, "
        "charge a card now and refund or apply a credit balance.",
    )

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = locale_choices(workspace.currency)
        if workspace.locale not in LOCALES:  # a locale set some other way stays choosable
            choices.append((workspace.locale, workspace.locale))
        cast(forms.ChoiceField, self.fields["locale"]).choices = choices

    @classmethod
    def initial_for(cls, profile: BillingProfile, workspace: Workspace) -> dict[str, object]:
        return {
            "legal_name": profile.legal_name,
            "address": profile.address,
            "tax_id": profile.tax_id,
            "logo": profile.logo,
            "tax_label": profile.tax_label,
            "tax_rate": format_percent(profile.tax_rate_bp),
            "payment_terms_days": profile.payment_terms_days,
            "payment_instructions": profile.payment_instructions,
            "reminder_offsets": profile.reminder_offsets,
            "retry_days": profile.retry_days,
            "locale": workspace.locale,
            "members_move_money": profile.members_move_money,
            "accent_color": profile.accent_color,
        }

    def clean_tax_rate(self) -> int:
        """The percentage as basis points: "20" → 2000, "8.25" → 825."""
        return parse_percent(self.cleaned_data["tax_rate"])

    def clean_accent_color(self) -> str:
        """ "#0F766E" or "0f766e" → "#0f766e"; a colour white text stays readable on, or an error."""
        value = self.cleaned_data["accent_color"].strip().lower()
        if not value:
            return ""
        if not value.startswith("#"):
            value = "#" + value
        if not ACCENT_COLOR.fullmatch(value):
            raise forms.ValidationError("Enter a colour as #rrggbb, e.g. #0f766e.", code="invalid")
        if contrast_with_white(value) < 3:
            raise forms.ValidationError(
                "White text on this colour is hard to read: choose a darker one.", code="too_light"
            )
        return value

    def clean_logo(self) -> File | bool | None:
        """A new logo must really be a PNG or JPEG (checked by Pillow, not by its name) of sane size:
        500 KB and 4,000 pixels a side at most, no decompression bomb (billing.logos).

        Returns it downscaled once to what a PDF needs, as logo.png; False to remove the logo, or
        None to keep it.
        """
        logo = self.cleaned_data.get("logo")
        if not isinstance(logo, UploadedFile):
            return logo if logo is False else None
        try:
            return ContentFile(logos.prepare_logo(logo), name="logo.png")
        except logos.LogoError as error:
            raise forms.ValidationError(str(error), code=error.code) from None


ACCENT_COLOR = re.compile(r"#[0-9a-f]{6}")


def contrast_with_white(color: str) -> float:
    """WCAG contrast ratio of white on `color` (#rrggbb): 3 is the floor for large text and buttons."""

    def channel(hex_pair: str) -> float:
        c = int(hex_pair, 16) / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(color[i : i + 2]) for i in (1, 3, 5))
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return 1.05 / (luminance + 0.05)
