"""Money: integer minor units with an ISO 4217 currency, as Stripe keeps it.

Every conversion between a decimal amount and minor units, every rounding, and every
formatting for people goes through here. No floats.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from babel.numbers import format_currency, get_currency_precision


class MoneyError(ValueError):
    pass


def precision(currency: str) -> int:
    """Decimals of the currency's minor unit: 2 for EUR, 0 for JPY, 3 for KWD."""
    return get_currency_precision(currency.upper())


def to_minor(amount: Decimal | str, currency: str) -> int:
    """A decimal amount in major units to integer minor units, rounded half up once."""
    try:
        value = Decimal(str(amount).replace(",", "").strip())
    except InvalidOperation as exc:
        raise MoneyError("Enter an amount such as 1500 or 1,500.00.") from exc
    if not value.is_finite():
        raise MoneyError("Enter an amount such as 1500 or 1,500.00.")
    return int((value * (10 ** precision(currency))).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


def from_minor(minor: int, currency: str) -> Decimal:
    places = precision(currency)
    return (Decimal(minor) / (10**places)).quantize(Decimal(1).scaleb(-places))


def multiply(rate_minor: int, quantity: Decimal) -> int:
    """Price of `quantity` units at `rate_minor` each, rounded half up to a whole minor unit."""
    return int((Decimal(rate_minor) * quantity).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


def format_money(minor: int, currency: str, locale: str = "en_US") -> str:
    """For people: '£1,500.00', '¥1,500', '1.500,00 €' depending on the locale."""
    return format_currency(from_minor(minor, currency), currency.upper(), locale=locale)
