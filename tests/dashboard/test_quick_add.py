"""The quick-add at the top of the dashboard: delivery's form and view, for any live retainer."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest
from django.urls import reverse

from clients.models import Retainer
from delivery import services as delivery
from delivery.models import WorkItem
from tests import factories
from tests.dashboard.helpers import HX, TODAY, dashboard_url, hx_get

pytestmark = pytest.mark.django_db


def add_url(workspace) -> str:
    return reverse("delivery:work_add", args=[workspace.slug])


def sign(workspace, client_name: str, name: str = "Advisory retainer") -> Retainer:
    client = factories.ClientFactory(workspace=workspace, name=client_name)
    return factories.make_retainer(client=client, name=name, starts_on=date(2026, 3, 1))


def data(workspace, retainer: Retainer | None, **overrides: str) -> dict[str, str]:
    return {
        "origin": "workspace",
        "retainer": str(retainer.pk) if retainer else "",
        "delivered_on": "2026-03-13",
        "quantity": "1.5",
        "description": "Strategy call",
        "billable": "on",
        "next": dashboard_url(workspace),
        **overrides,
    }


def test_the_dashboard_offers_every_live_retainer_by_client(workspace, owner_client):
    sign(workspace, "Zenith")
    acme = sign(workspace, "acme", "Support")
    paused = sign(workspace, "Beta")
    delivery.pause_retainer(retainer=paused, on=TODAY)
    ended = sign(workspace, "Gone")
    delivery.end_retainer(retainer=ended, on=TODAY)
    factories.make_retainer(workspace=factories.WorkspaceFactory(), name="Not ours")

    page = owner_client.get(dashboard_url(workspace)).content.decode()

    form = page[page.index('<form id="quick-add"') : page.index("</form>", page.index('<form id="quick-add"'))]
    assert f'hx-post="{add_url(workspace)}"' in form and f'action="{add_url(workspace)}"' in form
    assert '<input type="hidden" name="origin" value="workspace">' in form
    options = form[form.index("<select") : form.index("</select>")]
    assert '<option value="" selected>Choose a retainer</option>' in options
    assert options.index("acme · Support") < options.index("Beta · Advisory retainer (paused)")
    assert options.index("Beta") < options.index("Zenith · Advisory retainer")
    assert f'<option value="{acme.pk}">acme · Support</option>' in options
    assert "Gone" not in options and "Not ours" not in options
    assert 'id="id_retainer"' in options and "required" in options
    for label in ["Retainer", "Date", "Quantity", "What was done"]:
        assert f">{label}" in form


def test_quick_add_options_escape_names(workspace, owner_client):
    sign(workspace, '<b onclick="x()">Smith & Sons</b>', "R&D <support>")
    page = owner_client.get(dashboard_url(workspace)).content.decode()
    options = page[
        page.index('<select name="retainer"') : page.index("</select>", page.index('<select name="retainer"'))
    ]
    assert "&lt;b onclick=&quot;x()&quot;&gt;Smith &amp; Sons&lt;/b&gt; · R&amp;D &lt;support&gt;" in options
    assert "<b " not in options


@pytest.mark.parametrize("typed", ["1.5", "1:30", "90m"])
def test_htmx_quick_add_records_and_asks_the_page_to_refresh(typed, workspace, owner_client):
    retainer = sign(workspace, "Acme")

    response = owner_client.post(add_url(workspace), data(workspace, retainer, quantity=typed), **HX)

    assert response.status_code == 200
    item = WorkItem.objects.get(retainer=retainer)
    assert (item.quantity, item.delivered_on, item.description) == (Decimal("1.50"), date(2026, 3, 13), "Strategy call")
    assert json.loads(response["HX-Trigger"]) == {"work-recorded": {"retainer": retainer.pk}}
    body = response.content.decode()
    assert "<html" not in body
    assert 'id="quick-add"' in body and "Saved" in body
    assert "Logged 1.50 hours on Acme · Advisory retainer: Strategy call" in body
    assert f'<option value="{retainer.pk}" selected>' in body  # ready for the next session of the same client
    # The page's refresh then shows the new balance.
    [row] = hx_get(owner_client, workspace, "dashboard-rows").context["rows"]
    assert row.remaining == "8.50 h left"


def test_htmx_quick_add_with_errors_shows_them_and_records_nothing(workspace, owner_client):
    retainer = sign(workspace, "Acme")

    no_retainer = owner_client.post(add_url(workspace), data(workspace, None), **HX)
    bad_quantity = owner_client.post(add_url(workspace), data(workspace, retainer, quantity="lots"), **HX)

    assert no_retainer.status_code == bad_quantity.status_code == 200
    assert "HX-Trigger" not in no_retainer and "HX-Trigger" not in bad_quantity
    assert "This field is required." in no_retainer.content.decode()
    assert "Enter hours like 1.5, 1:30, 90m or 1h30." in bad_quantity.content.decode()
    assert 'aria-invalid="true"' in bad_quantity.content.decode()
    assert not WorkItem.objects.exists()


def test_a_paused_retainer_refuses_with_the_reason(workspace, owner_client):
    retainer = sign(workspace, "Acme")
    delivery.pause_retainer(retainer=retainer, on=TODAY)
    response = owner_client.post(add_url(workspace), data(workspace, retainer), **HX)
    assert "This retainer is paused: resume it to record work." in response.content.decode()
    assert not WorkItem.objects.exists()


def test_another_workspace_retainer_is_not_a_valid_choice(workspace, other_workspace, owner_client):
    theirs = factories.make_retainer(workspace=other_workspace, starts_on=date(2026, 3, 1))
    response = owner_client.post(add_url(workspace), data(workspace, theirs), **HX)
    assert "Select a valid choice" in response.content.decode()
    assert not WorkItem.objects.exists()


def test_without_javascript_it_redirects_back_to_the_dashboard(workspace, owner_client):
    retainer = sign(workspace, "Acme")
    response = owner_client.post(add_url(workspace), data(workspace, retainer))
    assert response.status_code == 302 and response.url == dashboard_url(workspace)
    page = owner_client.get(response.url).content.decode()
    assert "Logged 1.50 hours on Acme · Advisory retainer" in page


def test_without_javascript_errors_get_a_page_of_their_own(workspace, owner_client):
    retainer = sign(workspace, "Acme")
    response = owner_client.post(add_url(workspace), data(workspace, retainer, quantity=""))
    assert response.status_code == 200
    page = response.content.decode()
    assert "<h1>Record work</h1>" in page and "This field is required." in page
    assert "hx-post" not in page[page.index('<form id="quick-add"') :]
    assert f'href="{dashboard_url(workspace)}">Back</a>' in page


def test_the_page_refreshes_its_rows_and_attention_on_work_recorded(workspace, owner_client):
    sign(workspace, "Acme")
    page = owner_client.get(dashboard_url(workspace), {"sort": "-utilization"}).content.decode()
    assert 'id="attention"' in page and 'hx-trigger="work-recorded from:body" hx-target="this"' in page
    assert f'hx-get="{dashboard_url(workspace)}?sort=-utilization" hx-trigger="work-recorded from:body"' in page
