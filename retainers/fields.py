"""Form fields shared by every app: the one money input, and the bounds every amount and date
typed anywhere is held to (so bad input is a field error, never a database or Stripe error)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from babel.numbers import format_decimal, get_decimal_symbol, get_group_symbol
from django import forms

from retainers import money

# The most one amount may be, in minor units: Stripe takes up to eight digits (99,999,999: $999,999.99,
# ¥99,999,999), and an invoice a card cannot pay is a typo here, not a sale. Far inside the bigint
# columns, so a product of it with any quantity a form accepts still fits. Every typed amount
# (prices, rates, payments, refunds, credit notes) and every line and invoice total made from
# them is held to it.
MAX_AMOUNT_MINOR = 99_999_999
# Digits with optional thousands commas (in groups of three) and an optional decimal part.
AMOUNT = re.compile(r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+")


# The dates any form accepts, inclusive: typed years like 0001 or 9999 broke pages once the
# workspace's zone moved them past Python's year 1 or 9999. Dates and times are checked on the day
# as typed (in the workspace's zone).
EARLIEST_DATE = date(1970, 1, 1)
LATEST_DATE = date(2199, 12, 31)
# What the database holds for instants typed by people (CHECK constraints): a day wider than the
# dates above on each side, so any accepted local time fits, and any stored one can be shown in any
# zone (at most 14 hours from UTC) without leaving Python's years.
EARLIEST_INSTANT = datetime(1969, 12, 31, tzinfo=UTC)
LATEST_INSTANT = datetime(2200, 1, 2, tzinfo=UTC)  # exclusive


def date_range_error(value: date | None) -> str | None:
    """Why a typed date (or the day of a typed date and time) is refused, or None."""
    if value is None:
        return None
    day = value.date() if isinstance(value, datetime) else value
    if EARLIEST_DATE <= day <= LATEST_DATE:
        return None
    return f"Pick a date from {EARLIEST_DATE:%-d %B %Y} to {LATEST_DATE:%-d %B %Y}."


def instant_range_error(value: datetime) -> str | None:
    """Why an instant cannot be stored (the CHECK constraints' bounds), or None. Services check
    what did not come through a form with this."""
    if EARLIEST_INSTANT <= value < LATEST_INSTANT:
        return None
    return f"Pick a date from {EARLIEST_DATE:%-d %B %Y} to {LATEST_DATE:%-d %B %Y}."


def validate_date_range(value: date | None) -> None:
    if message := date_range_error(value):
        raise forms.ValidationError(message, code="date_range")


class DateField(forms.DateField):
    """A date typed in a form, within EARLIEST_DATE..LATEST_DATE. Every form's date field is one."""

    default_validators = [validate_date_range]


class DateTimeField(forms.DateTimeField):
    """A date and time typed in the current (workspace's) zone, its day within EARLIEST_DATE..LATEST_DATE."""

    default_validators = [validate_date_range]


def largest_amount(currency: str) -> str:
    """MAX_AMOUNT_MINOR for people: "999,999.99 GBP", "99,999,999 JPY"."""
    return f"{money.from_minor(MAX_AMOUNT_MINOR, currency):,} {currency}"


def amount_error(minor: int, currency: str, *, what: str = "That amount") -> str | None:
    """Why `minor` is too large to bill ("That amount is too large: 999,999.99 GBP at most."), or None."""
    if minor <= MAX_AMOUNT_MINOR:
        return None
    return f"{what} is too large: {largest_amount(currency)} at most, the most one card payment can take."


def example_amount(currency: str, locale: str = "en_US") -> str:
    """1,500.00 as people of `locale` write it in `currency` ("1.500,00" in de_DE, "1,500" for JPY)."""
    places = money.precision(currency)
    return format_decimal(1500, format="#,##0" + ("." + "0" * places if places else ""), locale=locale)


def canonical_amount(text: str, locale: str) -> str:
    """A typed amount (whitespace removed) in the one notation AMOUNT reads: dot for decimals,
    commas between thousands. In a decimal-comma locale the comma is the decimal mark and the dot
    groups thousands ("1.500,50" → "1,500.50"), as quantities already read it; a lone dot not
    followed by exactly three digits is a decimal mark all the same ("1500.50" → "1500.50"), since
    it cannot be a thousands dot."""
    decimal, group = get_decimal_symbol(locale), get_group_symbol(locale)
    if decimal != ",":
        return text if group in {",", ""} or group.isspace() else text.replace(group, ",")
    if "," not in text and text.count(".") == 1 and not re.search(r"\.\d{3}$", text):
        return text
    return text.replace(".", "\0").replace(",", ".").replace("\0", ",")


class MoneyField(forms.Field):
    """An amount typed in the currency's major unit ("1,500.00", "£1,500", "1 500 GBP"),
    cleaned to integer minor units. The one money input of the project.

    More decimals than the currency has are refused rather than rounded: "1.234" pounds is
    more likely a typo than a wish to charge £1.23. Negative amounts are refused; zero only
    with `allow_zero`.
    """

    widget = forms.TextInput

    def __init__(self, *, currency: str = "USD", allow_zero: bool = True, locale: str = "en_US", **kwargs: Any) -> None:
        self.currency = currency
        self.allow_zero = allow_zero
        self.locale = locale  # the workspace's: how its people write decimals (localize_money_fields)
        super().__init__(**kwargs)

    def widget_attrs(self, widget: forms.Widget) -> dict[str, str]:
        return {**super().widget_attrs(widget), "inputmode": "decimal", "maxlength": "30", "autocomplete": "off"}

    def prepare_value(self, value: object) -> object:
        if isinstance(value, int):  # stored minor units given as the initial value
            return f"{money.from_minor(value, self.currency)}".replace(".", get_decimal_symbol(self.locale))
        return value

    def to_python(self, value: object) -> int | None:
        text = str(value).strip() if value is not None else ""
        if not text:
            return None
        if len(text) > 30:
            raise forms.ValidationError("That amount is too long.", code="max_length")
        text = re.sub(r"\s+", "", text)
        decimal = get_decimal_symbol(self.locale)
        trailing = "." if decimal == "." else ".,"
        text = re.sub(rf"^(?:{self.currency}|[^\d.,\-])+|(?:{self.currency}|[^\d{trailing}])+$", "", text, flags=re.I)
        if text.startswith("-"):
            raise forms.ValidationError(
                "Enter zero or more." if self.allow_zero else "Enter an amount above zero.", code="negative"
            )
        example = example_amount(self.currency, self.locale)
        text = canonical_amount(text, self.locale)
        if not AMOUNT.fullmatch(text):
            marks = "a dot for decimals, commas" if decimal == "." else "a comma for decimals, dots or spaces"
            raise forms.ValidationError(
                f"Enter an amount in {self.currency}, like {example} ({marks} only between thousands).",
                code="invalid",
            )
        try:
            amount = Decimal(text.replace(",", ""))
        except InvalidOperation:
            raise forms.ValidationError(
                f"Enter an amount in {self.currency}, like {example}.", code="invalid"
            ) from None
        places = money.precision(self.currency)
        if amount != amount.quantize(Decimal(1).scaleb(-places)):
            if places == 0:
                message = f"{self.currency} has no minor unit: enter a whole amount, like {example}."
            else:
                message = f"{self.currency} has {places} decimal places at most, like {example}."
            raise forms.ValidationError(message, code="decimals")
        if amount == 0 and not self.allow_zero:
            raise forms.ValidationError("Enter an amount above zero.", code="min_value")
        minor = money.to_minor(amount, self.currency)
        if error := amount_error(minor, self.currency):
            raise forms.ValidationError(error, code="max_value")
        return minor


def format_percent(basis_points: int) -> str:
    """2000 → "20", 825 → "8.25"."""
    return str(Decimal(basis_points) / 100)  # Decimal division keeps only the decimals it needs


def parse_percent(value: str) -> int:
    """A percentage typed by a person as basis points: "20" → 2000, "8.25 %" → 825; 0 to 100 with
    2 decimals at most, else a ValidationError saying what to type."""
    text = value.strip().removesuffix("%").strip()
    try:
        percent = Decimal(text)
    except InvalidOperation:
        raise forms.ValidationError("Enter a percentage such as 20 or 8.25.", code="invalid") from None
    if not percent.is_finite() or not 0 <= percent <= 100:
        raise forms.ValidationError("Enter a percentage from 0 to 100.", code="range")
    if percent != percent.quantize(Decimal("0.01")):
        raise forms.ValidationError("Use 2 decimals at most, e.g. 8.25.", code="decimals")
    return int(percent * 100)


def localize_money_fields(form: forms.Form, locale: str) -> None:
    """Read and show the form's amounts as people of `locale` (the workspace's) write them."""
    for field in form.fields.values():
        if isinstance(field, MoneyField):
            field.locale = locale or "en_US"
