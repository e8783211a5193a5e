"""The client list: search, filters, health from the retainers' cached balances, sort, pages, htmx."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal as D

import pytest

from clients.models import Client
from delivery.services import end_retainer, pause_retainer, record_delivery
from tests import factories
from tests.clients.helpers import HTMX, bulk_clients, url
from tests.factories import make_retainer

pytestmark = pytest.mark.django_db

DAY = date(2026, 1, 5)  # inside make_retainer's first period


def use(retainer, hours: str) -> None:
    record_delivery(retainer=retainer, delivered_on=DAY, quantity=D(hours), description="Work", actor=None)


def names(response) -> list[str]:
    """Client names in the order the rows show them."""
    return [client.name for client, _ in response.context["rows"]]


@pytest.fixture
def health_book(workspace):
    """One client per health state, through the real services."""
    clients = {}

    def client(name: str) -> Client:
        clients[name] = factories.ClientFactory(workspace=workspace, name=name)
        return clients[name]

    use(make_retainer(client=client("Healthy Co")), "1")
    use(make_retainer(client=client("Low Co")), "8.5")  # 1.5 of 10 left: under 20%
    use(make_retainer(client=client("Over Co")), "12")  # bills overage: balance -2
    client("Bare Co")
    end_retainer(retainer=make_retainer(client=client("Ended Co")), on=DAY)  # ended: not live
    paused = make_retainer(client=client("Paused Co"))
    pause_retainer(retainer=paused, on=DAY)  # paused is still live
    both = client("Mixed Co")
    make_retainer(client=both, name="Healthy one")
    use(make_retainer(client=both, name="Nearly spent"), "9")  # the worst retainer speaks for the client
    use(make_retainer(client=client("Edge Co")), "8")  # exactly 20% left: not low
    make_retainer(
        client=client("Deliverables Co"), model="deliverables", units_per_period=D("0"), deliverables=["Report"]
    )
    return clients


@pytest.mark.parametrize(
    ("health", "expected"),
    [
        ("over", ["Over Co"]),
        ("low", ["Low Co", "Mixed Co"]),
        ("healthy", ["Deliverables Co", "Edge Co", "Healthy Co", "Paused Co"]),
        ("none", ["Bare Co", "Ended Co"]),
    ],
)
def test_health_filter_follows_the_live_retainers_balances(health_book, workspace, owner_client, health, expected):
    response = owner_client.get(url(workspace, "client_list"), {"health": health})
    assert response.status_code == 200
    assert names(response) == expected


def test_each_row_shows_health_units_left_and_a_stepped_bar(health_book, workspace, owner_client):
    response = owner_client.get(url(workspace, "client_list"), {"q": "low co"})
    html = response.content.decode()
    assert "1.50 of 10 hours left" in html
    assert 'class="w-85"' in html  # 85% used
    assert "bar-warning" in html and "Running low" in html
    response = owner_client.get(url(workspace, "client_list"), {"q": "over co"})
    html = response.content.decode()
    assert "2 hours over (of 10)" in html and 'class="w-100"' in html and "badge-danger" in html
    assert "style=" not in html


def test_bar_width_rounds_to_steps_of_five(workspace, owner_client):
    retainer = make_retainer(client=factories.ClientFactory(workspace=workspace, name="Acme"))
    use(retainer, "3.3")  # 33% → w-35
    html = owner_client.get(url(workspace, "client_list")).content.decode()
    assert "6.70 of 10 hours left" in html
    assert 'class="w-35"' in html and "33%" in html


def test_search_matches_name_billing_email_and_contacts_ignoring_case(workspace, owner_client):
    factories.ClientFactory(workspace=workspace, name="Acme Corp", billing_email="ap@acme.example")
    globex = factories.ClientFactory(workspace=workspace, name="Globex", billing_email="billing@globex.example")
    factories.ContactFactory(client=globex, name="Hank Scorpio", email="hank@globex.example")
    factories.ClientFactory(workspace=workspace, name="Initech")
    list_url = url(workspace, "client_list")
    assert names(owner_client.get(list_url, {"q": "ACME"})) == ["Acme Corp"]
    assert names(owner_client.get(list_url, {"q": "ap@acme"})) == ["Acme Corp"]
    assert names(owner_client.get(list_url, {"q": "scorpio"})) == ["Globex"]
    assert names(owner_client.get(list_url, {"q": "HANK@"})) == ["Globex"]
    assert names(owner_client.get(list_url, {"q": ".example"})) == ["Acme Corp", "Globex"]


def test_search_with_several_matching_contacts_lists_the_client_once(workspace, owner_client):
    acme = factories.ClientFactory(workspace=workspace, name="Acme")
    factories.ContactFactory(client=acme, name="Ann Smith", email="ann@acme.example")
    factories.ContactFactory(client=acme, name="Bo Smith", email="bo@acme.example")
    assert names(owner_client.get(url(workspace, "client_list"), {"q": "smith"})) == ["Acme"]


def test_status_filter_defaults_to_active(workspace, owner_client):
    factories.ClientFactory(workspace=workspace, name="Active Ltd")
    factories.ClientFactory(workspace=workspace, name="Old Ltd", status=Client.Status.ARCHIVED)
    list_url = url(workspace, "client_list")
    assert names(owner_client.get(list_url)) == ["Active Ltd"]
    assert names(owner_client.get(list_url, {"status": "archived"})) == ["Old Ltd"]
    assert names(owner_client.get(list_url, {"status": "all"})) == ["Active Ltd", "Old Ltd"]
    assert names(owner_client.get(list_url, {"status": "bogus", "sort": "bogus", "health": "x"})) == ["Active Ltd"]


def test_the_list_never_shows_another_workspaces_clients(workspace, other_workspace, owner_client):
    factories.ClientFactory(workspace=workspace, name="Mine")
    factories.ClientFactory(workspace=other_workspace, name="Theirs")
    assert names(owner_client.get(url(workspace, "client_list"), {"status": "all"})) == ["Mine"]


def test_sorts_by_name_newest_utilization_and_remaining(health_book, workspace, owner_client):
    list_url = url(workspace, "client_list")
    by_name = names(owner_client.get(list_url))
    assert by_name == sorted(by_name, key=str.lower)
    assert names(owner_client.get(list_url, {"sort": "-name"})) == by_name[::-1]
    assert names(owner_client.get(list_url, {"sort": "-created"}))[0] == "Deliverables Co"
    assert names(owner_client.get(list_url, {"sort": "created"}))[0] == "Healthy Co"
    # Most used first; clients without a units retainer come last in both directions.
    most_used = names(owner_client.get(list_url, {"sort": "-utilization"}))
    assert most_used[:5] == ["Over Co", "Mixed Co", "Low Co", "Edge Co", "Healthy Co"]
    least_used = names(owner_client.get(list_url, {"sort": "utilization"}))
    assert least_used[:2] == ["Paused Co", "Healthy Co"]
    assert set(most_used[-3:]) == set(least_used[-3:]) == {"Bare Co", "Ended Co", "Deliverables Co"}
    least_left = names(owner_client.get(list_url, {"sort": "remaining"}))
    assert least_left[:4] == ["Over Co", "Deliverables Co", "Mixed Co", "Low Co"]
    assert least_left[-2:] == ["Bare Co", "Ended Co"]


def test_pages_hold_25_clients(workspace, owner_client):
    bulk_clients(workspace, 30)
    list_url = url(workspace, "client_list")
    first = owner_client.get(list_url)
    assert len(first.context["rows"]) == 25
    assert "Page 1 of 2" in first.content.decode()
    second = owner_client.get(list_url, {"page": "2", "q": "client"})
    assert names(second) == [f"Client {n:04d}" for n in range(25, 30)]
    assert 'href="?page=1&amp;q=client"' in second.content.decode()  # the links keep the search
    assert len(owner_client.get(list_url, {"page": "99"}).context["rows"]) == 5
    assert len(owner_client.get(list_url, {"page": "x"}).context["rows"]) == 25


def test_htmx_request_gets_only_the_rows(workspace, owner_client):
    factories.ClientFactory(workspace=workspace, name="Acme")
    response = owner_client.get(url(workspace, "client_list"), {"q": "acm"}, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert "Acme" in html and "<html" not in html and 'id="client-search"' not in html
    assert "HX-Request" in response.headers["Vary"]
    restore = owner_client.get(
        url(workspace, "client_list"), {"q": "acm"}, HTTP_HX_HISTORY_RESTORE_REQUEST="true", **HTMX
    )
    assert "<html" in restore.content.decode()


def test_live_search_markup_degrades_to_a_plain_form(workspace, owner_client):
    html = owner_client.get(url(workspace, "client_list")).content.decode()
    search = re.search(r"<input type=\"search\" id=\"client-search\"[^>]*>", html, re.S).group()  # not the top bar's
    assert 'hx-trigger="input changed delay:300ms, search"' in search
    assert 'hx-target="#client-rows"' in search and 'hx-push-url="true"' in search
    assert re.search(r'<form method="get" action="/w/[^"]+/clients/"', html)
    assert 'id="client-rows"' in html


def test_empty_states_tell_no_clients_from_no_match(workspace, owner_client):
    list_url = url(workspace, "client_list")
    html = owner_client.get(list_url).content.decode()
    assert "No clients yet" in html and url(workspace, "client_create") in html
    factories.ClientFactory(workspace=workspace, name="Acme")
    html = owner_client.get(list_url, {"q": "zzz"}).content.decode()
    assert "No clients match" in html and "No clients yet" not in html
