"""Money fields read the workspace locale's decimal comma, as quantity fields already do."""

import pytest
from django import forms
from hypothesis import given
from hypothesis import strategies as st

from retainers.fields import MoneyField, localize_money_fields
from retainers.money import from_minor


@pytest.mark.parametrize(
    ("locale", "typed", "minor"),
    [
        ("de_DE", "1.500,50", 150050),
        ("de_DE", "1500,5", 150050),
        ("de_DE", "12,34 €", 1234),
        ("de_DE", "EUR 0,99", 99),
        ("de_DE", "1.500", 150000),  # a dot before three digits groups thousands
        ("de_DE", "1500.50", 150050),  # a lone dot before two digits can only be the decimal mark
        ("fr_FR", "1 500,50", 150050),
        ("fr_FR", "1\u202f500,50", 150050),
        ("nl_NL", "123.456,78", 12345678),
        ("en_GB", "1,500.50", 150050),
        ("en_GB", "1500", 150000),
    ],
)
def test_amounts_are_read_as_the_locale_writes_them(locale, typed, minor):
    assert MoneyField(currency="EUR", locale=locale).clean(typed) == minor


@pytest.mark.parametrize(
    ("locale", "typed", "error"),
    [
        ("de_DE", "1,500.50", "like 1.500,00 (a comma for decimals"),  # English notation in German: ambiguous
        ("de_DE", "1,505", "2 decimal places at most, like 1.500,00"),
        ("en_GB", "1500,5", "like 1,500.00 (a dot for decimals"),  # the comma stays a thousands mark in English
    ],
)
def test_what_the_locale_cannot_mean_is_a_field_error_with_its_own_example(locale, typed, error):
    with pytest.raises(forms.ValidationError) as caught:
        MoneyField(currency="EUR", locale=locale).clean(typed)
    assert error in caught.value.messages[0]


def test_the_initial_amount_is_shown_with_the_locale_decimal_mark():
    assert MoneyField(currency="EUR", locale="de_DE").prepare_value(150050) == "1500,50"
    assert MoneyField(currency="EUR").prepare_value(150050) == "1500.50"


@given(st.integers(min_value=0, max_value=99_999_999), st.sampled_from(["de_DE", "fr_FR", "en_US", "pt_BR"]))
def test_what_a_field_shows_it_reads_back(minor, locale):
    field = MoneyField(currency="EUR", locale=locale)
    assert field.clean(field.prepare_value(minor)) == minor
    assert from_minor(minor, "EUR") >= 0


def test_localize_money_fields_sets_every_money_field_of_a_form():
    class Form(forms.Form):
        price = MoneyField(currency="EUR")
        name = forms.CharField()

    form = Form({"price": "2,5", "name": "x"})
    localize_money_fields(form, "de_DE")
    assert form.is_valid() and form.cleaned_data["price"] == 250
