"""Renewals fixtures: a client with a portal contact, and retainers with months of real history.

History is built through delivery's own services (record_delivery, close_and_open_period),
so the ledger the proposal reads is the one production writes.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from clients.services import add_contact
from delivery import services as delivery
from delivery.periods import add_months
from renewals import services
from tests import factories

START = date(2026, 1, 1)


@pytest.fixture
def acme(workspace):
    return factories.ClientFactory(workspace=workspace, name="Acme Corp")


@pytest.fixture
def carol(acme):
    """Acme's portal contact."""
    return add_contact(client=acme, name="Carol Chen", email="carol@acme.example", portal_access=True)


def seed(retainer, usage: list[str | Decimal | None], *, first: date = START):
    """One delivery per month (None: nothing that month) and each month closed by delivery itself.

    The period of the last month given stays open, with its delivery in it.
    """
    for index, hours in enumerate(usage):
        month = add_months(first, index)
        if hours is not None:
            delivery.record_delivery(
                retainer=retainer,
                delivered_on=month + timedelta(days=4),
                quantity=Decimal(hours),
                description=f"Work in {month:%B}",
                actor=None,
                confirm_large=True,
            )
        if index < len(usage) - 1:
            delivery.close_and_open_period(retainer=retainer, as_of=add_months(first, index + 1))
    retainer.refresh_from_db()
    return retainer


def run(workspace, day: date):
    """One daily run of one workspace, as of `day`."""
    return services.process_workspace(workspace_id=workspace.pk, as_of=day)


@pytest.fixture
def six_month_retainer(acme, carol):
    """10 hours a month for £2,000, a six-month term ending 1 Jul 2026 (renewal opens 1 Jun)."""
    return factories.make_retainer(
        client=acme, model="fixed", units_per_period=Decimal("10"), price_minor=200000, term_periods=6
    )
