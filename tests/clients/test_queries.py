"""Query counts of the client list do not grow with the number of clients. (The client page's: tests/dashboard/test_client_page.py.)"""

from __future__ import annotations

import pytest
from django.db import models
from django.db.models import Prefetch

from clients.models import Retainer
from clients.views import clients_with_health
from tests.clients.helpers import bulk_clients, url

pytestmark = pytest.mark.django_db

# session, user, membership; count, the page of clients, their live retainers (prefetch); the
# workspace switcher in base.html
LIST_QUERIES = 7


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
            assert retainer.client_id == client.pk and retainer.utilisation is not None
