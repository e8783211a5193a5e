"""The quantity people type, and the forms of delivery: pure parsing first, then forms on the database."""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP
from decimal import Decimal as D
from fractions import Fraction

import pytest
from django.core.exceptions import ValidationError
from hypothesis import example, given, settings
from hypothesis import strategies as st

from clients.models import Retainer
from delivery.forms import (
    AdjustForm,
    AmendForm,
    QuantityField,
    QuickAddForm,
    RetainerCreateForm,
    format_quantity,
    parse_quantity,
)
from tests.factories import ClientFactory, make_retainer


def hours_of(minutes: int | Fraction) -> D:
    """Exact minutes as hours, rounded half-up to 0.01: the reference the parser must match."""
    exact = Fraction(minutes) / 60
    return (D(exact.numerator) / D(exact.denominator)).quantize(D("0.01"), rounding=ROUND_HALF_UP)


# --- parse_quantity: the notations ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "hours"),
    [
        ("1.5", "1.50"),
        ("1,5", "1.50"),
        ("1:30", "1.50"),
        ("0:45", "0.75"),
        ("90m", "1.50"),
        ("90 min", "1.50"),
        ("90 minutes", "1.50"),
        ("2h", "2.00"),
        ("2 hours", "2.00"),
        ("1.5h", "1.50"),
        ("1h30", "1.50"),
        ("1h 30m", "1.50"),
        ("1 h 30 min", "1.50"),
        ("1H30M", "1.50"),
        ("45m", "0.75"),
        ("  3  ", "3.00"),
        (".5", "0.50"),
        ("+2", "2.00"),
        ("1:20", "1.33"),  # 1.3333… rounds down
        ("10m", "0.17"),  # 0.1666… rounds up
        ("1m", "0.02"),
        ("1.005", "1.01"),  # an exact half rounds up, not to even
        ("1.004", "1.00"),
        ("9999.99", "9999.99"),
    ],
)
def test_hours_are_parsed_from_every_notation(text, hours):
    assert parse_quantity(text) == D(hours)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Enter a quantity."),
        ("   ", "Enter a quantity."),
        ("abc", "Enter hours like 1.5, 1:30, 90m or 1h30."),
        ("1.5.5", "Enter hours like"),
        ("1:2:3", "Enter hours like"),
        ("h", "Enter hours like"),
        ("1e3", "Enter hours like"),
        ("NaN", "Enter hours like"),
        ("Infinity", "Enter hours like"),
        ("1 1", "Enter hours like"),
        ("-1", "Enter a positive quantity."),
        ("−1:30", "Enter a positive quantity."),
        ("0", "Enter more than zero."),
        ("0:00", "Enter more than zero."),
        ("0m", "Enter more than zero."),
        ("0.001", "rounds to zero"),
        ("0.2m", "rounds to zero"),
        ("1:75", "did you mean 2:15?"),
        ("1h90", "did you mean 2:30?"),
        ("10000", "too large"),
        ("600000m", "too large"),
        ("9" * 30, "too large"),
        ("9" * 50, "too long"),
    ],
)
def test_bad_hours_are_refused_with_a_clear_message(text, message):
    with pytest.raises(ValidationError) as error:
        parse_quantity(text)
    assert message in error.value.messages[0]


@pytest.mark.parametrize(("text", "sessions"), [("1", "1"), ("2", "2"), (" 12 ", "12"), ("+3", "3")])
def test_sessions_are_plain_whole_numbers(text, sessions):
    assert parse_quantity(text, unit="sessions") == D(sessions)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1.5", "whole numbers"),
        ("1,5", "whole numbers"),
        ("2.0", "whole numbers"),
        ("1h", "whole number of sessions"),
        ("1:30", "whole number of sessions"),
        ("two", "whole number of sessions"),
        ("0", "more than zero"),
        ("-1", "positive"),
        ("10000", "too large"),
    ],
)
def test_bad_sessions_are_refused(text, message):
    with pytest.raises(ValidationError) as error:
        parse_quantity(text, unit="sessions")
    assert message in error.value.messages[0]


def test_signed_quantities_take_units_away_but_never_zero():
    assert parse_quantity("-1:30", signed=True) == D("-1.50")
    assert parse_quantity("−2", signed=True) == D("-2.00")
    assert parse_quantity("-2", unit="sessions", signed=True) == D("-2")
    with pytest.raises(ValidationError, match="more than zero"):
        parse_quantity("-0", signed=True)


# --- parse_quantity: properties --------------------------------------------------------------

MINUTES = st.integers(min_value=1, max_value=599_999)


@given(MINUTES)
@example(1)
@example(59)
@example(60)
@example(599_999)
def test_minutes_round_trip_through_every_notation(minutes):
    expected = hours_of(minutes)
    h, m = divmod(minutes, 60)
    assert parse_quantity(f"{minutes}m") == expected
    assert parse_quantity(f"{minutes} min") == expected
    assert parse_quantity(f"{h}:{m:02d}") == expected
    if h:
        assert parse_quantity(f"{h}h{m}" if m else f"{h}h") == expected
        assert parse_quantity(f"{h}h {m}m" if m else f"{h} hours") == expected


CENTS = st.integers(min_value=1, max_value=999_999).map(lambda c: D(c) / 100)


@given(CENTS)
def test_decimal_hours_round_trip_with_dot_comma_and_format(hours):
    assert parse_quantity(f"{hours}") == hours
    assert parse_quantity(f"{hours}".replace(".", ",")) == hours
    assert parse_quantity(f"{hours}h") == hours
    assert parse_quantity(format_quantity(hours, "hours")) == hours


@given(st.integers(min_value=1, max_value=9999))
def test_sessions_round_trip(count):
    assert parse_quantity(str(count), unit="sessions") == count
    assert parse_quantity(format_quantity(D(count), "sessions"), unit="sessions") == count


@given(st.decimals(min_value=D("0.0001"), max_value=D("9999.994"), places=4))
def test_typed_decimals_round_half_up_to_the_cent(value):
    expected = value.quantize(D("0.01"), rounding=ROUND_HALF_UP)
    if expected == 0:
        with pytest.raises(ValidationError):
            parse_quantity(str(value))
    else:
        assert parse_quantity(str(value)) == expected


@settings(max_examples=300)
@given(st.text(max_size=60))
@example("1:")
@example(":30")
@example("h30")
@example("1h30h")
@example("٣")  # a non-ASCII digit
@example("1\x00")
def test_anything_typed_either_parses_to_a_sane_quantity_or_is_a_validation_error(text):
    for unit in ("hours", "sessions"):
        try:
            value = parse_quantity(text, unit=unit)
        except ValidationError as error:
            assert error.messages and all(error.messages)
        else:
            assert D("0.01") <= value < D("10000")
            assert value == value.quantize(D("0.01"))
            if unit == "sessions":
                assert value == value.to_integral_value()


# --- The field -----------------------------------------------------------------------------


def test_quantity_field_cleans_to_decimal_and_requires_a_value():
    field = QuantityField()
    assert field.clean("1h30") == D("1.50")
    with pytest.raises(ValidationError, match="required"):
        field.clean("")
    assert QuantityField(required=False).clean("") is None
    assert QuantityField(unit="sessions").clean("3") == D("3")


# --- Forms ----------------------------------------------------------------------------------

pytestmark_db = pytest.mark.django_db


def quick_add(retainer, **data):
    values = {"retainer": retainer.pk, "quantity": "1", "description": "Call", "delivered_on": "2026-01-05"}
    values.update(data)
    return QuickAddForm(
        values, retainers=Retainer.objects.filter(pk=retainer.pk), retainer=retainer, today=date(2026, 1, 5)
    )


@pytestmark_db
def test_quick_add_needs_confirm_above_24_hours(workspace):
    retainer = make_retainer(workspace=workspace)
    form = quick_add(retainer, quantity="25")
    assert not form.is_valid()
    assert form.needs_confirm and form.show_confirm
    assert "More than 24 hours in one entry" in form.errors["quantity"][0]
    assert quick_add(retainer, quantity="25", confirm="on").is_valid()
    assert quick_add(retainer, quantity="24").is_valid()


@pytestmark_db
def test_quick_add_checks_sessions_once_the_retainer_is_chosen(workspace):
    retainer = make_retainer(workspace=workspace, unit="sessions", units_per_period=D("4"))
    form = QuickAddForm(
        {"retainer": retainer.pk, "quantity": "1:30", "description": "x", "delivered_on": "2026-01-05"},
        retainers=Retainer.objects.filter(pk=retainer.pk),
        today=date(2026, 1, 5),
    )
    assert not form.is_valid()
    assert "whole number of sessions" in form.errors["quantity"][0]
    form = QuickAddForm(
        {"retainer": retainer.pk, "quantity": "11", "description": "x", "delivered_on": "2026-01-05"},
        retainers=Retainer.objects.filter(pk=retainer.pk),
        today=date(2026, 1, 5),
    )
    assert not form.is_valid() and "More than 10 sessions" in form.errors["quantity"][0]


@pytestmark_db
def test_quick_add_refuses_bad_dates_and_a_retainer_outside_its_choices(workspace, other_workspace):
    retainer = make_retainer(workspace=workspace)
    foreign = make_retainer(workspace=other_workspace)
    form = quick_add(retainer, delivered_on="2026-02-30")
    assert not form.is_valid() and "delivered_on" in form.errors
    form = QuickAddForm(
        {"retainer": foreign.pk, "quantity": "1", "description": "x", "delivered_on": "2026-01-05"},
        retainers=Retainer.objects.for_workspace(workspace),
        today=date(2026, 1, 5),
    )
    assert not form.is_valid() and "retainer" in form.errors


@pytestmark_db
def test_focus_goes_to_the_first_field_with_an_error(workspace):
    retainer = make_retainer(workspace=workspace)
    form = quick_add(retainer, quantity="1", description="")
    form.set_focus("quantity")
    assert form.fields["description"].widget.attrs.get("autofocus")
    assert not form.fields["quantity"].widget.attrs.get("autofocus")


def create_data(client, **data):
    values = {
        "client": client.pk,
        "name": "Advisory",
        "starts_on": "2026-01-01",
        "model": "fixed",
        "unit": "hours",
        "units_per_period": "10",
        "overage_policy": "bill",
        "overage_rate": "150",
        "currency": "GBP",
        "price": "2,000.50",
        "cadence": "monthly",
        "billing_timing": "advance",
        "term_periods": "12",
        "renewal_notice_days": "30",
    }
    values.update(data)
    return values


@pytestmark_db
@pytest.mark.parametrize(
    ("currency", "price", "minor"), [("GBP", "2000.50", 200050), ("JPY", "150000", 150000), ("KWD", "1.234", 1234)]
)
def test_money_is_typed_in_major_units_and_stored_in_the_currency_minor_unit(workspace, currency, price, minor):
    client = ClientFactory(workspace=workspace)
    form = RetainerCreateForm(create_data(client, currency=currency, price=price), workspace=workspace)
    assert form.is_valid(), form.errors
    assert form.terms()["price_minor"] == minor and form.terms()["currency"] == currency


@pytestmark_db
@pytest.mark.parametrize(("currency", "price"), [("JPY", "1500.5"), ("GBP", "1.234"), ("KWD", "1.2345")])
def test_money_with_more_decimals_than_the_currency_has_is_refused(workspace, currency, price):
    client = ClientFactory(workspace=workspace)
    form = RetainerCreateForm(create_data(client, currency=currency, price=price), workspace=workspace)
    assert not form.is_valid() and "price" in form.errors


@pytestmark_db
def test_rollover_fields_are_required_only_for_rollover(workspace):
    client = ClientFactory(workspace=workspace)
    form = RetainerCreateForm(create_data(client, model="rollover"), workspace=workspace)
    assert not form.is_valid()
    assert set(form.errors) == {"rollover_cap", "rollover_expiry_periods"}
    form = RetainerCreateForm(
        create_data(client, model="rollover", rollover_cap="5", rollover_expiry_periods="2"), workspace=workspace
    )
    assert form.is_valid(), form.errors
    assert (form.terms()["rollover_cap"], form.terms()["rollover_expiry_periods"]) == (D("5"), 2)
    # Only a rollover has a cap: a stray one is an error by its field (the page hides the rollover
    # group for other models, so only a hand-made post or a page without JavaScript sends one).
    form = RetainerCreateForm(create_data(client, rollover_cap="5"), workspace=workspace)
    assert not form.is_valid() and set(form.errors) == {"rollover_cap"}
    assert "Only rollover retainers roll units over" in form.errors["rollover_cap"][0]


@pytestmark_db
def test_deliverables_are_one_per_line_and_required_for_deliverables_retainers(workspace):
    client = ClientFactory(workspace=workspace)
    form = RetainerCreateForm(create_data(client, model="deliverables", units_per_period=""), workspace=workspace)
    assert not form.is_valid() and "deliverables" in form.errors
    form = RetainerCreateForm(
        create_data(client, model="deliverables", units_per_period="", deliverables="Report\n\n  Review  \n"),
        workspace=workspace,
    )
    assert form.is_valid(), form.errors
    assert form.terms()["deliverables"] == ["Report", "Review"]
    assert form.terms()["units_per_period"] == 0


@pytestmark_db
def test_create_form_names_the_retainer_after_its_plan_and_bounds_the_start(workspace, other_workspace):
    client = ClientFactory(workspace=workspace)
    form = RetainerCreateForm(create_data(client, name=""), workspace=workspace)
    assert not form.is_valid() and "name" in form.errors
    form = RetainerCreateForm(create_data(client, starts_on="2090-01-01"), workspace=workspace)
    assert not form.is_valid() and "starts_on" in form.errors
    foreign = ClientFactory(workspace=other_workspace)
    form = RetainerCreateForm(create_data(foreign), workspace=workspace)
    assert not form.is_valid() and "client" in form.errors


@pytestmark_db
def test_amend_form_keeps_model_unit_currency_and_cadence(workspace):
    retainer = make_retainer(workspace=workspace, model="fixed")
    form = AmendForm(retainer=retainer, workspace=workspace)
    assert {"model", "unit", "currency", "cadence", "term_periods", "rollover_cap"}.isdisjoint(form.fields)
    data = {
        "units_per_period": "20",
        "price": "2500",
        "billing_timing": "advance",
        "overage_policy": "bill",
        "overage_rate": "150",
        "renewal_notice_days": "30",
        "reason": "More hours",
    }
    form = AmendForm(data, retainer=retainer, workspace=workspace)
    assert form.is_valid(), form.errors
    terms = form.terms()
    assert terms["units_per_period"] == D("20") and terms["price_minor"] == 250000
    assert "model" not in terms and "currency" not in terms


@pytestmark_db
def test_adjust_form_takes_signed_quantities_and_needs_a_reason(workspace):
    retainer = make_retainer(workspace=workspace)
    form = AdjustForm({"quantity": "-1:30", "reason": "Correction"}, retainer=retainer)
    assert form.is_valid() and form.cleaned_data["quantity"] == D("-1.50")
    form = AdjustForm({"quantity": "2", "reason": "   "}, retainer=retainer)
    assert not form.is_valid() and "reason" in form.errors
