"""The pure arithmetic of closing a period."""

from __future__ import annotations

from decimal import Decimal as D

from delivery.ledger import consume, expiring_at_close, plan_close


def close(**kwargs):
    defaults = {
        "model": "rollover",
        "overage_policy": "bill",
        "rollover_cap": None,
        "rollover_expiry_periods": None,
        "has_next": True,
    }
    return plan_close(**{**defaults, **kwargs})


def test_usage_takes_rolled_units_first_oldest_first():
    remaining, shortfall = consume({1: D("3"), 2: D("2"), 3: D("10")}, D("4"))
    assert remaining == {2: D("1"), 3: D("10")}
    assert shortfall == 0


def test_usage_beyond_every_lot_is_a_shortfall():
    assert consume({3: D("10")}, D("12.5")) == ({}, D("2.5"))


def test_negative_lot_is_settled_before_anything_else():
    assert consume({2: D("-3"), 3: D("10")}, D("4")) == ({3: D("3")}, D("0"))


def test_fixed_retainer_lapses_everything_unused():
    plan = close(seq=3, lots={3: D("10")}, used=D("4"), model="fixed")
    assert plan.expired == D("6") and plan.rolled_out == 0
    assert [(m.kind, m.quantity) for m in plan.moves] == [("expiry", D("-6"))]


def test_rollover_respects_cap_cutting_oldest_first():
    plan = close(seq=3, lots={2: D("5"), 3: D("10")}, used=D("0"), rollover_cap=D("8"))
    assert plan.expired == D("7") and plan.rolled_out == D("8")
    rolled_in = [(m.origin_seq, m.quantity) for m in plan.moves if m.in_next]
    assert rolled_in == [(3, D("8"))]


def test_rolled_units_expire_after_k_periods():
    plan = close(seq=3, lots={1: D("2"), 2: D("3"), 3: D("10")}, used=D("0"), rollover_expiry_periods=2)
    assert plan.expired == D("2")  # origin 1 has been rolled twice already
    assert sorted((m.origin_seq, m.quantity) for m in plan.moves if m.in_next) == [(2, D("3")), (3, D("10"))]


def test_overage_is_billed_or_carried_by_policy():
    billed = close(seq=2, lots={2: D("10")}, used=D("12"), overage_policy="bill")
    assert billed.overage == D("2") and not any(m.in_next for m in billed.moves)
    carried = close(seq=2, lots={2: D("10")}, used=D("12"), overage_policy="carry")
    assert carried.overage == 0
    assert [(m.kind, m.quantity) for m in carried.moves if m.in_next] == [("rollover_in", D("-2"))]


def test_last_period_rolls_nothing_and_bills_debt():
    plan = close(seq=2, lots={1: D("1"), 2: D("10")}, used=D("12"), overage_policy="carry", has_next=False)
    assert plan.overage == D("1") and plan.rolled_out == 0 and not any(m.in_next for m in plan.moves)


def test_expiring_soon_counts_only_units_that_expire_at_this_close():
    lots = {1: D("2"), 2: D("3"), 3: D("10")}
    assert expiring_at_close(seq=3, lots=lots, used=D("1"), rollover_expiry_periods=2) == D("1")
    assert expiring_at_close(seq=3, lots=lots, used=D("1"), rollover_expiry_periods=None) == 0
