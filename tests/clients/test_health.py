"""Health (over / low / healthy) is classified in one place: the queryset methods beside live()
and Retainer.health_state, with one LOW_SHARE, and they agree on every edge."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from clients.models import LOW_SHARE, Retainer
from tests import factories

pytestmark = pytest.mark.django_db


def with_balance(workspace, name: str, *, available: str, balance: str, **terms) -> Retainer:
    retainer = factories.make_retainer(workspace=workspace, name=name, **terms)
    Retainer.objects.filter(pk=retainer.pk).update(
        period_available=D(available), balance=D(balance), period_used=D(available) - D(balance)
    )
    return Retainer.objects.get(pk=retainer.pk)


def test_queryset_methods_and_the_python_property_agree(workspace):
    assert LOW_SHARE == D("0.2")
    expected = {
        "over by one": with_balance(workspace, "over by one", available="10", balance="-1"),
        "used up": with_balance(workspace, "used up", available="10", balance="0"),
        "just low": with_balance(workspace, "just low", available="10", balance="1.99"),
        "at the line": with_balance(workspace, "at the line", available="10", balance="2"),
        "plenty": with_balance(workspace, "plenty", available="10", balance="8"),
        "reports": with_balance(
            workspace, "reports", available="0", balance="0", model="deliverables", deliverables=["Audit"]
        ),
    }
    states = {name: r.health_state for name, r in expected.items()}
    assert states == {
        "over by one": "over",
        "used up": "low",
        "just low": "low",
        "at the line": "healthy",
        "plenty": "healthy",
        "reports": "",
    }
    retainers = Retainer.objects.for_workspace(workspace).live()
    assert dict(retainers.with_health().values_list("name", "health")) == states
    assert set(retainers.over().values_list("name", flat=True)) == {"over by one"}
    assert set(retainers.low().values_list("name", flat=True)) == {"used up", "just low"}
    assert set(retainers.healthy().values_list("name", flat=True)) == {"at the line", "plenty"}
    assert set(retainers.low_or_over().values_list("name", flat=True)) == {"over by one", "used up", "just low"}
