"""The consultant-side pages of delivery: signing, the retainer page, recording work, the ledger, the client section."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal as D

import pytest
import time_machine
from django.db import connection
from django.db.models import Sum
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from clients.models import Amendment, Plan, Retainer
from delivery import services
from delivery.models import Deliverable, LedgerEntry, Period, WorkItem
from delivery.selectors import client_section
from retainers.models import Membership
from tests.factories import ClientFactory, UserFactory, make_retainer

pytestmark = pytest.mark.django_db

TODAY = "2026-01-10 12:00Z"  # Europe/London: Saturday 10 January 2026
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def _today():
    with time_machine.travel(TODAY, tick=False):
        yield


@pytest.fixture
def retainer(workspace):
    return make_retainer(workspace=workspace, name="Advisory", starts_on=date(2026, 1, 1))


def url(workspace, path: str) -> str:
    return f"/w/{workspace.slug}/{path}"


def log(retainer, day, hours, **kwargs):
    kwargs.setdefault("description", "Work")
    return services.record_delivery(retainer=retainer, delivered_on=day, quantity=D(hours), actor=None, **kwargs)


def quick_add_data(retainer, **data):
    values = {
        "origin": "retainer",
        "retainer": retainer.pk,
        "quantity": "1:30",
        "description": "Strategy call",
        "delivered_on": "2026-01-09",
        "billable": "on",
    }
    values.update(data)
    return values


def html(response) -> str:
    return response.content.decode()


def balance(retainer) -> D:
    return LedgerEntry.objects.filter(retainer=retainer).aggregate(s=Sum("quantity"))["s"]


# --- Creating a retainer ----------------------------------------------------------------------


def create_data(client, **data):
    values = {
        "client": client.pk,
        "name": "Growth advisory",
        "starts_on": "2026-01-15",
        "model": "rollover",
        "unit": "hours",
        "units_per_period": "8",
        "overage_policy": "bill",
        "overage_rate": "120",
        "currency": "GBP",
        "price": "1,500.00",
        "cadence": "monthly",
        "billing_timing": "advance",
        "rollover_cap": "4",
        "rollover_expiry_periods": "2",
        "term_periods": "6",
        "renewal_notice_days": "30",
    }
    values.update(data)
    return values


def make_plan(workspace, **terms) -> Plan:
    values = {
        "name": "Core hours",
        "model": "fixed",
        "unit": "hours",
        "units_per_period": D("12"),
        "price_minor": 180000,
        "currency": "GBP",
        "overage_rate_minor": 9000,
        "term_periods": 12,
    }
    values.update(terms)
    return Plan.objects.create(workspace=workspace, **values)


def test_new_retainer_page_defaults_start_to_the_workspace_today_and_the_client_from_the_query(
    workspace, other_workspace, owner_client
):
    acme = ClientFactory(workspace=workspace, name="Acme Ltd")
    ClientFactory(workspace=other_workspace, name="Foreign Corp")
    make_plan(workspace, name="Core hours")
    make_plan(workspace, name="Old plan", archived=True)
    make_plan(other_workspace, name="Their plan")
    response = owner_client.get(url(workspace, f"retainers/new/?client={acme.pk}"))
    assert response.status_code == 200
    page = html(response)
    assert 'value="2026-01-10"' in page
    assert f'<option value="{acme.pk}" selected>Acme Ltd</option>' in page
    assert "Foreign Corp" not in page and "Their plan" not in page and "Old plan" not in page
    assert "Core hours" in page


def test_create_from_scratch_signs_the_retainer_and_opens_its_first_period(workspace, owner_client):
    acme = ClientFactory(workspace=workspace)
    response = owner_client.post(url(workspace, "retainers/new/"), create_data(acme))
    retainer = Retainer.objects.get(client=acme)
    assert response.status_code == 302
    assert response.url == url(workspace, f"retainers/{retainer.pk}/")
    assert (retainer.name, retainer.model, retainer.units_per_period) == ("Growth advisory", "rollover", D("8"))
    assert (retainer.price_minor, retainer.overage_rate_minor, retainer.currency) == (150000, 12000, "GBP")
    assert (retainer.rollover_cap, retainer.rollover_expiry_periods, retainer.plan) == (D("4"), 2, None)
    period = Period.objects.get(retainer=retainer)
    assert (period.start_on, period.end_on, period.allotted) == (date(2026, 1, 15), date(2026, 2, 15), D("8"))


def test_create_from_plan_loads_its_terms_then_keeps_the_edits(workspace, owner_client):
    acme = ClientFactory(workspace=workspace)
    plan = make_plan(workspace)
    page = html(owner_client.get(url(workspace, f"retainers/new/?client={acme.pk}&plan={plan.pk}")))
    assert 'value="Core hours"' in page  # the name defaults to the plan's
    assert 'name="units_per_period" value="12"' in page
    assert 'name="price" value="1800.00"' in page
    assert f'name="plan" value="{plan.pk}"' in page
    data = create_data(
        acme,
        plan=plan.pk,
        name="",
        model="fixed",
        units_per_period="14",
        price="1800.00",
        overage_rate="90",
        rollover_cap="",
        rollover_expiry_periods="",
    )
    response = owner_client.post(url(workspace, "retainers/new/"), data)
    assert response.status_code == 302
    retainer = Retainer.objects.get(client=acme)
    assert (retainer.plan, retainer.name, retainer.units_per_period, retainer.price_minor) == (
        plan,
        "Core hours",
        D("14"),
        180000,
    )
    assert retainer.rollover_cap is None


def test_choosing_a_plan_with_htmx_swaps_only_the_form(workspace, owner_client):
    plan = make_plan(workspace, currency="JPY", price_minor=150000)
    acme = ClientFactory(workspace=workspace)
    response = owner_client.get(url(workspace, f"retainers/new/?plan={plan.pk}&client={acme.pk}&name="), **HX)
    page = html(response)
    assert page.lstrip().startswith('<form id="create-form"')
    assert "<html" not in page
    assert 'name="price" value="150000"' in page  # JPY has no minor unit


def test_switching_the_model_shows_its_fields_without_saving(workspace, owner_client):
    """The new retainer page is the plan form's terms: the groups of the other models are hidden
    and disabled, and switching the model re-renders them (htmx, or the <noscript> button)."""
    acme = ClientFactory(workspace=workspace)
    page = html(owner_client.get(url(workspace, f"retainers/new/?client={acme.pk}")))
    assert '<div id="create-model-fields"' in page and "<fieldset hidden disabled>" in page
    data = create_data(acme, model="deliverables", refresh="1")
    fields = html(owner_client.post(url(workspace, "retainers/new/"), data, **HX))
    assert fields.lstrip().startswith('<div id="create-model-fields"') and "<html" not in fields
    assert 'name="deliverables"' in fields and fields.count("<fieldset hidden disabled>") == 2
    page = html(owner_client.post(url(workspace, "retainers/new/"), data))
    assert "<html" in page and 'value="Growth advisory"' in page  # what was typed stays
    assert not Retainer.objects.exists()


def test_create_with_errors_rerenders_with_status_200_and_writes_nothing(workspace, owner_client):
    acme = ClientFactory(workspace=workspace)
    response = owner_client.post(url(workspace, "retainers/new/"), create_data(acme, units_per_period="", price="x"))
    assert response.status_code == 200
    page = html(response)
    assert 'id="id_units_per_period_error"' in page and 'id="id_price_error"' in page
    assert not Retainer.objects.exists()


def test_create_garbage_in_the_query_does_not_crash(workspace, owner_client):
    response = owner_client.get(url(workspace, "retainers/new/?client=abc&plan=99999999999999999999&starts_on=x"))
    assert response.status_code == 200


# --- The retainer page ------------------------------------------------------------------------------


def test_retainer_page_shows_the_period_figures(workspace, owner_client, retainer):
    log(retainer, date(2026, 1, 5), "2")
    log(retainer, date(2026, 1, 8), "1.5")
    log(retainer, date(2026, 1, 8), "3", billable=False)
    response = owner_client.get(url(workspace, f"retainers/{retainer.pk}/"))
    assert response.status_code == 200
    figures = response.context["figures"]
    assert (figures.available, figures.used, figures.remaining, figures.overage, figures.days_left) == (
        D("10"),
        D("3.5"),
        D("6.5"),
        D("0"),
        22,
    )
    page = html(response)
    assert 'id="stat-remaining">6.50' in page
    assert 'id="stat-days-left">22' in page


def test_retainer_page_load_puts_no_autofocus_anywhere(workspace, owner_client, retainer):
    # An autofocused Quantity scrolled the page 555 px down on load, hiding the title and figures.
    page = html(owner_client.get(url(workspace, f"retainers/{retainer.pk}/")))
    assert 'name="quantity"' in page
    assert "autofocus" not in page


def test_expiring_soon_counts_rolled_units_at_the_end_of_their_life(workspace, owner_client):
    retainer = make_retainer(workspace=workspace, starts_on=date(2025, 11, 1), rollover_expiry_periods=1)
    services.close_and_open_period(retainer=retainer, as_of=date(2026, 1, 1))  # Nov and Dec closed
    response = owner_client.get(url(workspace, f"retainers/{retainer.pk}/"))
    figures = response.context["figures"]
    assert (figures.allotted, figures.rolled_in) == (D("10"), D("10"))  # December's units rolled in
    assert figures.expiring == D("10")  # they have lived one period: they expire when January closes
    log(retainer, date(2026, 1, 5), "4")  # used oldest first
    figures = owner_client.get(url(workspace, f"retainers/{retainer.pk}/")).context["figures"]
    assert figures.expiring == D("6")


def test_overage_so_far_is_the_negative_balance(workspace, owner_client, retainer):
    log(retainer, date(2026, 1, 5), "12.25")
    figures = owner_client.get(url(workspace, f"retainers/{retainer.pk}/")).context["figures"]
    assert (figures.remaining, figures.overage) == (D("-2.25"), D("2.25"))


def test_burndown_svg_carries_the_numbers_and_a_text_alternative(workspace, owner_client, retainer):
    log(retainer, date(2026, 1, 2), "2")
    log(retainer, date(2026, 1, 6), "1")
    log(retainer, date(2026, 1, 6), "0.5")
    item = log(retainer, date(2026, 1, 7), "4")
    services.remove_delivery(item=item, actor=None)  # removed work does not burn
    response = owner_client.get(url(workspace, f"retainers/{retainer.pk}/"))
    page = html(response)
    svg = re.search(r'<svg id="burndown".*?</svg>', page, re.S).group()
    assert 'role="img"' in svg and 'aria-labelledby="burndown-title burndown-desc"' in svg
    assert '<title id="burndown-title">Burn-down, 1–31 Jan 2026</title>' in svg
    desc = re.search(r"<desc[^>]*>(.*?)</desc>", svg, re.S).group(1)
    assert "10.00 hours available" in desc and "3.50 used by 10 Jan" in desc
    assert "6.50 remaining with 22 days left" in desc
    assert "style=" not in svg
    chart = response.context["chart"]
    # One point per day so far (1–10 Jan) after the start; the last one is what remains.
    points = chart.actual_points.split()
    assert len(points) == 11
    assert [(row.day, row.delivered, row.remaining) for row in chart.rows] == [
        (date(2026, 1, 2), D("2"), D("8")),
        (date(2026, 1, 6), D("1.5"), D("6.5")),
    ]
    assert chart.today_x is not None
    table = re.search(r'<table class="visually-hidden">.*?</table>', page, re.S).group()
    assert "6 Jan</th><td>1.50</td><td>6.50</td>" in table


def test_ended_retainer_page_shows_the_last_period_without_forms(workspace, owner_client, retainer):
    log(retainer, date(2026, 1, 5), "2")
    services.end_retainer(retainer=retainer, on=date(2026, 1, 10))
    response = owner_client.get(url(workspace, f"retainers/{retainer.pk}/"))
    assert response.status_code == 200
    page = html(response)
    assert "This retainer ended on 10 Jan 2026" in page
    assert 'id="quick-add" class="card muted"' in page
    assert response.context["adjust_form"] is None and response.context["amend_form"] is None
    assert response.context["figures"].used == D("2")


# --- Quick-add -------------------------------------------------------------------------------------


def test_quick_add_with_htmx_writes_one_entry_and_returns_the_partials(workspace, owner_client, alice, retainer):
    entries = LedgerEntry.objects.count()
    response = owner_client.post(url(workspace, "work/new/"), quick_add_data(retainer), **HX)
    assert response.status_code == 200
    page = html(response)
    assert "<html" not in page
    assert page.lstrip().startswith('<form id="quick-add"')
    assert 'id="period-stats"' in page and 'id="work-list"' in page
    assert page.count('hx-swap-oob="true"') == 2
    assert "Logged 1.50 hours on Advisory" in page
    # A fresh, empty form with the focus back on the first input.
    assert re.search(r'<input type="text" name="quantity"[^>]*autofocus', page)
    assert 'name="description" maxlength="500" required id="id_description">' in page
    assert LedgerEntry.objects.count() == entries + 1
    item = WorkItem.objects.get(retainer=retainer)
    assert (item.quantity, item.delivered_on, item.created_by, item.delivered_by) == (
        D("1.5"),
        date(2026, 1, 9),
        alice,
        alice,
    )
    assert 'id="stat-remaining">8.50' in page


def test_quick_add_without_javascript_redirects_back(workspace, owner_client, retainer):
    response = owner_client.post(url(workspace, "work/new/"), quick_add_data(retainer, quantity="45m"))
    assert response.status_code == 302 and response.url == url(workspace, f"retainers/{retainer.pk}/")
    assert WorkItem.objects.get(retainer=retainer).quantity == D("0.75")


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"quantity": "lots"}, "quantity", "Enter hours like 1.5"),
        ({"quantity": "-1"}, "quantity", "Enter a positive quantity."),
        ({"quantity": "0"}, "quantity", "Enter more than zero."),
        ({"quantity": "30"}, "quantity", "More than 24 hours in one entry"),
        ({"description": ""}, "description", "This field is required."),
        ({"delivered_on": "2026-13-01"}, "delivered_on", "Enter a valid date."),
        ({"delivered_on": "2026-02-03"}, "delivered_on", "after the current period"),
        ({"delivered_on": "2025-12-31"}, "delivered_on", "The retainer starts on 01 Jan 2026."),
    ],
)
def test_quick_add_errors_show_next_to_their_field_and_write_nothing(
    workspace, owner_client, retainer, data, field, message
):
    entries, items = LedgerEntry.objects.count(), WorkItem.objects.count()
    response = owner_client.post(url(workspace, "work/new/"), quick_add_data(retainer, **data), **HX)
    assert response.status_code == 200
    page = html(response)
    errors = re.search(rf'<ul class="errorlist" id="id_{field}_error">(.*?)</ul>', page, re.S)
    assert errors and message in errors.group(1)
    assert re.search(rf'name="{field}"[^>]*autofocus', page)  # the focus goes where the problem is
    assert (LedgerEntry.objects.count(), WorkItem.objects.count()) == (entries, items)


def test_a_long_entry_asks_for_confirmation_then_records(workspace, owner_client, retainer):
    page = html(owner_client.post(url(workspace, "work/new/"), quick_add_data(retainer, quantity="26"), **HX))
    assert 'name="confirm"' in page
    owner_client.post(url(workspace, "work/new/"), quick_add_data(retainer, quantity="26", confirm="on"), **HX)
    assert WorkItem.objects.get(retainer=retainer).quantity == D("26")


def test_quick_add_on_a_paused_or_ended_retainer_says_why(workspace, owner_client, retainer):
    services.pause_retainer(retainer=retainer, on=date(2026, 1, 9))
    page = html(owner_client.post(url(workspace, "work/new/"), quick_add_data(retainer), **HX))
    assert "This retainer is paused: resume it to record work." in page
    services.resume_retainer(retainer=retainer, on=date(2026, 1, 9))
    services.end_retainer(retainer=retainer, on=date(2026, 1, 10))
    page = html(owner_client.post(url(workspace, "work/new/"), quick_add_data(retainer), **HX))
    assert "This retainer has ended." in page
    assert not WorkItem.objects.exists()


def test_quick_add_refuse_policy_error_is_next_to_the_quantity(workspace, owner_client):
    retainer = make_retainer(workspace=workspace, overage_policy="refuse", units_per_period=D("1"))
    page = html(owner_client.post(url(workspace, "work/new/"), quick_add_data(retainer, quantity="2"), **HX))
    assert re.search(r'id="id_quantity_error"><li>Only 1.00 hours left', page)


def test_quick_add_links_a_deliverable_of_the_period(workspace, owner_client):
    retainer = make_retainer(
        workspace=workspace, model="deliverables", units_per_period=D("0"), deliverables=["Report"]
    )
    report = Deliverable.objects.get(retainer=retainer)
    data = quick_add_data(retainer, deliverable=report.pk)
    data.pop("billable")
    owner_client.post(url(workspace, "work/new/"), data, **HX)
    item = WorkItem.objects.get(retainer=retainer)
    assert item.deliverable == report and not item.billable
    page = html(owner_client.get(url(workspace, f"retainers/{retainer.pk}/")))
    assert f'<a href="#deliverable-{report.pk}">Report</a>' in page


def test_quick_add_from_the_client_section_chooses_among_the_clients_live_retainers(workspace, owner_client, retainer):
    other = make_retainer(workspace=workspace, name="Someone else's")
    data = quick_add_data(retainer, origin="client", client=retainer.client_id, next=f"/w/{workspace.slug}/clients/")
    response = owner_client.post(url(workspace, "work/new/"), data, **HX)
    page = html(response)
    assert page.lstrip().startswith('<section id="client-retainers"')
    assert "Logged 1.50 hours on Advisory" in page
    assert WorkItem.objects.get().retainer == retainer
    # Another client's retainer is not among the choices.
    data = quick_add_data(other, origin="client", client=retainer.client_id)
    page = html(owner_client.post(url(workspace, "work/new/"), data, **HX))
    assert 'id="id_retainer_error"' in page
    assert WorkItem.objects.count() == 1
    # Without JavaScript: back to where the person came from (a local URL only).
    data = quick_add_data(retainer, origin="client", client=retainer.client_id, next="https://evil.example/")
    response = owner_client.post(url(workspace, "work/new/"), data)
    assert response.status_code == 302 and response.url == url(workspace, f"retainers/{retainer.pk}/")
    data["next"] = f"/w/{workspace.slug}/clients/{retainer.client_id}/"
    assert owner_client.post(url(workspace, "work/new/"), data).url == data["next"]


def test_quick_add_from_the_client_section_without_javascript_shows_errors_on_a_page(workspace, owner_client, retainer):
    data = quick_add_data(retainer, origin="client", client=retainer.client_id, quantity="soon")
    response = owner_client.post(url(workspace, "work/new/"), data)
    assert response.status_code == 200
    assert 'id="id_quantity_error"' in html(response) and "<html" in html(response)


def test_quick_add_with_a_missing_or_foreign_retainer_is_404(workspace, other_workspace, owner_client):
    foreign = make_retainer(workspace=other_workspace)
    assert owner_client.post(url(workspace, "work/new/"), {"origin": "retainer"}).status_code == 404
    data = quick_add_data(foreign)
    assert owner_client.post(url(workspace, "work/new/"), data).status_code == 404
    data = quick_add_data(foreign, origin="client", client=foreign.client_id)
    assert owner_client.post(url(workspace, "work/new/"), data).status_code == 404
    assert not WorkItem.objects.exists()


# --- Editing and removing work -------------------------------------------------------------------


def test_edit_row_with_htmx_and_save_as_a_reversal_and_a_new_entry(workspace, owner_client, retainer):
    item = log(retainer, date(2026, 1, 5), "2", description="Draft")
    edit = url(workspace, f"retainers/{retainer.pk}/work/{item.pk}/edit/")
    row = html(owner_client.get(edit, **HX))
    assert row.lstrip().startswith(f'<tr id="work-{item.pk}">')
    assert 'value="2"' in row and 'value="Draft"' in row
    assert owner_client.get(edit).status_code == 200  # the page without JavaScript
    data = {"quantity": "3", "description": "Final", "delivered_on": "2026-01-06", "billable": "on"}
    response = owner_client.post(edit, data, **HX)
    page = html(response)
    assert page.lstrip().startswith('<section id="work-list"') and 'hx-swap-oob="true"' in page
    assert list(WorkItem.objects.filter(retainer=retainer, removed_at=None).values_list("description", "quantity")) == [
        ("Final", D("3"))
    ]
    kinds = list(LedgerEntry.objects.filter(retainer=retainer).values_list("kind", "quantity"))
    assert kinds[-2:] == [("delivery", D("-3")), ("reversal", D("2"))]
    assert balance(retainer) == D("7")


def test_edit_errors_stay_in_the_row(workspace, owner_client, retainer):
    item = log(retainer, date(2026, 1, 5), "2")
    edit = url(workspace, f"retainers/{retainer.pk}/work/{item.pk}/edit/")
    data = {"quantity": "2", "description": "x", "delivered_on": "2025-06-01"}
    response = owner_client.post(edit, data, **HX)
    assert response.status_code == 200
    assert response.headers["HX-Retarget"] == f"#work-{item.pk}" and response.headers["HX-Reswap"] == "outerHTML"
    assert 'id="id_delivered_on_error"' in html(response)
    assert LedgerEntry.objects.filter(retainer=retainer).count() == 2
    response = owner_client.post(edit, data)  # without JavaScript
    assert response.status_code == 200 and 'id="id_delivered_on_error"' in html(response)


def test_remove_reverses_the_entry_and_hides_the_row(workspace, owner_client, retainer):
    item = log(retainer, date(2026, 1, 5), "2", description="Mistake")
    remove = url(workspace, f"retainers/{retainer.pk}/work/{item.pk}/remove/")
    page = html(owner_client.post(remove, **HX))
    assert "Removed: Mistake" in page and f'id="work-{item.pk}"' not in page
    assert balance(retainer) == D("10")
    page = html(owner_client.post(remove, **HX))  # twice: the service says why
    assert "already changed or removed" in page
    assert LedgerEntry.objects.filter(kind="reversal").count() == 1


def test_work_of_another_retainer_is_404(workspace, owner_client, retainer):
    other = make_retainer(workspace=workspace)
    item = log(other, date(2026, 1, 5), "1")
    assert owner_client.get(url(workspace, f"retainers/{retainer.pk}/work/{item.pk}/edit/")).status_code == 404
    assert owner_client.post(url(workspace, f"retainers/{retainer.pk}/work/{item.pk}/remove/")).status_code == 404


# --- Deliverables -----------------------------------------------------------------------------------


@pytest.fixture
def deliverables_retainer(workspace):
    return make_retainer(
        workspace=workspace, model="deliverables", units_per_period=D("0"), deliverables=["Report", "Review"]
    )


def test_deliverable_status_moves_along_and_records_the_delivery_date(workspace, owner_client, deliverables_retainer):
    report = Deliverable.objects.get(retainer=deliverables_retainer, name="Report")
    status = url(workspace, f"retainers/{deliverables_retainer.pk}/deliverables/{report.pk}/status/")
    page = html(owner_client.post(status, {"status": "delivered"}, **HX))
    assert page.lstrip().startswith('<section id="deliverables"')
    report.refresh_from_db()
    assert (report.status, report.delivered_on) == ("delivered", date(2026, 1, 10))
    owner_client.post(status, {"status": "in_progress"})
    report.refresh_from_db()
    assert (report.status, report.delivered_on) == ("in_progress", None)
    page = html(owner_client.post(status, {"status": "lapsed"}, **HX))
    assert "Choose planned, in progress or delivered." in page


def test_deliverables_of_a_closed_period_no_longer_change(workspace, owner_client, deliverables_retainer):
    report = Deliverable.objects.get(retainer=deliverables_retainer, name="Report")
    services.close_and_open_period(retainer=deliverables_retainer, as_of=date(2026, 2, 1))
    status = url(workspace, f"retainers/{deliverables_retainer.pk}/deliverables/{report.pk}/status/")
    response = owner_client.post(status, {"status": "delivered"}, follow=True)
    assert "closed period" in html(response)
    report.refresh_from_db()
    assert report.status == "lapsed"


def test_extra_deliverable_is_added_to_the_open_period(workspace, owner_client, deliverables_retainer):
    add = url(workspace, f"retainers/{deliverables_retainer.pk}/deliverables/new/")
    page = html(owner_client.post(add, {"name": "Board deck"}, **HX))
    assert "Added Board deck." in page
    extra = Deliverable.objects.get(retainer=deliverables_retainer, name="Board deck")
    assert extra.extra and extra.period.status == "open"
    page = html(owner_client.post(add, {"name": ""}, **HX))
    assert 'id="id_name_error"' in page


# --- Lifecycle --------------------------------------------------------------------------------------


def test_pause_resume_cancel_and_undo(workspace, owner_client, retainer):
    base = url(workspace, f"retainers/{retainer.pk}/")
    assert owner_client.post(base + "pause/").url == base
    retainer.refresh_from_db()
    assert (retainer.status, retainer.paused_on) == ("paused", date(2026, 1, 10))
    page = html(owner_client.get(base))
    assert "Paused since 10 Jan 2026" in page and "Resume" in page
    response = owner_client.post(base + "pause/", follow=True)
    assert "Only an active retainer can be paused." in html(response)
    owner_client.post(base + "resume/")
    retainer.refresh_from_db()
    assert retainer.status == "active"
    owner_client.post(base + "cancel/", {"cancel": "1"})
    retainer.refresh_from_db()
    assert retainer.cancel_at_period_end
    assert "Undo cancellation" in html(owner_client.get(base))
    owner_client.post(base + "cancel/", {"cancel": "0"})
    retainer.refresh_from_db()
    assert not retainer.cancel_at_period_end


def test_end_now_asks_first_and_then_closes_the_period(workspace, owner_client, retainer):
    log(retainer, date(2026, 1, 5), "3")
    end = url(workspace, f"retainers/{retainer.pk}/end/")
    page = html(owner_client.get(end))
    assert "7.00 unused hours lapse." in page
    response = owner_client.post(end, {})
    assert response.status_code == 200 and "Tick the box to confirm" in html(response)
    retainer.refresh_from_db()
    assert retainer.status == "active"
    response = owner_client.post(end, {"confirm": "on"})
    assert response.status_code == 302
    retainer.refresh_from_db()
    assert (retainer.status, retainer.ended_on) == ("ended", date(2026, 1, 10))
    assert Period.objects.get(retainer=retainer).expired == D("7")
    response = owner_client.post(url(workspace, f"retainers/{retainer.pk}/pause/"), follow=True)
    assert "Only an active retainer can be paused." in html(response)
    assert owner_client.get(end).status_code == 302  # already ended


def test_amend_saves_terms_pending_from_the_next_period(workspace, owner_client, alice, retainer):
    data = {
        "units_per_period": "20",
        "price": "2,500",
        "billing_timing": "advance",
        "overage_policy": "bill",
        "overage_rate": "150",
        "rollover_cap": "5",
        "rollover_expiry_periods": "2",
        "renewal_notice_days": "30",
        "reason": "More hours from February",
    }
    response = owner_client.post(url(workspace, f"retainers/{retainer.pk}/amend/"), data)
    assert response.status_code == 302
    amendment = Amendment.objects.get(retainer=retainer)
    assert (amendment.effective_on, amendment.units_per_period, amendment.price_minor) == (
        date(2026, 2, 1),
        D("20"),
        250000,
    )
    assert (amendment.created_by, amendment.model, amendment.currency) == (alice, "rollover", "GBP")
    page = html(owner_client.get(url(workspace, f"retainers/{retainer.pk}/")))
    assert "Pending from 1 Feb 2026" in page
    now, later = '<td data-label="Now">', '<td data-label="From 1 Feb">'  # each figure's label, on a phone
    assert f'<th scope="row">Units per period</th>{now}10</td>{later}20</td>' in page
    assert f'<th scope="row">Fee per period</th>{now}£2,000.00</td>{later}£2,500.00</td>' in page
    retainer.refresh_from_db()
    assert retainer.units_per_period == D("10")


def test_amend_errors_rerender_the_page_with_the_form_open(workspace, owner_client, retainer):
    response = owner_client.post(url(workspace, f"retainers/{retainer.pk}/amend/"), {"units_per_period": "-1"})
    assert response.status_code == 200
    page = html(response)
    assert "<details open>" in page and 'id="id_units_per_period_error"' in page
    assert not Amendment.objects.exists()


def test_adjust_records_an_adjustment_with_its_reason(workspace, owner_client, alice, retainer):
    adjust = url(workspace, f"retainers/{retainer.pk}/adjust/")
    assert owner_client.post(adjust, {"quantity": "-1:30", "reason": "Double-counted call"}).status_code == 302
    entry = LedgerEntry.objects.get(retainer=retainer, kind="adjustment")
    assert (entry.quantity, entry.reason, entry.actor) == (D("-1.5"), "Double-counted call", alice)
    response = owner_client.post(adjust, {"quantity": "2", "reason": ""})
    assert response.status_code == 200 and 'id="id_reason_error"' in html(response)
    response = owner_client.post(adjust, {"quantity": "0", "reason": "x"})
    assert 'id="id_quantity_error"' in html(response)
    assert LedgerEntry.objects.filter(kind="adjustment").count() == 1


def test_adjust_on_an_ended_retainer_says_so(workspace, owner_client, retainer):
    services.end_retainer(retainer=retainer, on=date(2026, 1, 10))
    response = owner_client.post(url(workspace, f"retainers/{retainer.pk}/adjust/"), {"quantity": "1", "reason": "x"})
    assert response.status_code == 200 and "This retainer has ended." in html(response)


# --- Ledger and periods ----------------------------------------------------------------------------


def test_ledger_running_balance_is_per_period_in_order_of_writing(workspace, login, alice, retainer):
    log(retainer, date(2026, 1, 5), "3")
    item = log(retainer, date(2026, 1, 6), "2")
    services.remove_delivery(item=item, actor=None)
    services.close_and_open_period(retainer=retainer, as_of=date(2026, 2, 1))
    log(retainer, date(2026, 2, 3), "4")
    with time_machine.travel("2026-02-10 12:00Z", tick=False):
        response = login(alice).get(url(workspace, f"retainers/{retainer.pk}/ledger/"))
    rows = [(e.period.seq, e.kind, e.quantity, e.running_balance) for e in response.context["page"].object_list]
    assert rows == [
        (2, "rollover_in", D("7"), D("7")),
        (2, "allotment", D("10"), D("17")),
        (2, "delivery", D("-4"), D("13")),
        (1, "allotment", D("10"), D("10")),
        (1, "delivery", D("-3"), D("7")),
        (1, "delivery", D("-2"), D("5")),
        (1, "reversal", D("2"), D("7")),
        (1, "rollover_out", D("-7"), D("0")),
    ]
    page = html(response)
    reversal = LedgerEntry.objects.get(kind="reversal")
    assert f'href="#entry-{reversal.reverses_id}"' in page  # the reversal points at what it reverses
    assert f'href="#entry-{reversal.pk}"' in page  # and the original at its reversal
    assert "Period 2: 1–28 Feb 2026" in page


def test_ledger_is_paginated_by_fifty(workspace, owner_client, retainer):
    for day in range(1, 10):
        for _ in range(6):
            log(retainer, date(2026, 1, day), "0.1")
    page1 = owner_client.get(url(workspace, f"retainers/{retainer.pk}/ledger/"))
    assert len(page1.context["page"].object_list) == 50
    page2 = owner_client.get(url(workspace, f"retainers/{retainer.pk}/ledger/?page=2"))
    last = list(page2.context["page"].object_list)
    assert len(last) == 5 and last[-1].running_balance == D("4.6")
    assert owner_client.get(url(workspace, f"retainers/{retainer.pk}/ledger/?page=zzz")).status_code == 200


def test_periods_page_shows_utilisation_over_time(workspace, login, alice, retainer):
    log(retainer, date(2026, 1, 5), "5")
    services.close_and_open_period(retainer=retainer, as_of=date(2026, 2, 1))
    log(retainer, date(2026, 2, 5), "18")
    with time_machine.travel("2026-02-10 12:00Z", tick=False):
        response = login(alice).get(url(workspace, f"retainers/{retainer.pk}/periods/"))
    rows = [(r.period.seq, r.available, r.used, r.utilisation, r.overage) for r in response.context["rows"]]
    assert rows == [(2, D("15"), D("18"), 120, D("3")), (1, D("10"), D("5"), 50, D("0"))]
    page = html(response)
    assert 'role="img"' in page and "average utilisation 85%, 1 over 100%" in page


# --- Tenancy ----------------------------------------------------------------------------------------

RETAINER_URLS = [
    ("get", "retainers/{r}/"),
    ("get", "retainers/{r}/ledger/"),
    ("get", "retainers/{r}/periods/"),
    ("get", "retainers/{r}/end/"),
    ("post", "retainers/{r}/end/"),
    ("post", "retainers/{r}/pause/"),
    ("post", "retainers/{r}/resume/"),
    ("post", "retainers/{r}/cancel/"),
    ("post", "retainers/{r}/amend/"),
    ("post", "retainers/{r}/adjust/"),
    ("get", "retainers/{r}/work/{w}/edit/"),
    ("post", "retainers/{r}/work/{w}/edit/"),
    ("post", "retainers/{r}/work/{w}/remove/"),
    ("post", "retainers/{r}/deliverables/new/"),
    ("post", "retainers/{r}/deliverables/{d}/status/"),
]


@pytest.mark.parametrize(("method", "path"), RETAINER_URLS)
def test_another_workspaces_retainer_is_404_at_every_url(workspace, other_workspace, owner_client, method, path):
    foreign = make_retainer(workspace=other_workspace, model="deliverables", deliverables=["X"])
    item = log(foreign, date(2026, 1, 5), "1", billable=False)
    deliverable = Deliverable.objects.get(retainer=foreign)
    target = url(workspace, path.format(r=foreign.pk, w=item.pk, d=deliverable.pk))
    data = {"quantity": "1", "reason": "x", "status": "delivered", "confirm": "on", "name": "x", "cancel": "1"}
    response = getattr(owner_client, method)(target, data if method == "post" else None)
    assert response.status_code == 404
    foreign.refresh_from_db()
    assert foreign.status == "active" and not foreign.cancel_at_period_end
    assert LedgerEntry.objects.filter(retainer=foreign, kind="adjustment").count() == 0


@pytest.mark.parametrize(("method", "path"), RETAINER_URLS)
def test_ids_that_do_not_exist_are_404(workspace, owner_client, method, path):
    target = url(workspace, path.format(r=999999999, w=999999999, d=999999999))
    assert getattr(owner_client, method)(target).status_code == 404


def test_members_can_use_the_pages_too(workspace, member_client, retainer):
    assert member_client.get(url(workspace, f"retainers/{retainer.pk}/")).status_code == 200
    response = member_client.post(url(workspace, "work/new/"), quick_add_data(retainer), **HX)
    assert response.status_code == 200 and WorkItem.objects.count() == 1


# --- Query counts --------------------------------------------------------------------------------


def grow(retainer, workspace, n: int) -> None:
    """More of everything the retainer page lists."""
    users = [UserFactory() for _ in range(3)]
    for user in users:
        Membership.objects.create(workspace=workspace, user=user)
    for i in range(n):
        services.record_delivery(
            retainer=retainer,
            delivered_on=date(2026, 1, 1 + i % 9),
            quantity=D("0.25"),
            description=f"Item {i}",
            actor=users[i % 3],
            billable=i % 4 != 0,
        )
    services.adjust_balance(retainer=retainer, quantity=D("1"), reason="Goodwill", actor=users[0])
    services.amend_retainer(retainer=retainer, terms={"units_per_period": D("12")}, reason="More", actor=users[1])
    services.add_deliverable(retainer=retainer, name="Extra", actor=None)


def count_queries(client, target: str) -> int:
    client.get(target)  # the first visit of a workspace writes the session: warm up first
    with CaptureQueriesContext(connection) as queries:
        assert client.get(target).status_code == 200
    return len(queries)


def test_retainer_page_makes_a_fixed_number_of_queries(workspace, owner_client, retainer, django_assert_num_queries):
    grow(retainer, workspace, 2)
    target = url(workspace, f"retainers/{retainer.pk}/")
    small = count_queries(owner_client, target)
    grow(retainer, workspace, 30)
    with django_assert_num_queries(small):
        owner_client.get(target)


def test_ledger_and_periods_pages_make_a_fixed_number_of_queries(
    workspace, owner_client, retainer, django_assert_num_queries
):
    grow(retainer, workspace, 2)
    pages = [url(workspace, f"retainers/{retainer.pk}/ledger/"), url(workspace, f"retainers/{retainer.pk}/periods/")]
    counts = [count_queries(owner_client, page) for page in pages]
    grow(retainer, workspace, 30)
    services.close_and_open_period(retainer=retainer, as_of=date(2026, 2, 1))
    for page, count in zip(pages, counts, strict=True):
        with django_assert_num_queries(count):
            owner_client.get(page)


# --- The client page's section -----------------------------------------------------------------------


def section_request(workspace, user):
    request = RequestFactory().get(f"/w/{workspace.slug}/clients/1/")
    request.user = user
    request.workspace = workspace
    request.membership = Membership.objects.get(workspace=workspace, user=user)
    return request


def render_section(request, client) -> str:
    return render_to_string("delivery/_client_section.html", {"section": client_section(request, client)}, request)


def test_the_client_page_shows_the_retainers_section_first(workspace, owner_client, retainer):
    response = owner_client.get(url(workspace, f"clients/{retainer.client_id}/"))
    sections = [t.name for t in response.templates if t.name.endswith("/_client_section.html")]
    assert sections[0] == "delivery/_client_section.html"
    assert [r.pk for r in response.context["retainers_section"]["retainers"]] == [retainer.pk]


def test_client_section_shows_balances_recent_work_and_a_quick_add(workspace, alice, retainer):
    ended = make_retainer(workspace=workspace, client=retainer.client, name="Last year", starts_on=date(2025, 1, 1))
    services.end_retainer(retainer=ended, on=date(2025, 6, 1))
    for day in range(1, 13):
        log(retainer, date(2026, 1, min(day, 9)), "0.5", description=f"Task {day}")
    request = section_request(workspace, alice)
    context = client_section(request, retainer.client)
    assert [r.name for r in context["retainers"]] == ["Advisory", "Last year"]  # live first
    assert len(context["recent"]) == 10 and context["recent"][0].delivered_on == date(2026, 1, 9)
    page = render_section(request, retainer.client)
    assert '4.00 <small class="muted">of 10.00 hours</small>' in page
    assert '<span class="w-60"></span>' in page and "60%" in page
    assert f"/retainers/new/?client={retainer.client.pk}" in page
    assert f'<option value="{retainer.pk}" selected>Advisory</option>' in page
    assert "Last year</option>" not in page  # an ended retainer takes no work


def test_client_section_makes_a_fixed_number_of_queries(workspace, alice, django_assert_num_queries):
    client = ClientFactory(workspace=workspace)
    first = make_retainer(workspace=workspace, client=client)
    log(first, date(2026, 1, 5), "1")
    request = section_request(workspace, alice)
    with CaptureQueriesContext(connection) as queries:
        render_section(request, client)
    small = len(queries)
    for i in range(5):
        other = make_retainer(workspace=workspace, client=client, name=f"R{i}")
        for day in range(1, 6):
            log(other, date(2026, 1, day), "1")
    for _ in range(5):  # other clients do not count either
        make_retainer(workspace=workspace)
    with django_assert_num_queries(small):
        render_section(request, client)


# --- Strict CSP -----------------------------------------------------------------------------------


def test_every_delivery_page_obeys_the_strict_csp(workspace, owner_client, retainer):
    from tests.retainers.test_security import csp_problems

    item = log(retainer, date(2026, 1, 5), "2")
    deliverables = make_retainer(workspace=workspace, model="deliverables", deliverables=["Report"])
    make_plan(workspace)
    client_errors = quick_add_data(retainer, origin="client", client=retainer.client_id, quantity="")
    pages = {
        "detail": owner_client.get(url(workspace, f"retainers/{retainer.pk}/")),
        "deliverables detail": owner_client.get(url(workspace, f"retainers/{deliverables.pk}/")),
        "ledger": owner_client.get(url(workspace, f"retainers/{retainer.pk}/ledger/")),
        "periods": owner_client.get(url(workspace, f"retainers/{retainer.pk}/periods/")),
        "create": owner_client.get(url(workspace, f"retainers/new/?client={retainer.client_id}")),
        "create errors": owner_client.post(url(workspace, "retainers/new/"), {"model": "rollover"}),
        "end": owner_client.get(url(workspace, f"retainers/{retainer.pk}/end/")),
        "edit": owner_client.get(url(workspace, f"retainers/{retainer.pk}/work/{item.pk}/edit/")),
        "quick-add errors": owner_client.post(url(workspace, "work/new/"), quick_add_data(retainer, quantity="x")),
        "amend errors": owner_client.post(url(workspace, f"retainers/{retainer.pk}/amend/"), {}),
        "client quick-add errors": owner_client.post(url(workspace, "work/new/"), client_errors),
    }
    for label, response in pages.items():
        assert response.status_code == 200, label
        assert csp_problems(response) == [], label


# --- Payment collection ------------------------------------------------------------------------


def test_payment_collection_is_set_on_the_retainer_page(workspace, owner_client, retainer):
    page = url(workspace, f"retainers/{retainer.pk}/")
    before = html(owner_client.get(page))
    assert "Emailed to the client to pay" in before and "delivery never pauses" in before
    assert f'action="/w/{workspace.slug}/retainers/{retainer.pk}/collection/"' in before

    response = owner_client.post(
        url(workspace, f"retainers/{retainer.pk}/collection/"), {"auto_charge": "on", "pause_after_unpaid_days": "14"}
    )
    assert response.status_code == 302 and response["Location"] == page
    retainer.refresh_from_db()
    assert (retainer.auto_charge, retainer.pause_after_unpaid_days) == (True, 14)
    after = html(owner_client.get(page))
    assert "Charged to the client's saved card when issued" in after
    assert "Delivery pauses when an invoice is 14 days past due" in after

    owner_client.post(url(workspace, f"retainers/{retainer.pk}/collection/"), {"pause_after_unpaid_days": ""})
    retainer.refresh_from_db()
    assert (retainer.auto_charge, retainer.pause_after_unpaid_days) == (False, None)


@pytest.mark.parametrize(
    "typed, error",
    [("abc", "A whole number of days"), ("0", "greater than or equal to 1"), ("400", "less than or equal to 365")],
)
def test_payment_collection_refuses_bad_days_next_to_the_field(workspace, owner_client, retainer, typed, error):
    response = owner_client.post(
        url(workspace, f"retainers/{retainer.pk}/collection/"), {"auto_charge": "on", "pause_after_unpaid_days": typed}
    )
    page = html(response)
    assert response.status_code == 200 and 'id="id_pause_after_unpaid_days_error"' in page and error in page
    assert "<details open>" in page.split('id="collection"')[1]  # the form stays open on its error
    retainer.refresh_from_db()
    assert (retainer.auto_charge, retainer.pause_after_unpaid_days) == (False, None)


def test_payment_collection_of_an_ended_retainer_is_refused(workspace, owner_client, retainer):
    services.end_retainer(retainer=retainer, on=date(2026, 1, 10))
    assert "Change payment collection" not in html(owner_client.get(url(workspace, f"retainers/{retainer.pk}/")))
    response = owner_client.post(url(workspace, f"retainers/{retainer.pk}/collection/"), {"auto_charge": "on"})
    assert response.status_code == 200 and "This retainer has already ended." in html(response)
    retainer.refresh_from_db()
    assert retainer.auto_charge is False


def test_payment_collection_of_another_workspace_is_not_found(workspace, other_workspace, owner_client):
    theirs = make_retainer(workspace=other_workspace, starts_on=date(2026, 1, 1))
    response = owner_client.post(url(workspace, f"retainers/{theirs.pk}/collection/"), {"auto_charge": "on"})
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.auto_charge is False
