"""Plans: money typed as decimals and stored in minor units, fields required per retainer model."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal as D

import pytest
from django import forms

from clients.models import Plan
from clients.terms import describe_terms
from delivery.services import create_retainer
from retainers.fields import MoneyField
from tests import factories
from tests.clients.helpers import HTMX, make_plan, url

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("currency", "typed", "minor"),
    [
        ("GBP", "1,500.00", 150000),
        ("GBP", "1500", 150000),
        ("GBP", "£1,500.5", 150050),
        ("GBP", " 1 500.00 GBP ", 150000),
        ("GBP", "0", 0),
        ("GBP", ".5", 50),
        ("USD", "$999,999.99", 99_999_999),  # the most Stripe charges in one payment
        ("JPY", "¥99,999,999", 99_999_999),
        ("JPY", "150,000", 150000),
        ("JPY", "¥150000", 150000),
        ("KWD", "1.250", 1250),
        ("KWD", "1,000.005", 1000005),
    ],
)
def test_money_field_cleans_to_minor_units_of_the_currency(currency, typed, minor):
    assert MoneyField(currency=currency).clean(typed) == minor


@pytest.mark.parametrize(
    ("currency", "typed", "message"),
    [
        ("GBP", "-5", "zero or more"),
        ("GBP", "1.234", "2 decimal places at most"),
        ("JPY", "1.5", "JPY has no minor unit"),
        ("KWD", "1.2345", "3 decimal places at most"),
        ("GBP", "1500,50", "commas only between thousands"),
        ("GBP", "1,50", "commas only between thousands"),
        ("GBP", "abc", "Enter an amount in GBP"),
        ("GBP", "1.2.3", "Enter an amount in GBP"),
        ("GBP", "99999999999", "too large"),
        ("USD", "$1,000,000.00", "999,999.99 USD at most"),  # once accepted: Stripe refuses more than 8 digits
        ("USD", "$12,345,678.90", "too large"),
        ("JPY", "100,000,000", "99,999,999 JPY at most"),
        ("KWD", "100,000.000", "99,999.999 KWD at most"),
    ],
)
def test_money_field_refuses_what_it_cannot_store_exactly(currency, typed, message):
    with pytest.raises(forms.ValidationError, match=message):
        MoneyField(currency=currency).clean(typed)


def plan_data(**overrides: object) -> dict[str, object]:
    data = {
        "name": "Standard",
        "description": "",
        "model": "fixed",
        "unit": "hours",
        "units_per_period": "10",
        "overage_policy": "bill",
        "overage_rate": "150",
        "price": "1,500.00",
        "cadence": "monthly",
        "billing_timing": "advance",
        "term_periods": "12",
        "renewal_notice_days": "30",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def test_create_a_fixed_plan(workspace, owner_client):
    response = owner_client.post(url(workspace, "plan_create"), plan_data(auto_renew="on"))
    assert response.url == url(workspace, "plan_list")
    plan = Plan.objects.get(workspace=workspace)
    assert (plan.model, plan.units_per_period, plan.price_minor, plan.overage_rate_minor, plan.currency) == (
        "fixed",
        D("10"),
        150000,
        15000,
        "GBP",
    )
    assert plan.auto_renew and plan.rollover_cap is None and plan.deliverables == []


def test_create_a_rollover_plan(workspace, owner_client):
    owner_client.post(
        url(workspace, "plan_create"),
        plan_data(model="rollover", units_per_period="7.5", rollover_cap="5", rollover_expiry_periods="2"),
    )
    plan = Plan.objects.get(workspace=workspace)
    assert (plan.model, plan.units_per_period, plan.rollover_cap, plan.rollover_expiry_periods) == (
        "rollover",
        D("7.5"),
        D("5"),
        2,
    )


def test_create_a_deliverables_plan_from_lines(workspace, owner_client):
    owner_client.post(
        url(workspace, "plan_create"),
        # A deliverables form posts no unit fields: their fieldset is disabled.
        plan_data(
            model="deliverables",
            unit=None,
            units_per_period=None,
            overage_policy=None,
            overage_rate=None,
            deliverables="Monthly report\n\n  Board pack  \r\nStrategy call\n",
            extra_deliverable_price="400",
            deliverables_carry="on",
        ),
    )
    plan = Plan.objects.get(workspace=workspace)
    assert plan.deliverables == ["Monthly report", "Board pack", "Strategy call"]
    assert (plan.units_per_period, plan.extra_deliverable_price_minor, plan.deliverables_carry) == (D("0"), 40000, True)


def test_amounts_follow_the_workspace_currency(owner_client, alice):
    yen = factories.WorkspaceFactory(currency="JPY")
    factories.MembershipFactory(workspace=yen, user=alice, role="owner")
    owner_client.post(url(yen, "plan_create"), plan_data(price="150,000", overage_rate="5,000"))
    plan = Plan.objects.get(workspace=yen)
    assert (plan.currency, plan.price_minor, plan.overage_rate_minor) == ("JPY", 150000, 5000)
    response = owner_client.post(url(yen, "plan_create"), plan_data(name="Other", price="1.50"))
    assert "JPY has no minor unit" in response.context["form"].errors["price"][0]


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"model": "rollover"}, "rollover_cap", "Rollover plans need a cap"),
        ({"model": "rollover"}, "rollover_expiry_periods", "after how many periods"),
        ({"model": "rollover", "rollover_cap": "0", "rollover_expiry_periods": "2"}, "rollover_cap", "more than zero"),
        ({"rollover_cap": "5"}, "rollover_cap", "Only rollover plans roll units over"),
        ({"rollover_expiry_periods": "2"}, "rollover_expiry_periods", "Only rollover plans"),
        ({"model": "deliverables"}, "deliverables", "List the deliverables"),
        ({"deliverables": "Report"}, "deliverables", "Only deliverables plans"),
        ({"model": "deliverables", "deliverables": "Report\nreport"}, "deliverables", "listed twice"),
        ({"units_per_period": ""}, "units_per_period", "Enter the units"),
        ({"units_per_period": "-1"}, "units_per_period", "greater than or equal to 0"),
        ({"units_per_period": "0"}, "units_per_period", "more than zero"),
        ({"units_per_period": "1.255"}, "units_per_period", "2 decimal places"),
        ({"unit": "sessions", "units_per_period": "2.5"}, "units_per_period", "whole numbers"),
        ({"price": "-1"}, "price", "zero or more"),
        ({"price": ""}, "price", "required"),
        ({"overage_rate": ""}, "overage_rate", "price of one extra unit"),
        ({"overage_rate": "-3"}, "overage_rate", "zero or more"),
        ({"term_periods": "0"}, "term_periods", "greater than or equal to 1"),
        ({"renewal_notice_days": "-1"}, "renewal_notice_days", "greater than or equal to 0"),
        ({"model": ""}, "model", "required"),
    ],
)
def test_invalid_plan_shows_the_error_by_its_field_and_writes_nothing(
    workspace, owner_client, overrides, field, message
):
    response = owner_client.post(url(workspace, "plan_create"), plan_data(**overrides))
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors, errors
    assert message in " ".join(errors[field])
    assert f'id="id_{field}_error"' in response.content.decode()  # rendered, even in a group the model hides
    assert not Plan.objects.exists()


def test_plan_names_are_unique_ignoring_case(workspace, other_workspace, owner_client):
    make_plan(workspace, name="Standard")
    make_plan(other_workspace, name="Premium")
    response = owner_client.post(url(workspace, "plan_create"), plan_data(name="STANDARD"))
    assert "There is already a plan called “STANDARD”." in response.context["form"].errors["name"]
    assert owner_client.post(url(workspace, "plan_create"), plan_data(name="Premium")).status_code == 302


def test_edit_shows_stored_amounts_as_decimals_and_never_touches_signed_retainers(workspace, owner_client):
    plan = make_plan(workspace, price_minor=150000)
    client = factories.ClientFactory(workspace=workspace)
    retainer = create_retainer(client=client, name="Advisory", starts_on=date(2026, 1, 1), plan=plan)
    edit_url = url(workspace, "plan_edit", plan_id=plan.pk)
    page = owner_client.get(edit_url)
    html = page.content.decode()
    assert 'value="1500.00"' in html and 'value="150.00"' in html and "never changes a signed" in html
    response = owner_client.post(
        edit_url,
        plan_data(
            model="rollover", price="2,000", units_per_period="12", rollover_cap="6", rollover_expiry_periods="3"
        ),
    )
    assert response.status_code == 302
    plan.refresh_from_db()
    retainer.refresh_from_db()
    assert (plan.price_minor, plan.units_per_period, plan.rollover_cap) == (200000, D("12"), D("6"))
    assert (retainer.price_minor, retainer.units_per_period, retainer.rollover_cap) == (150000, D("10"), D("5"))


def group(html: str, legend: str) -> str:
    """Whether the form's fieldset with this legend is shown or hidden (and disabled)."""
    found = re.search(rf"<fieldset( hidden disabled)?>\s*<legend>{legend}</legend>", html)
    assert found, f"no fieldset {legend!r}"
    return "hidden" if found.group(1) else "shown"


def test_switching_the_model_rerenders_the_groups_without_saving(workspace, owner_client):
    data = plan_data(model="rollover", refresh="1")
    page = owner_client.post(url(workspace, "plan_create"), data)
    html = page.content.decode()
    assert page.status_code == 200 and "has-error" not in html
    assert group(html, "Rollover") == "shown"
    assert group(html, "Deliverables") == "hidden"
    fragment = owner_client.post(url(workspace, "plan_create"), plan_data(model="deliverables", refresh="1"), **HTMX)
    html = fragment.content.decode()
    assert html.lstrip().startswith('<div id="plan-model-fields"') and "<html" not in html
    assert group(html, "Deliverables") == "shown"
    assert group(html, "Units") == "hidden"
    assert 'value="150"' in html  # what was typed survives the switch
    assert not Plan.objects.exists()


def test_plan_list_summarises_the_terms(workspace, owner_client):
    make_plan(workspace, name="Rollover 10")
    make_plan(
        workspace,
        name="Sessions",
        model="fixed",
        unit="sessions",
        units_per_period=D("4"),
        cadence="quarterly",
        rollover_cap=None,
        rollover_expiry_periods=None,
        price_minor=90000,
    )
    make_plan(
        workspace,
        name="Reports",
        model="deliverables",
        units_per_period=D("0"),
        rollover_cap=None,
        rollover_expiry_periods=None,
        deliverables=["Report", "Call"],
    )
    html = owner_client.get(url(workspace, "plan_list")).content.decode()
    assert "10 hours / month · rollover, cap 5, expires after 2 months · £1,500.00" in html
    assert "4 sessions / quarter · unused sessions lapse · £900.00" in html
    assert "2 deliverables / month · £1,500.00" in html


def test_describe_terms_in_other_currencies():
    assert describe_terms(Plan(units_per_period=D("7.5"), price_minor=150000, currency="JPY")) == (
        "7.50 hours / month · unused hours lapse · ¥150,000"
    )
    assert describe_terms(Plan(units_per_period=D("1"), price_minor=1250, currency="KWD", cadence="yearly")) == (
        "1 hour / year · unused hours lapse · KWD1.250"
    )


def test_archive_and_restore_a_plan(workspace, owner_client):
    plan = make_plan(workspace, name="Old")
    owner_client.post(url(workspace, "plan_archive", plan_id=plan.pk))
    plan.refresh_from_db()
    assert plan.archived
    edit_link = url(workspace, "plan_edit", plan_id=plan.pk)
    assert edit_link not in owner_client.get(url(workspace, "plan_list")).content.decode()
    assert edit_link in owner_client.get(url(workspace, "plan_list"), {"show": "archived"}).content.decode()
    owner_client.post(url(workspace, "plan_unarchive", plan_id=plan.pk))
    plan.refresh_from_db()
    assert not plan.archived


def test_empty_plan_list_invites_to_create_one(workspace, owner_client):
    html = owner_client.get(url(workspace, "plan_list")).content.decode()
    assert "No plans yet" in html and url(workspace, "plan_create") in html


def test_a_group_the_model_does_not_use_is_shown_when_it_holds_an_error(workspace, owner_client):
    html = owner_client.post(url(workspace, "plan_create"), plan_data(rollover_cap="5")).content.decode()
    assert group(html, "Rollover") == "shown"
    assert group(html, "Deliverables") == "hidden"
