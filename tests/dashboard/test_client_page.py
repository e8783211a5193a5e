"""The client page: the client's details and contacts, then each app's section in page order
(retainers, billing, communication, renewals), with a fixed number of queries; and its 404s.

Each section's content is tested by its app (tests/delivery, tests/billing, tests/communication,
tests/renewals); here, that the page composes them."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clients.models import Client
from tests import factories
from tests.clients.helpers import bulk_clients
from tests.factories import make_retainer

pytestmark = pytest.mark.django_db

SECTIONS = [
    "delivery/_client_section.html",
    "billing/_client_section.html",
    "communication/_client_section.html",
    "renewals/_client_section.html",
]


def page_url(workspace, client_id: int) -> str:
    return reverse("dashboard:client_detail", kwargs={"workspace_slug": workspace.slug, "client_id": client_id})


def test_client_page_shows_details_contacts_and_the_new_retainer_link(workspace, owner_client):
    client = factories.ClientFactory(workspace=workspace, name="Acme", billing_email="ap@acme.example")
    factories.ContactFactory(client=client, name="Carol Chen", email="carol@acme.example", role="COO")
    response = owner_client.get(page_url(workspace, client.pk))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Acme" in html and "ap@acme.example" in html and "Carol Chen" in html and "COO" in html
    assert 'badge-success">Active' in html
    new_retainer = reverse("delivery:retainer_create", kwargs={"workspace_slug": workspace.slug})
    assert f"{new_retainer}?client={client.pk}" in html


def test_client_page_composes_every_apps_section_in_page_order(workspace, owner_client):
    client = factories.ClientFactory(workspace=workspace, name="Acme")
    make_retainer(workspace=workspace, client=client, name="Advisory")
    response = owner_client.get(page_url(workspace, client.pk))
    assert response.status_code == 200
    used = [t.name for t in response.templates]
    assert [name for name in used if name in SECTIONS] == SECTIONS
    html = response.content.decode()
    headings = ['id="contacts"', 'id="client-retainers"', 'id="client-billing"', 'id="client-communication"']
    headings += ['id="client-renewals"']
    positions = [html.index(marker) for marker in headings]
    assert positions == sorted(positions), "sections out of page order"
    # Each section gets its own context as `section`, next to the page's `client`.
    assert response.context["retainers_section"]["retainers"][0].name == "Advisory"
    assert response.context["billing_section"]["client"] == client


def test_another_workspaces_client_page_is_404(workspace, owner_client, other_workspace):
    theirs = factories.ClientFactory(workspace=other_workspace, name="Their Client")
    assert owner_client.get(page_url(workspace, theirs.pk)).status_code == 404
    assert owner_client.get(page_url(other_workspace, theirs.pk)).status_code == 404


def _detail_queries(owner_client, url: str, django_assert_num_queries, count: int | None) -> int:
    owner_client.get(url)  # the first request of a session writes it
    if count is None:
        with CaptureQueriesContext(connection) as captured:
            assert owner_client.get(url).status_code == 200
        return len(captured)
    with django_assert_num_queries(count):
        assert owner_client.get(url).status_code == 200
    return count


# session, user, membership, client, its contacts; the workspace switcher (6); the retainers section
# (its retainers, recent work, the quick-add's retainers: 3); billing (invoices, payments, totals,
# the saved card, held first invoices: 5); communication (notes, messages, open tasks, unread count, recent sessions,
# the task form's members, the reply address: 7); renewals (1); bookings (1).
CLIENT_PAGE_QUERIES = 6 + 3 + 5 + 7 + 1 + 1


def test_client_page_makes_the_same_queries_for_10_or_500_clients(workspace, owner_client, django_assert_num_queries):
    bulk_clients(workspace, 10, prefix="Small")
    first = Client.objects.for_workspace(workspace).order_by("pk").first()
    at_10 = _detail_queries(owner_client, page_url(workspace, first.pk), django_assert_num_queries, None)
    assert at_10 == CLIENT_PAGE_QUERIES
    bulk_clients(workspace, 490, prefix="Big")
    _detail_queries(owner_client, page_url(workspace, first.pk), django_assert_num_queries, at_10)
    last = Client.objects.for_workspace(workspace).order_by("pk").last()
    _detail_queries(owner_client, page_url(workspace, last.pk), django_assert_num_queries, at_10)
