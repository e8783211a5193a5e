"""What a proposal says, once and from the right terms: the portal renewal page prints the
evidence sentence once; the suggestion starts from a pending amendment's terms; the default
text names the term's last day."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest
import time_machine

from delivery import services as delivery
from delivery.models import Deliverable
from renewals import services
from renewals.models import Renewal
from tests import factories
from tests.renewals.conftest import run, seed

pytestmark = pytest.mark.django_db


@pytest.fixture
def march():
    with time_machine.travel("2026-03-02T09:00:00+00:00", tick=False):
        yield


def test_the_portal_renewal_page_prints_the_evidence_sentence_once(march, workspace, acme, carol, alice, login):
    retainer = factories.make_retainer(
        client=acme, model="deliverables", units_per_period=D("0"), deliverables=["Report"], term_periods=3
    )
    report = Deliverable.objects.get(retainer=retainer, name="Report")
    delivery.set_deliverable_status(deliverable=report, status="delivered", actor=None, on=date(2026, 1, 20))
    delivery.close_and_open_period(retainer=retainer, as_of=date(2026, 3, 1))
    run(workspace, date(2026, 3, 2))
    renewal = Renewal.objects.get(retainer=retainer)
    services.save_proposal(renewal=renewal, terms={}, proposal_text="", actor=alice)
    services.send_proposal(renewal=renewal, actor=alice)
    page = login(carol.user).get(f"/portal/w/{workspace.slug}/renewals/{renewal.pk}/").content.decode()
    assert "delivered this term" in renewal.suggestion_reason
    assert page.count("delivered this term") == 1


def test_the_suggestion_reads_a_pending_amendment(march, workspace, acme, carol, alice):
    """Use of 9 a month on 10 would keep; the client already agreed to 20 from March: that is
    what the next term is measured against (a downgrade), and what it proposes from."""
    retainer = factories.make_retainer(
        client=acme, model="fixed", units_per_period=D("10"), price_minor=200000, term_periods=3
    )
    seed(retainer, ["9", "9", None])
    delivery.amend_retainer(
        retainer=retainer, terms={"units_per_period": D("20"), "price_minor": 350000}, reason="More", actor=alice
    )
    run(workspace, date(2026, 3, 2))
    renewal = Renewal.objects.get(retainer=retainer)
    assert renewal.suggestion == "downgrade", (renewal.suggestion_reason, renewal.evidence["periods"])
    assert "(from 20)" in renewal.suggestion_reason
    assert renewal.units_per_period == D("9")


def test_the_default_proposal_names_the_terms_last_day(workspace, acme):
    retainer = factories.make_retainer(client=acme, term_periods=3)  # 1 Jan – 31 Mar 2026
    assert "ends on 31 March 2026" in services.default_proposal_text(retainer)
