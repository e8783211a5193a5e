"""The clients table's search, filters and sort, read from the query string."""

from __future__ import annotations

from django import forms

from renewals.models import Renewal
from retainers.forms import QueryFilterForm


class RowFilterForm(QueryFilterForm):
    """Bad values fall back to the defaults: a hand-edited URL shows the table, never an error."""

    HEALTH_CHOICES = [
        ("", "Any balance"),
        ("over", "Over the allotment"),
        ("low", "Running low (under 20% left)"),
        ("healthy", "Healthy"),
    ]
    RENEWAL_CHOICES = [
        ("", "Any renewal"),
        ("none", "Not opened yet"),
        (Renewal.Status.UPCOMING, "Upcoming"),
        (Renewal.Status.PROPOSAL_SENT, "Proposal sent"),
        (Renewal.Status.ACCEPTED, "Accepted"),
        (Renewal.Status.DECLINED, "Declined"),
    ]
    # Column key -> the direction of its first click: the useful end first (most used, least left…).
    COLUMNS = {
        "client": "client",
        "utilization": "-utilization",
        "remaining": "remaining",
        "days": "days",
        "invoice": "invoice",
        "renewal": "renewal",
    }
    SORT_CHOICES = [(key, key) for column in COLUMNS for key in (column, f"-{column}")]
    DEFAULTS = {"q": "", "health": "", "renewal": "", "sort": "client"}

    q = forms.CharField(label="Search", required=False, max_length=200)
    health = forms.ChoiceField(label="Balance", choices=HEALTH_CHOICES, required=False)
    renewal = forms.ChoiceField(label="Renewal", choices=RENEWAL_CHOICES, required=False)
    sort = forms.ChoiceField(label="Sort", choices=SORT_CHOICES, required=False)
