from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retainers.money import MoneyError, format_money, from_minor, multiply, to_minor


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("1,500.00", "USD", 150000),
        ("1500", "JPY", 1500),
        ("1.2345", "KWD", 1235),
        ("0.005", "EUR", 1),
        ("0.004", "EUR", 0),
    ],
)
def test_to_minor_uses_the_currency_precision_and_rounds_half_up(amount, currency, minor):
    assert to_minor(amount, currency) == minor


@pytest.mark.parametrize("bad", ["", "abc", "1.2.3", "NaN", "Infinity"])
def test_to_minor_refuses_what_is_not_an_amount(bad):
    with pytest.raises(MoneyError):
        to_minor(bad, "USD")


@given(st.integers(min_value=-(10**12), max_value=10**12), st.sampled_from(["USD", "JPY", "KWD", "GBP"]))
def test_minor_units_round_trip_exactly(minor, currency):
    assert to_minor(from_minor(minor, currency), currency) == minor


def test_multiply_rounds_each_line_once():
    assert multiply(15000, D("2.25")) == 33750
    assert multiply(3333, D("0.5")) == 1667


def test_format_follows_locale():
    assert format_money(150000, "GBP", "en_GB") == "£1,500.00"
    assert format_money(1500, "JPY", "en_US") == "¥1,500"
    assert format_money(123450, "EUR", "de_DE") == "1.234,50\xa0€"
