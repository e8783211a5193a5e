"""Two people logging the last hour at once under the 'refuse' policy: exactly one succeeds."""

from __future__ import annotations

import threading
from datetime import date
from decimal import Decimal as D

import pytest
from django.db import close_old_connections

from delivery import services
from delivery.models import WorkItem
from tests import factories


@pytest.mark.django_db(transaction=True)
def test_two_sessions_cannot_spend_the_same_hour():
    workspace = factories.WorkspaceFactory()
    retainer = factories.make_retainer(workspace=workspace, overage_policy="refuse", units_per_period=D("1"))
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def log_last_hour() -> None:
        try:
            barrier.wait(timeout=10)
            services.record_delivery(
                retainer=retainer, delivered_on=date(2026, 1, 5), quantity=D("1"), description="Last hour", actor=None
            )
            outcomes.append("ok")
        except services.DeliveryError:
            outcomes.append("refused")
        finally:
            close_old_connections()

    threads = [threading.Thread(target=log_last_hour) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["ok", "refused"]
    assert WorkItem.objects.filter(retainer=retainer).count() == 1
    retainer.refresh_from_db()
    assert retainer.balance == D("0")
