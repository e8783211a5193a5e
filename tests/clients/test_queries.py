"""Query counts of the list and the client page do not grow with the number of clients."""

from __future__ import annotations

import pytest
from django.db import connection, models
from django.db.models import Prefetch
from django.test.utils import CaptureQueriesContext

from clients.models import Client, Retainer
from clients.views import clients_with_health
from tests.clients.helpers import bulk_clients, url

pytestmark = pytest.mark.django_db

# session, user, membership; count, the page of clients, their live retainers (prefetch); the
# workspace switcher in base.html
LIST_QUERIES = 7
# The client page: session, user, membership, client, contacts, plus the fixed queries of each
# section other apps register on the hub; so it is measured at 10 clients and required at 500.


@pytest.mark.parametrize("size", [10, 500])
@pytest.mark.parametrize(
    "params", [{}, {"q": "client", "health": "low", "sort": "-utilization"}, {"sort": "remaining"}, {"page": "3"}]
)
def test_client_list_makes_the_same_queries_for_10_or_500_clients(
    size, params, workspace, owner_client, django_assert_num_queries
):
    bulk_clients(workspace, size)
    list_url = url(workspace, "client_list")
    owner_client.get(list_url)  # the first request of a session writes it
    with django_assert_num_queries(LIST_QUERIES):
        response = owner_client.get(list_url, params)
    assert response.status_code == 200
    assert response.context["rows"]


@pytest.mark.parametrize("size", [10, 500])
def test_client_list_rows_need_no_lazy_loads(size, workspace):
    """The rows' template reads only annotations and the prefetched retainers: no fetch happens per row."""
    bulk_clients(workspace, size)
    live = Retainer.objects.for_workspace(workspace).live().fetch_mode(models.FETCH_RAISE)
    clients = (
        clients_with_health(workspace)
        .fetch_mode(models.FETCH_RAISE)
        .prefetch_related(Prefetch("retainers", queryset=live, to_attr="live_retainers"))
        .order_by("name")[:25]
    )
    for client in clients:
        assert client.health and client.contact_count == 2
        for retainer in client.live_retainers:
            assert retainer.client_id == client.pk and retainer.utilization is not None


def _detail_queries(workspace, owner_client, client: Client, django_assert_num_queries, count: int | None) -> int:
    detail_url = url(workspace, "client_detail", client_id=client.pk)
    owner_client.get(detail_url)
    if count is None:
        with CaptureQueriesContext(connection) as captured:
            assert owner_client.get(detail_url).status_code == 200
        return len(captured)
    with django_assert_num_queries(count):
        assert owner_client.get(detail_url).status_code == 200
    return count


def test_client_page_makes_the_same_queries_for_10_or_500_clients(workspace, owner_client, django_assert_num_queries):
    bulk_clients(workspace, 10, prefix="Small")
    first = Client.objects.for_workspace(workspace).order_by("pk").first()
    at_10 = _detail_queries(workspace, owner_client, first, django_assert_num_queries, None)
    assert at_10 == 6  # session, user, membership, client, its contacts; the workspace switcher
    bulk_clients(workspace, 490, prefix="Big")
    _detail_queries(workspace, owner_client, first, django_assert_num_queries, at_10)
    last = Client.objects.for_workspace(workspace).order_by("pk").last()
    _detail_queries(workspace, owner_client, last, django_assert_num_queries, at_10)
