"""Forms of renewals: the proposed terms, the client's answer, and the reminder offsets.

The proposal's terms are filled in with the one terms form (clients.forms.TermsForm: the same
fields, the same checks per retainer model, amounts typed as decimals and cleaned to minor units
with retainers.money) in the current term's currency, plus the text the client reads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django import forms

from clients.forms import TermsForm, terms_initial
from renewals.models import Renewal, RenewalSettings
from renewals.services import EDITABLE_TERMS, MAX_OFFSET_DAYS
from retainers.models import Workspace


class ProposalForm(TermsForm):
    proposal_text = forms.CharField(
        label="Message to the client",
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text="Shown above the terms in the email and the portal. Plain text.",
    )

    def __init__(self, *args: Any, workspace: Workspace, renewal: Renewal, **kwargs: Any) -> None:
        kwargs.setdefault("initial", self.initial_from_renewal(renewal))
        super().__init__(*args, workspace=workspace, currency=renewal.currency, **kwargs)
        self.renewal = renewal
        self.fields["term_periods"].label = "Next term length"
        self.fields["auto_renew"].label = "The next term renews automatically at its end"
        self.fields["price"].help_text = f"What the client pays each period of the next term, in {renewal.currency}."

    @staticmethod
    def initial_from_renewal(renewal: Renewal) -> dict[str, object]:
        terms = {name: getattr(renewal, name) for name in EDITABLE_TERMS}
        return {**terms_initial(terms), "proposal_text": renewal.proposal_text}

    def terms(self) -> dict[str, object]:
        terms = super().terms()
        terms.pop("currency")  # the next term is billed in the current one's currency
        return terms


class DeclineForm(forms.Form):
    reason = forms.CharField(
        label="Would you tell us why? (optional)",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class RecordAnswerForm(forms.Form):
    """A team member records the client's answer given by phone or in person."""

    outcome = forms.ChoiceField(
        label="The client",
        choices=[("accept", "Accepted the proposal"), ("decline", "Declined")],
        widget=forms.RadioSelect,
    )
    reason = forms.CharField(
        label="Their reason, if they declined",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


def _offsets_text(days: list[int]) -> str:
    return ", ".join(str(d) for d in days)


class OffsetsField(forms.CharField):
    """Days before the term end, typed as "30, 21, 14"."""

    def clean(self, value: object) -> list[int]:
        text = super().clean(value) or ""
        parts = [p for p in re.split(r"[\s,;]+", text) if p]
        days = set()
        for part in parts:
            if not part.isdigit() or not 0 < int(part) <= MAX_OFFSET_DAYS:
                raise forms.ValidationError(f"Enter whole numbers of days from 1 to {MAX_OFFSET_DAYS}, like 21, 14, 7.")
            days.add(int(part))
        if len(days) > 10:
            raise forms.ValidationError("Ten reminders at most.")
        return sorted(days, reverse=True)


class RenewalSettingsForm(forms.Form):
    consultant_offsets = OffsetsField(
        label="Remind the team (days before the term ends)",
        required=False,
        max_length=100,
        help_text="While the proposal is not sent or not answered. The team always hears 7 and 1 days before.",
    )
    client_offsets = OffsetsField(
        label="Remind the client (days before the term ends)",
        required=False,
        max_length=100,
        help_text="While a sent proposal waits for an answer. Clients always hear 7 and 1 days before.",
    )

    @classmethod
    def for_settings(cls, row: RenewalSettings, data: Mapping[str, Any] | None = None) -> RenewalSettingsForm:
        return cls(
            data,
            initial={
                "consultant_offsets": _offsets_text(row.consultant_offsets),
                "client_offsets": _offsets_text(row.client_offsets),
            },
        )
