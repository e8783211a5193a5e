"""Form fields shared by every app: the one money input."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms

from retainers import money

MAX_MAJOR_UNITS = Decimal("1000000000")  # a billion per period, line or payment is a typo
# Digits with optional thousands commas (in groups of three) and an optional decimal part.
AMOUNT = re.compile(r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+")


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

    def __init__(self, *, currency: str = "USD", allow_zero: bool = True, **kwargs: Any) -> None:
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
