"""The period statement PDF: its numbers are the ledger's, and it carries the period's work log."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from datetime import date
from decimal import Decimal

import pytest
from django.db.models import Sum
from pypdf import PdfReader

from billing import services as billing
from delivery.models import LedgerEntry, Period, WorkItem
from tests.portal.test_pages import NOON, Story, _record, build_story, portal_url

pytestmark = pytest.mark.django_db

H = Decimal


@pytest.fixture
def story(workspace, alice, settings, tmp_path) -> Story:
    settings.MEDIA_ROOT = tmp_path / "media"
    return build_story(workspace, alice)


@pytest.fixture
def carol_browser(story, login, time_machine):
    time_machine.move_to(NOON, tick=False)
    return login(story.carol.user)


def pdf_text(data: bytes) -> str:
    assert data.startswith(b"%PDF")
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", "-layout", "-", "-"], input=data, capture_output=True, check=True).stdout
        return text.decode()
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def statement(browser, story, retainer, period) -> tuple[str, object]:
    response = browser.get(portal_url(story, f"retainers/{retainer.pk}/statement/{period.pk}/"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    return pdf_text(response.content), response


def row(text: str, label: str) -> list[str]:
    """The numbers on the line of the statement that starts with `label`."""
    for line in text.splitlines():
        if line.strip().startswith(label):
            return re.findall(r"-?\d+\.\d\d", line)
    raise AssertionError(f"no line {label!r} in:\n{text}")


def sums(period: Period) -> dict[str, Decimal]:
    """The period's ledger, summed by kind (deliveries and their reversals together as usage)."""
    entries = LedgerEntry.objects.filter(period=period)
    result = {
        kind: entries.filter(kind=kind, work_item__isnull=True).aggregate(s=Sum("quantity", default=H(0)))["s"]
        for kind in ("allotment", "rollover_in", "rollover_out", "expiry", "overage", "adjustment")
    }
    result["usage"] = entries.filter(work_item__isnull=False).aggregate(s=Sum("quantity", default=H(0)))["s"]
    result["balance"] = entries.aggregate(s=Sum("quantity", default=H(0)))["s"]
    return result


def test_statement_of_a_closed_period_matches_its_ledger_and_closed_figures(story, carol_browser):
    february = Period.objects.get(retainer=story.advisory, seq=2)
    text, response = statement(carol_browser, story, story.advisory, february)
    ledger = sums(february)
    assert f"{ledger['allotment']}" == row(text, "Allotment")[0] == f"{february.allotted}" == "10.00"
    assert row(text, "Rolled in") == [f"{ledger['rollover_in']}"] == [f"{february.rolled_in}"] == ["3.50"]
    assert "unused in January" in text
    assert row(text, "Available") == ["13.50"]
    assert row(text, "Used")[0] == f"{ledger['usage']}" == f"{-february.used}" == "-10.00"
    assert row(text, "Rolled out")[0] == f"{ledger['rollover_out']}" == f"{-february.rolled_out}" == "-3.50"
    assert "from February, into the next period" in text
    assert row(text, "Balance at close") == [f"{ledger['balance']}"] == ["0.00"]
    # The work log: the edited entry's newest version only.
    assert "Board pack and rehearsal" in text
    assert row(text, "Total billable") == ["10.00"]
    assert "attachment" in response["Content-Disposition"]
    assert f"statement-advisory-{february.start_on:%Y-%m-%d}.pdf" in response["Content-Disposition"]
    assert "Acme Corp" in text and "Northwind Advisory" in text and "1–28 February 2026" in text


def test_statement_work_log_has_billable_and_unbilled_work_but_not_removed_entries(story, carol_browser):
    january = Period.objects.get(retainer=story.advisory, seq=1)
    text, _ = statement(carol_browser, story, story.advisory, january)
    for description in ("Kick-off workshop", "Pricing review", "Intro call with the new CFO"):
        assert description in text
    assert "Logged by mistake" not in text
    billable = sum(i.quantity for i in WorkItem.objects.filter(period=january, removed_at=None, billable=True))
    assert row(text, "Total billable") == [f"{billable}"] == [f"{january.used}"] == ["6.50"]
    assert row(text, "Not billed") == ["1.00"]
    assert row(text, "Rolled out")[0] == "-3.50"
    assert "PRIVATE" not in text


def test_statement_of_the_open_period_gives_the_figures_so_far(story, carol_browser):
    april = Period.objects.get(retainer=story.advisory, status="open")
    text, _ = statement(carol_browser, story, story.advisory, april)
    ledger = sums(april)
    assert "(open: figures so far)" in text
    assert row(text, "Rolled in") == ["3.50"] and "unused in March" in text
    assert row(text, "Used")[0] == f"{ledger['usage']}" == "-2.00"
    assert row(text, "Remaining so far") == [f"{ledger['balance']}"] == ["11.50"]
    assert "Balance at close" not in text
    assert "Hiring plan call" in text and "Follow-up on hiring" in text


def test_statement_shows_what_expired_and_the_overage_billed(story, carol_browser):
    # Support (fixed, 5 hours): 3 used, then 4 more: 2 over; billed at £150 an hour when April closes.
    _record(story.support, date(2026, 4, 9), "4", "Emergency fix")
    billing.bill_workspace(workspace_id=story.workspace.pk, as_of=date(2026, 5, 1))
    april = Period.objects.get(retainer=story.support, seq=1)
    assert (april.status, april.overage, april.expired) == ("closed", H("2.00"), H("0.00"))
    text, _ = statement(carol_browser, story, story.support, april)
    assert row(text, "Used")[0] == "-7.00"
    assert row(text, "Overage")[0] == f"{sums(april)['overage']}" == "2.00"
    assert "Overage billed: 2.00 hours × £150.00 = £300.00" in text
    assert row(text, "Balance at close") == ["0.00"]

    # Advisory's April closes too; with nothing more used, March's remaining 1.50 roll on with April's 10.
    advisory_april = Period.objects.get(retainer=story.advisory, seq=4)
    text, _ = statement(carol_browser, story, story.advisory, advisory_april)
    assert [line for line in text.splitlines() if line.strip().startswith("Rolled out")] and "from March" in text
    ledger = sums(advisory_april)
    assert f"{ledger['rollover_out']}" == f"{-advisory_april.rolled_out}" == "-11.50"


def test_statement_lists_expired_units_by_origin(story, carol_browser):
    # The fixed retainer lapses what is left: 5 - 3 = 2 hours expire at April's close.
    billing.bill_workspace(workspace_id=story.workspace.pk, as_of=date(2026, 5, 1))
    april = Period.objects.get(retainer=story.support, seq=1)
    text, _ = statement(carol_browser, story, story.support, april)
    assert row(text, "Expired")[0] == f"{sums(april)['expiry']}" == f"{-april.expired}" == "-2.00"
    assert "from April: Unused units lapse at period end" in text


def test_statement_of_a_deliverables_retainer_lists_its_deliverables(story, carol_browser):
    period = Period.objects.get(retainer=story.content, status="open")
    text, _ = statement(carol_browser, story, story.content, period)
    assert "Blog post" in text and "Delivered" in text and "Newsletter" in text and "Planned" in text
    assert "£900.00" in text


def test_statement_query_count_does_not_depend_on_the_work_logged(story, carol_browser, django_assert_max_num_queries):
    period = Period.objects.get(retainer=story.advisory, status="open")
    for n in range(20):
        _record(story.advisory, date(2026, 4, 9), "0.25", f"Small task {n}")
    with django_assert_max_num_queries(10):
        text, _ = statement(carol_browser, story, story.advisory, period)
    assert "Small task 19" in text
