"""Utilisation has one definition (used ÷ what the period made available, rolled-in included,
delivery.figures.utilisation) and the consultant's Periods tab, the client's renewal page and the
renewal evidence all print it; "went over in N of M" counts the periods the chart marks over."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal as D

import pytest
import time_machine

from renewals import services
from renewals.models import Renewal
from tests import factories
from tests.renewals.conftest import run, seed

pytestmark = pytest.mark.django_db


def cells(html: str, row_start: str) -> list[str]:
    """The cells' text of the table row whose header starts with `row_start`."""
    for row in re.findall(r"<tr>(.*?)</tr>", html, re.S):
        header = re.search(r"<th scope=\"row\">(.*?)</th>", row, re.S)
        if header and re.sub(r"<[^>]+>", "", header.group(1)).strip().startswith(row_start):
            return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
    raise AssertionError(f"no row {row_start!r}")


@pytest.fixture
def april():
    with time_machine.travel("2026-04-02T09:00:00+00:00", tick=False):
        yield


@pytest.fixture
def rolled(april, workspace, acme, carol, alice):
    """February: 10 h bought + 4 rolled in from January = 14 available, 16 used (2 carried as debt)."""
    retainer = factories.make_retainer(
        client=acme,
        model="rollover",
        rollover_cap=D("5"),
        rollover_expiry_periods=1,
        term_periods=4,
        overage_policy="carry",
    )
    seed(retainer, ["6", "16", "2", "4"])
    run(workspace, date(2026, 4, 1))
    renewal = Renewal.objects.get(retainer=retainer)
    services.save_proposal(renewal=renewal, terms={}, proposal_text="", actor=alice)
    return services.send_proposal(renewal=renewal, actor=alice)


def test_periods_tab_and_portal_renewal_page_print_the_same_utilisation(rolled, workspace, owner_client, carol, login):
    retainer = rolled.retainer
    tab = owner_client.get(f"/w/{workspace.slug}/retainers/{retainer.pk}/periods/").content.decode()
    portal = login(carol.user).get(f"/portal/w/{workspace.slug}/renewals/{rolled.pk}/").content.decode()
    team = owner_client.get(f"/w/{workspace.slug}/renewals/{rolled.pk}/").content.decode()
    assert cells(tab, "1–28 Feb 2026")[-1] == "114%"  # 16 of 14
    assert cells(portal, "Feb 2026")[2] == "114%"
    assert "114%" in cells(team, "1 Feb 2026")
    assert cells(tab, "1–31 Jan 2026")[-1] == cells(portal, "Jan 2026")[2] == "60%"


def test_went_over_counts_the_periods_the_chart_marks_over(rolled, workspace, carol, login):
    portal = login(carol.user).get(f"/portal/w/{workspace.slug}/renewals/{rolled.pk}/").content.decode()
    red = portal.count('fill="#c42b1c"')
    said = re.search(r"went over in (\d+) of (\d+) months", rolled.suggestion_reason)
    assert red == 1 and said is not None and int(said.group(1)) == red
