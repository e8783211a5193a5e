"""The renewals pages: pipeline totals and forecast, one renewal, the client page's section, isolation, CSP."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal as D

import pytest

from renewals import services
from renewals.models import Renewal
from renewals.views import ForecastRow, forecast, pipeline
from retainers.models import Email
from tests import factories
from tests.hostile import audit_markup
from tests.renewals.conftest import run
from tests.retainers.test_security import csp_problems

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _june(time_machine):
    time_machine.move_to("2026-06-02T09:00:00+00:00")


@pytest.fixture
def book(workspace, acme, carol, alice):
    """Five retainers whose terms end in the next 90 days, in every state."""
    upcoming = factories.make_retainer(client=acme, name="A", price_minor=200000, term_periods=6)
    unopened = factories.make_retainer(
        client=acme,
        name="B",
        cadence="quarterly",
        price_minor=300000,
        term_periods=2,
        auto_renew=True,
        starts_on=date(2026, 1, 5),
    )
    accepted = factories.make_retainer(
        client=acme, name="C", price_minor=100000, term_periods=6, renewal_notice_days=40, starts_on=date(2026, 1, 10)
    )
    declined = factories.make_retainer(
        client=acme,
        name="D",
        cadence="yearly",
        price_minor=500000,
        term_periods=1,
        renewal_notice_days=90,
        starts_on=date(2025, 8, 1),
    )
    dollars = factories.make_retainer(
        client=acme, name="E", price_minor=50000, term_periods=6, currency="USD", auto_renew=True
    )
    run(workspace, None)
    renewal_c = Renewal.objects.get(retainer=accepted)
    services.save_proposal(renewal=renewal_c, terms={"price_minor": 120000}, proposal_text="", actor=alice)
    services.accept_renewal(renewal=services.send_proposal(renewal=renewal_c, actor=alice))
    services.decline_renewal(renewal=Renewal.objects.get(retainer=declined), reason="Too dear", actor=alice)
    return {"A": upcoming, "B": unopened, "C": accepted, "D": declined, "E": dollars}


def test_pipeline_totals_are_yearly_values_per_status_and_currency(workspace, book):
    stages = {stage.status: stage for stage in pipeline(workspace, date(2026, 6, 2))}
    assert (stages["upcoming"].count, stages["upcoming"].values) == (2, [("GBP", 2_400_000), ("USD", 600_000)])
    assert (stages["accepted"].count, stages["accepted"].values) == (1, [("GBP", 1_200_000)])
    assert (stages["declined"].count, stages["declined"].values) == (1, [("GBP", 500_000)])
    assert stages["proposal_sent"].count == stages["renewed"].count == stages["lapsed"].count == 0
    assert [r.retainer.name for r in stages["upcoming"].renewals] == ["A", "E"]


def test_forecast_by_month_likely_at_risk_and_lost(workspace, book):
    assert forecast(workspace, date(2026, 6, 2)) == [
        # B renews on its own (not opened yet); C was accepted at £1,200 a month; A does not renew on its own.
        ForecastRow(
            date(2026, 7, 1),
            "GBP",
            likely_count=2,
            likely_minor=1_200_000 + 1_440_000,
            at_risk_count=1,
            at_risk_minor=2_400_000,
        ),
        ForecastRow(date(2026, 7, 1), "USD", likely_count=1, likely_minor=600_000),
        ForecastRow(date(2026, 8, 1), "GBP", lost_count=1, lost_minor=500_000),
    ]


def test_renewals_page_shows_totals_and_forecast(workspace, book, owner_client, django_assert_max_num_queries):
    with django_assert_max_num_queries(12):
        response = owner_client.get(f"/w/{workspace.slug}/renewals/")
    assert response.status_code == 200
    html = response.content.decode()
    for text in [
        "£24,000.00",
        "$6,000.00",
        "£12,000.00",
        "£5,000.00",
        "£26,400.00",
        "July 2026",
        "August 2026",
        "Reminder days",
    ]:
        assert text in html, text
    assert csp_problems(response) == []


def test_a_plain_member_sees_the_page_but_not_the_settings(workspace, book, member_client):
    response = member_client.get(f"/w/{workspace.slug}/renewals/")
    assert response.status_code == 200 and b"Reminder days" not in response.content
    assert member_client.post(f"/w/{workspace.slug}/renewals/settings/", {"consultant_offsets": "5"}).status_code == 403


def test_bad_offsets_are_refused_with_a_message(workspace, owner_client):
    response = owner_client.post(
        f"/w/{workspace.slug}/renewals/settings/", {"consultant_offsets": "30, soon", "client_offsets": ""}
    )
    assert response.status_code == 200 and b"Enter whole numbers of days" in response.content
    assert csp_problems(response) == []


def test_detail_shows_evidence_and_proposal_and_history(workspace, book, owner_client):
    renewal = Renewal.objects.get(retainer=book["A"])
    response = owner_client.get(f"/w/{workspace.slug}/renewals/{renewal.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    for text in [
        "Suggestion: Keep the same terms",
        "evidence",
        "Save proposal",
        "Send proposal",
        "Opened",
        "carol@acme.example",
    ]:
        assert text in html, text
    assert csp_problems(response) == []
    preview = owner_client.get(f"/w/{workspace.slug}/renewals/{renewal.pk}/preview/")
    assert preview.status_code == 200 and b"Your next term of A with Northwind Advisory" in preview.content
    assert csp_problems(preview) == []


def test_editing_and_sending_from_the_page(workspace, book, owner_client):
    renewal = Renewal.objects.get(retainer=book["A"])
    base = f"/w/{workspace.slug}/renewals/{renewal.pk}/"
    form = {
        "proposal_text": "A bigger plan for a busier half.",
        "model": "fixed",
        "unit": "hours",
        "units_per_period": "15",
        "overage_policy": "bill",
        "overage_rate": "150.00",
        "price": "2,900.00",
        "cadence": "monthly",
        "billing_timing": "advance",
        "term_periods": "12",
        "auto_renew": "on",
        "renewal_notice_days": "30",
    }
    bad = owner_client.post(base + "proposal/", {**form, "price": "29.001"})
    assert bad.status_code == 200 and b"GBP has 2 decimal places at most" in bad.content
    assert owner_client.post(base + "proposal/", form).status_code == 302
    renewal.refresh_from_db()
    assert (renewal.units_per_period, renewal.price_minor, renewal.term_periods, renewal.auto_renew) == (
        D("15"),
        290000,
        12,
        True,
    )
    assert owner_client.post(base + "send/").status_code == 302
    renewal.refresh_from_db()
    assert renewal.status == "proposal_sent"
    email = Email.objects.get(key__startswith=f"renewal-{renewal.pk}-proposal-")
    assert "A bigger plan for a busier half." in email.body_text and "£2,900.00" in email.body_text


def test_changing_the_model_swaps_its_fields_with_htmx(workspace, book, owner_client):
    renewal = Renewal.objects.get(retainer=book["A"])
    response = owner_client.post(
        f"/w/{workspace.slug}/renewals/{renewal.pk}/proposal/",
        {"model": "deliverables", "refresh": "1"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="proposal-model-fields"') and "<html" not in html
    assert Renewal.objects.get(pk=renewal.pk).model == "rollover"  # nothing saved


def test_recording_an_answer_from_the_page(workspace, book, owner_client):
    renewal = Renewal.objects.get(retainer=book["E"])
    response = owner_client.post(f"/w/{workspace.slug}/renewals/{renewal.pk}/record/", {"outcome": "accept"})
    assert response.status_code == 302
    renewal.refresh_from_db()
    assert renewal.status == "accepted" and renewal.next_retainer.currency == "USD"


def test_client_page_lists_the_clients_renewals(workspace, book, acme, owner_client):
    response = owner_client.get(f"/w/{workspace.slug}/clients/{acme.pk}/renewals/")
    assert response.status_code == 200
    html = response.content.decode()
    section = html[html.index('id="client-renewals"') :]
    assert section.count("/renewals/") >= 4 and "Declined" in section and "Accepted" in section


def test_another_workspace_gets_404_for_every_renewal_page(workspace, other_workspace, book, outsider_client):
    renewal = Renewal.objects.get(retainer=book["A"])
    # Charlie is not a member of this workspace, and his own workspace does not have this renewal.
    for slug in (workspace.slug, other_workspace.slug):
        base = f"/w/{slug}/renewals/{renewal.pk}/"
        assert outsider_client.get(base).status_code == 404
        assert outsider_client.get(base + "preview/").status_code == 404
        for action in ("send/", "evidence/", "record/", "proposal/"):
            assert outsider_client.post(base + action, {"outcome": "accept"}).status_code == 404
    assert Renewal.objects.get(pk=renewal.pk).status == "upcoming"
    assert b"Acme" not in outsider_client.get(f"/w/{other_workspace.slug}/renewals/").content


def test_client_facing_pages_obey_the_csp(workspace, book, carol, login, client):
    renewal = Renewal.objects.get(retainer=book["A"])
    services.send_proposal(renewal=renewal, actor=None)
    email = Email.objects.get(key__startswith=f"renewal-{renewal.pk}-proposal-")
    accept = re.search(r"https?://[^/\s]+(/renewal/[^/\s]+/accept/)", email.body_text).group(1)
    portal = login(carol.user)
    for response in [
        portal.get(f"/portal/w/{workspace.slug}/renewals/"),
        portal.get(f"/portal/w/{workspace.slug}/renewals/{renewal.pk}/"),
        client.get(accept),
        client.get(accept.replace("/accept/", "/decline/")),
        client.get("/renewal/not-a-token/accept/"),
    ]:
        assert response.status_code in (200, 400)
        assert csp_problems(response) == []


def test_preview_shows_a_hostile_proposal_text_as_text(workspace, book, owner_client, alice):
    """The proposal text is the consultant's, but it is rendered into a page: a <meta refresh> in it
    once sent the browser away. The preview shows the email's text, escaped, as the client reads it."""
    renewal = Renewal.objects.get(retainer=book["A"])
    text = '<meta http-equiv="refresh" content="1;url=https://evil.example/">"><img src=x onerror=alert(1)> Thanks!'
    services.save_proposal(renewal=renewal, terms={}, proposal_text=text, actor=alice)
    response = owner_client.get(f"/w/{workspace.slug}/renewals/{renewal.pk}/preview/")
    assert response.status_code == 200
    html = response.content.decode()
    audit = audit_markup(html)
    assert audit.problems == []
    assert "&lt;meta http-equiv=&quot;refresh&quot;" in html  # shown, escaped once, as the email's text has it
    assert "Your next term of A with Northwind Advisory" in html
