"""retainers.bulk: the set-based writes of the billing run write what the ORM's own would."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal as D

import pytest
from django.db import DataError, connection, transaction
from django.forms.models import model_to_dict

from clients.models import Retainer
from delivery.models import LedgerEntry, Period
from retainers import audit
from retainers.bulk import insert_all, update_each
from retainers.models import AuditEvent
from tests import factories

pytestmark = pytest.mark.django_db

WHEN = datetime.fromisoformat("2026-03-01T09:30:00+00:00")


def _entries(period: Period, *, reason: str = "Allotment") -> list[LedgerEntry]:
    # Related objects, not ids (as the close builds them), and a choices member for `kind`.
    return [
        LedgerEntry(
            workspace_id=period.workspace_id,
            retainer=period.retainer,
            period=period,
            kind=LedgerEntry.Kind.ADJUSTMENT,
            quantity=D(quantity),
            origin_seq=period.seq,
            reason=reason,
            created_at=WHEN,
        )
        for quantity in ("1.50", "-0.25", "3")
    ]


def _rows(objects) -> list[dict]:
    return [model_to_dict(type(obj).objects.get(pk=obj.pk), exclude=["id"]) for obj in objects]


def test_insert_all_writes_what_bulk_create_writes_and_sets_the_keys(workspace, django_assert_num_queries):
    period = Period.objects.get(retainer=factories.make_retainer(workspace=workspace))
    ours, theirs = _entries(period), _entries(period)
    with django_assert_num_queries(1):
        insert_all(ours)
    LedgerEntry.objects.bulk_create(theirs)
    assert all(entry.pk and not entry._state.adding for entry in ours)
    assert len({entry.pk for entry in ours}) == 3
    assert _rows(ours) == _rows(theirs)
    assert [e.quantity for e in LedgerEntry.objects.filter(pk__in=[e.pk for e in ours]).order_by("pk")] == [
        D("1.50"),
        D("-0.25"),
        D("3.00"),
    ]


def test_insert_all_prepares_values_that_are_not_stored_as_they_are(workspace):
    # JSON, an IP address, a related object for its id, a None: each as bulk_create writes it.
    retainer = factories.make_retainer(workspace=workspace)
    events = [
        audit.event(workspace=workspace, actor=None, action="x.tested", target=retainer, changes={"a": [1, "b"]}),
        audit.event(workspace=workspace.pk, actor=None, action="x.tested", summary="no target"),
    ]
    twins = [
        audit.event(workspace=workspace, actor=None, action="x.tested", target=retainer, changes={"a": [1, "b"]}),
        audit.event(workspace=workspace.pk, actor=None, action="x.tested", summary="no target"),
    ]
    for ours, theirs in zip(events, twins, strict=True):
        theirs.created_at = ours.created_at
    insert_all(events)
    AuditEvent.objects.bulk_create(twins)
    assert _rows(events) == _rows(twins)
    assert AuditEvent.objects.get(pk=events[0].pk).changes == {"a": [1, "b"]}


def test_insert_all_refuses_an_unsaved_parent_and_a_value_too_long(workspace):
    period = Period.objects.get(retainer=factories.make_retainer(workspace=workspace))
    orphan = Period(workspace_id=workspace.pk, retainer=period.retainer, seq=9, anchor_index=9)
    [entry] = _entries(period)[:1]
    entry.period = orphan
    with pytest.raises(ValueError, match="unsaved"):
        insert_all([entry])
    with pytest.raises(DataError), transaction.atomic():
        insert_all(_entries(period, reason="x" * 256))  # varchar(255): refused, not cut short
    assert not LedgerEntry.objects.filter(reason__startswith="xxx").exists()


def test_insert_all_with_nothing_sends_nothing(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert insert_all([]) == []


def test_update_each_writes_each_objects_fields_in_one_statement(workspace, django_assert_num_queries):
    first = factories.make_retainer(
        workspace=workspace, model="deliverables", units_per_period=D("0"), deliverables=["Report"]
    )
    second = factories.make_retainer(workspace=workspace, model="fixed")
    first.balance, first.period_used = D("7.25"), D("2.75")
    second.balance, second.period_used = D("-1.00"), D("11.00")
    first.deliverables, first.status = ["Report", "Review"], Retainer.Status.PAUSED
    first.name = "must not be written"  # not among the fields
    with django_assert_num_queries(1):
        update_each([first, second], ["balance", "period_used", "deliverables", "status"])
    rows = {r.pk: r for r in Retainer.objects.filter(pk__in=[first.pk, second.pk])}
    assert (rows[first.pk].balance, rows[first.pk].period_used) == (D("7.25"), D("2.75"))
    assert (rows[second.pk].balance, rows[second.pk].period_used) == (D("-1.00"), D("11.00"))
    assert rows[first.pk].deliverables == ["Report", "Review"]
    assert rows[first.pk].status == "paused" and rows[second.pk].status == "active"
    assert rows[first.pk].name == "Advisory retainer"


def test_update_each_writes_an_object_listed_twice_with_its_last_values(workspace):
    period = Period.objects.get(retainer=factories.make_retainer(workspace=workspace))
    stale = Period.objects.get(pk=period.pk)
    stale.invoice_held_on, period.invoice_held_on = date(2026, 1, 2), date(2026, 1, 3)
    update_each([stale, period], ["invoice_held_on"])
    assert Period.objects.get(pk=period.pk).invoice_held_on == date(2026, 1, 3)


def test_update_each_refuses_a_value_too_long_rather_than_cutting_it(workspace):
    retainer = factories.make_retainer(workspace=workspace)
    retainer.status = "x" * 40
    with pytest.raises(DataError), transaction.atomic():
        update_each([retainer], ["status"])
    assert Retainer.objects.get(pk=retainer.pk).status == "active"


def test_update_each_with_nothing_sends_nothing(django_assert_num_queries):
    with django_assert_num_queries(0):
        update_each([], ["status"])
    assert connection.in_atomic_block  # the test's own transaction, untouched
