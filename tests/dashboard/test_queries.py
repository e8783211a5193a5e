"""The dashboard takes the same number of queries for 10 clients or 1,000, and no row lazy-loads."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dashboard import queries
from tests.dashboard.helpers import TODAY, bulk_book, dashboard_url, hx_get

pytestmark = pytest.mark.django_db

# Built afresh (the page cache off, as after any change in the workspace): session, user,
# membership; the quick-add's options; the rows' count and page; ten kinds of "needs attention"
# (one query each, with a window count) and the held first invoices (billing.services.held_first_invoices:
# one query, two more, the unpaid invoices and the shown clients' names, when some are held); MRR;
# collected by month; this week's bookings; the workspace switcher in base.html; the next invoices'
# approved overage (one query, below); the getting-started checklist (one query).
PAGE_QUERIES = 29
# session, user, membership; count and page; the page's next invoices (billing.preview.next_invoices:
# six queries, as the rows come with their clients, the approved overage the close would bill among
# them; seven when a period is not billed yet, as here)
ROWS_QUERIES = 12
ATTENTION_QUERIES = 14  # session, user, membership; ten kinds and the held invoices
# From the page cache: session, user, membership (with the data version), the workspace switcher.
CACHED_PAGE_QUERIES = 4
CACHED_PART_QUERIES = 3  # session, user, membership (with the data version)

VARIANTS = [
    {},
    {"sort": "-utilization"},
    {"sort": "invoice", "health": "low"},
    {"q": "00", "renewal": "upcoming", "sort": "-renewal"},
    {"renewal": "none", "sort": "days"},
    {"page": "2", "sort": "remaining"},
]


def _count(owner_client, url: str, params: dict, **headers: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = owner_client.get(url, params, **headers)
    assert response.status_code == 200
    return len(captured)


@pytest.mark.parametrize("params", VARIANTS)
def test_dashboard_makes_the_same_queries_for_10_or_1000_clients(
    params, workspace, owner_client, django_assert_num_queries, settings
):
    settings.PAGE_CACHE_SECONDS = 0  # every part built: what a page costs after a change
    url = dashboard_url(workspace)
    bulk_book(workspace, 10, prefix="Small")
    owner_client.get(url)  # the first request of a session writes it
    at_10 = _count(owner_client, url, params)
    rows_at_10 = _count(owner_client, url, params, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="dashboard-rows")
    attention_at_10 = _count(owner_client, url, {}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="attention")
    # Sorted by the next invoice: one query more, the closing invoices the preview decides (its own
    # queries too when there are any: billing.preview.IssueOnSql.resolve; none in an unbilled book).
    by_invoice = int(params.get("sort", "").lstrip("-") == "invoice")
    assert (at_10, rows_at_10, attention_at_10) == (
        PAGE_QUERIES + by_invoice,
        ROWS_QUERIES + by_invoice,
        ATTENTION_QUERIES,
    )

    bulk_book(workspace, 990, prefix="Big")
    with django_assert_num_queries(at_10):
        page = owner_client.get(url, params)
    with django_assert_num_queries(rows_at_10):
        rows = hx_get(owner_client, workspace, "dashboard-rows", params)
    with django_assert_num_queries(attention_at_10):
        attention = hx_get(owner_client, workspace, "attention")
    assert page.status_code == rows.status_code == attention.status_code == 200
    assert page.context["rows"] and rows.context["rows"]
    if not {"q", "health", "renewal"} & set(params):
        assert len(page.context["rows"]) == 100  # a full page: every row ran every subquery
    for kind in attention.context["attention"]:
        if kind.key == "held":  # the book has no renewed terms: tests/renewals/test_overlap.py holds invoices
            continue
        assert kind.count > len(kind.items) == 5, kind.key


def test_a_cached_dashboard_makes_four_queries_at_any_size(workspace, owner_client):
    url = dashboard_url(workspace)
    owner_client.get(url)  # the first request of a session writes it
    for added, prefix in ((10, "Small"), (990, "Big")):
        bulk_book(workspace, added, prefix=prefix)  # moves the data version: every part is built again
        assert _count(owner_client, url, {}) == PAGE_QUERIES  # the data version comes with the membership
        assert _count(owner_client, url, {}) == CACHED_PAGE_QUERIES
        for target in ("dashboard-rows", "attention"):
            hx_get(owner_client, workspace, target)
            assert _count(owner_client, url, {}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET=target) == CACHED_PART_QUERIES


def test_rows_and_attention_need_no_lazy_loads(workspace):
    """The querysets run with FETCH_RAISE: touching anything not selected raises instead of querying."""
    bulk_book(workspace, 60)
    for retainer in queries.retainer_rows(workspace)[:100]:
        assert retainer.client.name and retainer.health is not None
    for queryset in [
        queries.over_allotment(workspace),
        queries.low_balance(workspace),
        queries.renewals_to_propose(workspace, today=TODAY),
    ]:
        rows, count = queries.capped(queryset, 5)
        assert count and all(r.client.name for r in rows)
    for queryset in [
        queries.overdue_invoices(workspace, today=TODAY),
        queries.undelivered_invoices(workspace),
        queries.credit_balances(workspace),
    ]:
        rows, count = queries.capped(queryset, 5)
        assert count and all(i.client.name for i in rows)
    rows, count = queries.capped(queries.failed_refunds(workspace, now=timezone.now()), 5)
    assert count and all(r.client.name and r.invoice.number for r in rows)
    rows, count = queries.capped(queries.tasks_due(workspace, today=TODAY), 5)
    assert count and all(t.client.name and t.assignee is None for t in rows)
