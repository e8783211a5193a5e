"""Forms of the core (sign-up, workspace, invitations, roles), the base of list filters, and the
project-wide form markup (errors next to their fields). Money inputs are in retainers.fields,
currencies and time zones in retainers.choices."""

from __future__ import annotations

import json
from typing import Any, cast

from allauth.account.forms import SignupForm as AllauthSignupForm
from django import forms
from django.contrib.auth import password_validation
from django.db import transaction
from django.forms.renderers import TemplatesSetting
from django.http import HttpRequest

from retainers import services
from retainers.choices import CURRENCIES, currency_by_region, timezone_choices
from retainers.models import Membership, User


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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            # static/js/detect.js preselects the browser's time zone and its region's currency; both
            # stay editable, and without JavaScript the defaults (UTC, USD) are there to change.
            self.fields["timezone"].widget.attrs["data-detect"] = "timezone"
            self.fields["currency"].widget.attrs.update(
                {"data-detect": "currency", "data-currency-by-region": json.dumps(currency_by_region())}
            )

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

    def __init__(self, *args: Any, roles: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["role"]).choices = [c for c in Membership.Role.choices if c[0] in roles]


class InvitationSignupForm(forms.Form):
    """The account of someone joining by invitation: their email is the invited one."""

    name = forms.CharField(label="Your name", max_length=150)
    password1 = forms.CharField(label="Password", widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    password2 = forms.CharField(
        label="Password (again)", widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def __init__(self, *args: Any, email: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.email = email

    def clean_password1(self) -> str:
        password = self.cleaned_data["password1"]
        password_validation.validate_password(password, User(email=self.email, name=self.data.get("name", "")))
        return password

    def clean(self) -> dict[str, object]:
        data = super().clean()
        assert data is not None  # Form.clean() returns cleaned_data
        if data.get("password1") and data.get("password2") and data["password1"] != data["password2"]:
            self.add_error("password2", "The two passwords differ.")
        return data


class RoleForm(forms.Form):
    role = forms.ChoiceField(label="Role", choices=Membership.Role.choices)
