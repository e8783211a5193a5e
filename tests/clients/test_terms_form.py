"""One terms form: plans, new retainers, amendments and renewal proposals fill in the same
clients.forms.TermsForm, so the same bad terms get the same error by the same field on every page
(never a 500 from the database's constraints, which hold the same rules)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest

from clients.forms import PlanForm, TermsForm
from clients.models import Amendment, Plan, Retainer
from delivery.forms import AmendForm, RetainerCreateForm
from renewals import services as renewals
from renewals.forms import ProposalForm
from renewals.models import Renewal
from tests import factories
from tests.clients.helpers import url

pytestmark = pytest.mark.django_db

TERMS = {
    "model": "rollover",
    "unit": "hours",
    "units_per_period": "10",
    "overage_policy": "bill",
    "overage_rate": "150",
    "rollover_cap": "5",
    "rollover_expiry_periods": "2",
    "price": "1,500",
    "cadence": "monthly",
    "billing_timing": "advance",
    "term_periods": "12",
    "renewal_notice_days": "30",
}
# What an amendment may change: model, unit, currency, cadence and term length stay as signed.
AMENDABLE = {k: v for k, v in TERMS.items() if k not in {"model", "unit", "cadence", "term_periods"}}

BAD = [
    ({"rollover_cap": ""}, "rollover_cap", "need a cap"),
    ({"rollover_expiry_periods": ""}, "rollover_expiry_periods", "after how many periods"),
    ({"rollover_cap": "0"}, "rollover_cap", "more than zero"),
    ({"price": "-1"}, "price", "zero or more"),
    ({"overage_rate": "-3"}, "overage_rate", "zero or more"),
    ({"model": "fixed"}, "rollover_cap", "Only rollover"),  # a fixed retainer with rollover terms
    ({"model": "fixed", "rollover_cap": "", "deliverables": "Report"}, "deliverables", "Only deliverables"),
    ({"model": "deliverables", "rollover_cap": "", "rollover_expiry_periods": ""}, "deliverables", "List the"),
]


@pytest.fixture
def pages(workspace, owner_client):
    """Each page that takes terms: (name, where it posts, its valid data, what counts what it writes)."""
    client = factories.ClientFactory(workspace=workspace)
    retainer = factories.make_retainer(client=client, rollover_cap=D("5"), rollover_expiry_periods=2)
    renewal = renewals.open_renewal(retainer=retainer, today=retainer.term_ends_on - timedelta(days=10))
    return {
        "plan": (url(workspace, "plan_create"), {**TERMS, "name": "Standard"}, Plan.objects.count),
        "new retainer": (
            url(workspace, "delivery:retainer_create"),
            {**TERMS, "client": client.pk, "name": "Advisory", "starts_on": "2026-01-01", "currency": "USD"},
            Retainer.objects.count,
        ),
        "amendment": (
            url(workspace, "delivery:retainer_amend", retainer_id=retainer.pk),
            {**AMENDABLE, "reason": "More hours"},
            Amendment.objects.count,
        ),
        "proposal": (
            url(workspace, "renewals:renewal_edit", renewal_id=renewal.pk),
            {**TERMS, "proposal_text": "Same again."},
            lambda: Renewal.objects.filter(pk=renewal.pk, price_minor=150000).count(),
        ),
    }


def test_every_page_with_terms_uses_the_one_form():
    assert all(issubclass(form, TermsForm) for form in (PlanForm, RetainerCreateForm, AmendForm, ProposalForm))


PAGES = ["plan", "new retainer", "amendment", "proposal"]
CASES = [
    (page, overrides, field, message)
    for page in PAGES
    for overrides, field, message in BAD
    if page != "amendment" or set(overrides) <= set(AMENDABLE)  # an amendment keeps the model as signed
]


@pytest.mark.parametrize(
    ("page", "overrides", "field", "message"), CASES, ids=[f"{p}-{f}-{n}" for n, (p, _, f, _) in enumerate(CASES)]
)
def test_the_same_bad_terms_get_the_same_error_by_the_field_on_every_page(
    pages, owner_client, page, overrides, field, message
):
    where, data, written = pages[page]
    before = written()
    response = owner_client.post(where, {**data, **overrides})
    assert response.status_code == 200
    errors = response.context["form"] if page != "amendment" else response.context["amend_form"]
    assert message in " ".join(errors.errors[field]), errors.errors
    assert f'id="id_{field}_error"' in response.content.decode()
    assert written() == before
    assert owner_client.post(where, data).status_code == 302  # the same page takes good terms
    assert written() == before + 1
