"""The client page: a summary of where the relationship stands, then tabs (Work, Billing,
Communication, Renewals, Timeline), each a URL of its own; htmx swaps only the tabs; each tab's
lists are paginated in its own URL; a fixed number of queries however much data there is; and
its 404s.

Each section's content is tested by its app (tests/delivery, tests/billing, tests/communication,
tests/renewals); here, that the page composes them and that the summary states the owners' figures."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing.preview import next_invoice
from billing.selectors import SECTION_ROWS as INVOICE_ROWS
from clients.models import Client
from communication.models import Message, Note, Task
from delivery import services as delivery
from delivery.selectors import RECENT_DELIVERIES
from tests import factories
from tests.clients.helpers import bulk_clients
from tests.consistency.test_surfaces_agree import figures
from tests.dashboard.helpers import NOW, TODAY, make_invoice, make_renewal
from tests.factories import make_retainer

pytestmark = pytest.mark.django_db

TABS = {
    "work": ["delivery/_client_section.html", "delivery/booking/_client_section.html"],
    "billing": ["billing/_client_section.html"],
    "communication": ["clients/_contacts.html", "communication/_client_section.html"],
    "renewals": ["renewals/_client_section.html"],
    "timeline": ["dashboard/_client_timeline.html"],
}
SECTIONS = {name for names in TABS.values() for name in names}
TABS_HX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "client-tabs"}


def page_url(workspace, client_id: int, tab: str | None = None) -> str:
    name = f"dashboard:client_{tab}" if tab else "dashboard:client_detail"
    return reverse(name, kwargs={"workspace_slug": workspace.slug, "client_id": client_id})


def current_tab(html: str) -> list[str]:
    """The labels of the tabs marked as the current page."""
    return re.findall(r'<a id="client-tab-\w+" [^>]*aria-current="page">(\w+)</a>', html)


def test_client_page_shows_the_summary_and_the_work_tab(workspace, owner_client):
    client = factories.ClientFactory(workspace=workspace, name="Acme", billing_email="ap@acme.example")
    make_retainer(workspace=workspace, client=client, name="Advisory")
    response = owner_client.get(page_url(workspace, client.pk))
    html = response.content.decode()
    assert response.status_code == 200
    assert 'badge-success">Active' in html and "Where things stand" in html
    assert current_tab(html) == ["Work"]
    used = [t.name for t in response.templates if t.name in SECTIONS]
    assert used == TABS["work"]
    new_retainer = reverse("delivery:retainer_create", kwargs={"workspace_slug": workspace.slug})
    assert f"{new_retainer}?client={client.pk}" in html
    assert response.context["retainers_section"]["retainers"][0].name == "Advisory"


@pytest.mark.parametrize("tab", list(TABS))
def test_each_tab_is_a_page_of_its_own_with_the_summary(tab, workspace, owner_client):
    client = factories.ClientFactory(workspace=workspace, name="Acme", billing_email="ap@acme.example")
    factories.ContactFactory(client=client, name="Carol Chen", email="carol@acme.example", role="COO")
    response = owner_client.get(page_url(workspace, client.pk, tab))
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" in html and 'id="client-summary"' in html
    assert current_tab(html) == [tab.capitalize()]
    assert [t.name for t in response.templates if t.name in SECTIONS] == TABS[tab]
    assert html[html.index('id="client-tabs"') :].count('aria-current="page"') == 1  # one tab is this page
    if tab == "billing":
        assert "ap@acme.example" in html
    if tab == "communication":
        assert "Carol Chen" in html and "COO" in html


@pytest.mark.parametrize("tab", list(TABS))
def test_with_htmx_a_tab_swaps_only_the_tabs(tab, workspace, owner_client):
    client = factories.ClientFactory(workspace=workspace, name="Acme")
    response = owner_client.get(page_url(workspace, client.pk, tab), **TABS_HX)
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html and 'id="client-summary"' not in html
    assert current_tab(html) == [tab.capitalize()]
    assert f'data-tab="{tab}"' in html
    title = re.search(r"<title>(.*?)</title>", html)[1]  # htmx puts it on the document
    assert title.startswith("Acme · " if tab == "work" else f"{tab.capitalize()} · Acme · ")


def test_a_history_restore_gets_the_whole_page(workspace, owner_client):
    """Back and forward: htmx asks for the whole page when its history cache misses."""
    client = factories.ClientFactory(workspace=workspace, name="Acme")
    response = owner_client.get(
        page_url(workspace, client.pk, "billing"), HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true"
    )
    html = response.content.decode()
    assert "<html" in html and current_tab(html) == ["Billing"]


def test_the_summary_states_each_owners_figures(workspace, owner_client, alice):
    client = factories.ClientFactory(workspace=workspace, name="Acme")
    carol = factories.ContactFactory(client=client, name="Carol Chen")
    retainer = make_retainer(workspace=workspace, client=client, name="Advisory", starts_on=TODAY.replace(day=1))
    delivery.record_delivery(
        retainer=retainer, delivered_on=TODAY, quantity=Decimal("2.5"), description="Workshop", actor=alice
    )
    make_invoice(client, due_on=TODAY - timedelta(days=3), total=120000)  # overdue
    make_invoice(client, due_on=TODAY + timedelta(days=10), total=30000)
    make_invoice(client, status="paid", due_on=TODAY - timedelta(days=30), total=99900)
    Message.objects.create(workspace=workspace, client=client, body="Thanks!", sent_by_contact=carol, created_at=NOW)
    Task.objects.create(workspace=workspace, client=client, title="Call", due_at=NOW - timedelta(days=1))
    Task.objects.create(workspace=workspace, client=client, title="Plan", due_at=NOW + timedelta(days=1))
    Task.objects.create(workspace=workspace, client=client, title="Old", due_at=NOW, status=Task.Status.DONE)

    html = owner_client.get(page_url(workspace, client.pk, "renewals")).content.decode()
    summary = html[html.index('id="client-summary"') : html.index('id="client-tabs"')]
    shown = {(f.name, f.retainer): f.text for f in figures(summary)}

    retainer.refresh_from_db()
    preview = next_invoice(retainer, today=TODAY)
    assert preview is not None
    assert shown["remaining", retainer.pk] == "7.50 h left"  # 10 − 2.5, the cached balance
    assert shown["utilization", retainer.pk] == "25%"  # retainers.units.utilisation_percent
    assert shown["days-left", retainer.pk] == str((preview.period_end_on - TODAY).days)
    assert shown["next-invoice", retainer.pk].startswith(f"£{Decimal(preview.total_minor) / 100:,.2f}")
    assert shown["next-invoice-on", retainer.pk] == f"{preview.issue_on.day} {preview.issue_on:%b %Y}"
    assert shown["outstanding", None] == "£1,500.00"  # the two open ones
    assert shown["overdue", None] == "£1,200.00 overdue"
    assert shown["open-tasks", None] == "2" and shown["overdue-tasks", None] == "1 overdue"
    assert "Message 14 Mar 2026 from Carol Chen" in summary
    assert "Work 14 Mar 2026 on Advisory" in summary
    assert "Not opened yet" in summary  # the renewal state, as the dashboard row says it


def test_the_summary_of_a_client_without_anything(workspace, owner_client):
    client = factories.ClientFactory(workspace=workspace, name="Quiet")
    html = owner_client.get(page_url(workspace, client.pk)).content.decode()
    assert "No retainer in force." in html and "No open invoices" in html and "None yet" in html


def test_the_deliveries_are_paginated_in_the_work_tabs_url(workspace, owner_client, alice):
    client = factories.ClientFactory(workspace=workspace, name="Acme")
    retainer = make_retainer(
        workspace=workspace,
        client=client,
        name="Advisory",
        units_per_period=Decimal("100"),
        starts_on=TODAY.replace(day=1),
    )
    for n in range(RECENT_DELIVERIES + 2):
        delivery.record_delivery(
            retainer=retainer, delivered_on=TODAY, quantity=Decimal("1"), description=f"Task {n:02d}", actor=alice
        )
    work = page_url(workspace, client.pk, "work")
    first = owner_client.get(page_url(workspace, client.pk)).content.decode()
    assert f'href="{work}?page=2"' in first and "Task 11" in first and "Task 00" not in first
    second = owner_client.get(work, {"page": "2"}, **TABS_HX).content.decode()
    assert "Task 00" in second and "Task 11" not in second and f'href="{work}?page=1"' in second
    for junk in ("99", "x", "-1"):  # out of range or not a number: a page, never an error
        assert owner_client.get(work, {"page": junk}).status_code == 200


def test_invoices_and_payments_have_pages_of_their_own_in_the_billing_tab(workspace, owner_client):
    client = factories.ClientFactory(workspace=workspace, name="Acme")
    for n in range(INVOICE_ROWS + 1):
        make_invoice(client, due_on=TODAY + timedelta(days=n), number=f"2026-{n:04d}")
    billing = page_url(workspace, client.pk, "billing")
    first = owner_client.get(billing).content.decode()
    assert f'href="{billing}?page=2"' in first
    second = owner_client.get(billing, {"page": "2"}).content.decode()
    assert second.count('data-figure="status"') == 1 and current_tab(second) == ["Billing"]


def test_renewals_are_paginated_in_their_tab(workspace, owner_client):
    client = factories.ClientFactory(workspace=workspace, name="Acme")
    for n in range(11):
        make_renewal(make_retainer(workspace=workspace, client=client, name=f"Term {n:02d}"))
    renewals = page_url(workspace, client.pk, "renewals")
    first = owner_client.get(renewals).content.decode()
    assert f'href="{renewals}?page=2"' in first
    second = owner_client.get(renewals, {"page": "2"}).content.decode()
    assert second.count("renewals/") >= 1 and 'href="' + renewals + '?page=1"' in second


@pytest.mark.parametrize("tab", [None, *TABS])
def test_another_workspaces_client_page_is_404(tab, workspace, owner_client, other_workspace):
    theirs = factories.ClientFactory(workspace=other_workspace, name="Their Client")
    assert owner_client.get(page_url(workspace, theirs.pk, tab)).status_code == 404
    assert owner_client.get(page_url(other_workspace, theirs.pk, tab)).status_code == 404


def _queries(owner_client, url: str, **headers) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert owner_client.get(url, **headers).status_code == 200
    return len(captured)


def _fill(client, alice, n: int) -> None:
    """n more of everything the page lists: work, invoices, notes, messages, tasks, renewals."""
    workspace = client.workspace
    retainer = make_retainer(
        workspace=workspace,
        client=client,
        name=f"Term {n}",
        units_per_period=Decimal("100"),
        starts_on=TODAY.replace(day=1),
    )
    make_renewal(retainer)
    for k in range(n):
        delivery.record_delivery(
            retainer=retainer, delivered_on=TODAY, quantity=Decimal("1"), description=f"Work {k}", actor=alice
        )
        make_invoice(client, due_on=TODAY - timedelta(days=k))
    Note.objects.bulk_create(Note(workspace=workspace, client=client, body=f"Note {k}", author=alice) for k in range(n))
    Message.objects.bulk_create(Message(workspace=workspace, client=client, body=f"M {k}") for k in range(n))
    Task.objects.bulk_create(Task(workspace=workspace, client=client, title=f"T {k}", due_at=NOW) for k in range(n))


# session, user, membership, client (4); the workspace switcher's (2); the summary: the retainers in
# force (1), billing.preview's next invoices (6 with a live retainer: it reuses the rows' clients), outstanding money (1), open
# tasks (1), the last message (1) and the last work (1); the Work tab: retainers (1), the
# deliveries' count and page (2), the quick-add's retainers (1), bookings (1).
CLIENT_PAGE_QUERIES = 6 + (1 + 6 + 1 + 1 + 1 + 1) + (1 + 2 + 1 + 1)


@pytest.mark.parametrize("tab", [None, *TABS])
def test_each_tab_makes_the_same_queries_however_much_data(tab, workspace, owner_client, alice):
    bulk_clients(workspace, 10, prefix="Small")
    client = factories.ClientFactory(workspace=workspace, name="Acme")
    _fill(client, alice, 1)
    url = page_url(workspace, client.pk, tab)
    owner_client.get(url)  # the first request of a session writes it
    small, small_tabs = _queries(owner_client, url), _queries(owner_client, url, **TABS_HX)
    if tab is None:
        assert small == CLIENT_PAGE_QUERIES
    bulk_clients(workspace, 490, prefix="Big")
    _fill(client, alice, 30)
    assert _queries(owner_client, url) == small
    assert _queries(owner_client, url, **TABS_HX) == small_tabs
    last = Client.objects.for_workspace(workspace).order_by("pk").last()
    assert _queries(owner_client, page_url(workspace, last.pk, tab)) <= small
