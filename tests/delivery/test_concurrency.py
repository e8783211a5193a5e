"""Two people logging the last hour at once under the 'refuse' policy: exactly one succeeds."""

from __future__ import annotations

import threading
from datetime import date
from decimal import Decimal as D

import pytest
from django.db import close_old_connections

from delivery import services
from delivery.models import WorkItem
from retainers import tenancy
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
            with tenancy.use_workspace(retainer.workspace_id):  # as a request would: a new connection is walled
                services.record_delivery(
                    retainer=retainer,
                    delivered_on=date(2026, 1, 5),
                    quantity=D("1"),
                    description="Last hour",
                    actor=None,
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


@pytest.mark.django_db(transaction=True)
def test_approved_overage_allows_exactly_what_was_approved_under_concurrency():
    """Under "refuse" with 2 hours approved beyond a 1-hour balance, five people log an hour at once:
    exactly three succeed (the balance and the approval) and the balance ends at -2, not one unit more."""
    from delivery import approvals
    from delivery.models import OverageApproval

    workspace = factories.WorkspaceFactory()
    retainer = factories.make_retainer(workspace=workspace, overage_policy="refuse", units_per_period=D("1"))
    contact = factories.ContactFactory(client=retainer.client, workspace=workspace, portal_access=True)
    services.set_collection(
        retainer=retainer,
        auto_charge=False,
        pause_after_unpaid_days=None,
        overage_needs_approval=True,
        overage_block=D("2"),
    )
    retainer.refresh_from_db()
    approval = approvals.offer_overage(retainer=retainer)
    assert approval is not None
    approvals.answer_overage(approval=approval, approve=True, quantity=D("2"), contact=contact, via="portal")
    workers = 5
    barrier = threading.Barrier(workers)
    outcomes: list[str] = []

    def log_an_hour() -> None:
        try:
            barrier.wait(timeout=10)
            with tenancy.use_workspace(retainer.workspace_id):  # as a request would: a new connection is walled
                services.record_delivery(
                    retainer=retainer, delivered_on=date(2026, 1, 5), quantity=D("1"), description="Hour", actor=None
                )
            outcomes.append("ok")
        except services.DeliveryError:
            outcomes.append("refused")
        finally:
            close_old_connections()

    threads = [threading.Thread(target=log_an_hour) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["ok"] * 3 + ["refused"] * 2
    assert WorkItem.objects.filter(retainer=retainer).count() == 3
    retainer.refresh_from_db()
    assert retainer.balance == D("-2")
    assert OverageApproval.objects.get(pk=approval.pk).quantity == D("2")
