"""Every number and date a form takes is bounded, so no typed value can reach the database (or
Stripe) out of range: the rule, checked over every form class of the project."""

from __future__ import annotations

import importlib
import pkgutil
from datetime import date

import pytest
from django import forms

from retainers import fields
from retainers.fields import DateField, DateTimeField, MoneyField

APPS = ["retainers", "clients", "delivery", "billing", "renewals", "communication", "dashboard", "portal"]


def project_forms() -> list[type[forms.Form]]:
    """Every Form class defined in the apps (their modules imported first, so all are known)."""
    for app in APPS:
        package = importlib.import_module(app)
        for module in pkgutil.iter_modules(package.__path__):
            if module.name in {"migrations", "management", "tests"}:
                continue
            importlib.import_module(f"{app}.{module.name}")
    found, todo = [], [forms.BaseForm]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.split(".")[0] in APPS:
            found.append(cls)
    return found


def unbounded(form_class: type[forms.Form]) -> list[str]:
    problems = []
    for name, field in getattr(form_class, "base_fields", {}).items():
        where = f"{form_class.__module__}.{form_class.__name__}.{name}"
        if isinstance(field, forms.DateTimeField) and not isinstance(field, DateTimeField):
            problems.append(f"{where}: a DateTimeField without the date bounds (use retainers.fields.DateTimeField)")
        elif isinstance(field, forms.DateField) and not isinstance(field, DateField):
            problems.append(f"{where}: a DateField without the date bounds (use retainers.fields.DateField)")
        elif isinstance(field, forms.DecimalField) and field.max_digits is None and field.max_value is None:
            problems.append(f"{where}: a DecimalField without max_digits or max_value")
        elif isinstance(field, forms.IntegerField) and not isinstance(field, forms.DecimalField):
            if field.max_value is None and not isinstance(field, forms.TypedChoiceField):
                problems.append(f"{where}: an IntegerField without max_value")
        elif isinstance(field, forms.FloatField):
            problems.append(f"{where}: floats have no place near money or hours")
    return problems


def test_every_number_and_date_field_of_every_form_is_bounded():
    classes = project_forms()
    assert len(classes) >= 30, [c.__name__ for c in classes]  # the walk found the forms
    problems = [problem for cls in classes for problem in unbounded(cls)]
    assert problems == []


def test_the_bounds_check_catches_unbounded_fields():
    class Loose(forms.Form):
        day = forms.DateField()
        at = forms.DateTimeField()
        count = forms.IntegerField()
        share = forms.DecimalField()

    Loose.__module__ = "billing.forms"
    assert len(unbounded(Loose)) == 4


@pytest.mark.parametrize(
    ("field", "typed", "ok"),
    [
        (DateField(), "1970-01-01", True),
        (DateField(), "2199-12-31", True),
        (DateField(), "1969-12-31", False),
        (DateField(), "2200-01-01", False),
        (DateField(), "0001-01-01", False),
        (DateField(), "9999-12-31", False),
        (DateTimeField(), "9999-12-31 23:59", False),
        (DateTimeField(), "0001-01-01 00:00", False),
        (DateTimeField(), "2199-12-31 23:59", True),
    ],
)
def test_dates_are_taken_from_1970_to_2199(field, typed, ok):
    if ok:
        assert field.clean(typed)
    else:
        with pytest.raises(forms.ValidationError, match="Pick a date from 1 January 1970 to 31 December 2199"):
            field.clean(typed)


def test_the_largest_amount_is_what_stripe_charges_in_one_payment():
    assert fields.MAX_AMOUNT_MINOR == 99_999_999
    assert MoneyField(currency="GBP").clean("999,999.99") == 99_999_999
    with pytest.raises(forms.ValidationError, match="999,999.99 GBP at most"):
        MoneyField(currency="GBP").clean("1,000,000")
    assert fields.EARLIEST_DATE == date(1970, 1, 1) and fields.LATEST_DATE == date(2199, 12, 31)
