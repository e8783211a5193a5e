"""The consultant's main lists make the same number of queries for 10 clients or 300: what each
page costs does not grow with the data (issue 15 goal 4; bench/pages.py times them at 1,000)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.dashboard.helpers import bulk_book

pytestmark = pytest.mark.django_db

PAGES = [
    "clients:client_list",
    "billing:invoice_list",
    "clients:plan_list",
    "delivery:booking_list",
    "communication:task_list",
    "renewals:renewal_list",
]


def _count(owner_client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = owner_client.get(url)
    assert response.status_code == 200
    return len(captured)


def test_the_main_lists_make_the_same_queries_for_10_or_300_clients(workspace, owner_client, settings):
    settings.PAGE_CACHE_SECONDS = 0  # every part built: what a page costs after a change
    urls = {name: reverse(name, args=[workspace.slug]) for name in PAGES}
    bulk_book(workspace, 10, prefix="Small")
    owner_client.get(urls["clients:client_list"])  # the first request of a session writes it
    small = {name: _count(owner_client, url) for name, url in urls.items()}

    bulk_book(workspace, 290, prefix="Big")
    big = {name: _count(owner_client, url) for name, url in urls.items()}

    assert big == small
