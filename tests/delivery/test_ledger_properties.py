"""Property-based: random deliveries, removals, adjustments, amendments and closes keep the books right."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal as D

from django.db.models import Sum
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from delivery import services
from delivery.models import LedgerEntry, Period, WorkItem
from tests import factories

quantities = st.decimals(min_value=D("0.25"), max_value=D("8"), places=2)


def total(queryset) -> D:
    return queryset.aggregate(s=Sum("quantity"))["s"] or D("0")


class LedgerMachine(RuleBasedStateMachine):
    @initialize(
        model=st.sampled_from(["fixed", "rollover"]),
        policy=st.sampled_from(["bill", "carry", "refuse"]),
        units=st.decimals(min_value=D("1"), max_value=D("20"), places=2),
        # A rollover has a cap above zero and an expiry; a fixed retainer has neither (the terms constraints).
        cap=st.decimals(min_value=D("0.01"), max_value=D("15"), places=2),
        expiry=st.integers(min_value=1, max_value=3),
    )
    def start(self, model, policy, units, cap, expiry):
        if model != "rollover":
            cap = expiry = None
        workspace = factories.WorkspaceFactory()
        self.retainer = factories.make_retainer(
            workspace=workspace,
            model=model,
            overage_policy=policy,
            units_per_period=units,
            rollover_cap=cap,
            rollover_expiry_periods=expiry,
            auto_renew=True,
        )
        self.today = date(2026, 1, 1)
        self.caps = {1: cap}  # the cap in force when each period's units rolled in
        self.expiries = {1: expiry}

    def open_period(self) -> Period:
        return Period.objects.get(retainer=self.retainer, status="open")

    @rule(quantity=quantities, billable=st.booleans())
    def deliver(self, quantity, billable):
        try:
            services.record_delivery(
                retainer=self.retainer,
                delivered_on=self.today,
                quantity=quantity,
                description="w",
                actor=None,
                billable=billable,
            )
        except services.DeliveryError as error:
            assert self.retainer.overage_policy == "refuse" and "left" in str(error)

    @rule(data=st.data())
    def remove(self, data):
        items = list(WorkItem.objects.filter(retainer=self.retainer, removed_at=None, period__status="open"))
        if items:
            services.remove_delivery(item=data.draw(st.sampled_from(items)), actor=None)

    @rule(quantity=st.decimals(min_value=D("-3"), max_value=D("3"), places=2).filter(bool))
    def adjust(self, quantity):
        try:
            services.adjust_balance(retainer=self.retainer, quantity=quantity, reason="r", actor=None)
        except services.DeliveryError:
            assert self.retainer.overage_policy == "refuse"

    @rule(
        units=st.decimals(min_value=D("1"), max_value=D("20"), places=2),
        cap=st.decimals(min_value=D("0.01"), max_value=D("15"), places=2),
    )
    def amend(self, units, cap):
        terms = {"units_per_period": units}
        if self.retainer.model == "rollover":
            terms["rollover_cap"] = cap
        services.amend_retainer(retainer=self.retainer, terms=terms, reason="", actor=None)

    @rule(days=st.integers(min_value=1, max_value=70))
    def advance(self, days):
        self.today += timedelta(days=days)
        before = self.open_period().seq
        for closed in services.close_and_open_period(retainer=self.retainer, as_of=self.today):
            self.retainer.refresh_from_db()
            self.caps[closed.next_period.seq] = self.retainer.rollover_cap
            self.expiries[closed.next_period.seq] = self.retainer.rollover_expiry_periods
        assert self.open_period().end_on > self.today
        assert self.open_period().seq >= before

    @invariant()
    def balance_is_the_sum_of_entries(self):
        if not hasattr(self, "retainer"):
            return
        self.retainer.refresh_from_db()
        assert self.retainer.balance == total(LedgerEntry.objects.filter(period=self.open_period()))
        assert Period.objects.filter(retainer=self.retainer, status="open").count() == 1

    @invariant()
    def closed_periods_conserve_units(self):
        if not hasattr(self, "retainer"):
            return
        for period in Period.objects.filter(retainer=self.retainer, status="closed"):
            entries = LedgerEntry.objects.filter(period=period)
            of = lambda *kinds, entries=entries: total(entries.filter(kind__in=kinds))  # noqa: E731
            used = -total(entries.filter(work_item__isnull=False))
            adjusted = total(entries.filter(work_item__isnull=True, kind__in=["adjustment", "reversal"]))
            remaining = total(entries)
            assert remaining == 0
            allotted, rolled_in = of("allotment"), of("rollover_in")
            expired, rolled_out, overage = -of("expiry"), -of("rollover_out"), of("overage")
            assert allotted + rolled_in + adjusted + overage == used + expired + rolled_out + remaining
            assert (period.used, period.expired, period.rolled_out, period.overage) == (
                used,
                expired,
                rolled_out,
                overage,
            )
            following = Period.objects.filter(retainer=self.retainer, seq=period.seq + 1).first()
            if following is not None:
                assert total(LedgerEntry.objects.filter(period=following, kind="rollover_in")) == rolled_out

    @invariant()
    def nothing_rolls_beyond_the_cap_or_older_than_k(self):
        if not hasattr(self, "retainer"):
            return
        for period in Period.objects.filter(retainer=self.retainer, seq__gt=1):
            credits = LedgerEntry.objects.filter(period=period, kind="rollover_in", quantity__gt=0)
            cap = self.caps.get(period.seq - 1)  # the cap of the period the units rolled out of
            if cap is not None:
                assert total(credits) <= cap
            expiry = self.expiries.get(period.seq - 1)
            if expiry is not None:
                assert all(period.seq - 1 - entry.origin_seq < expiry for entry in credits)
            if self.retainer.model == "fixed":
                assert not credits.exists()


class TestLedgerProperties(LedgerMachine.TestCase, TestCase):
    settings = settings(max_examples=30, stateful_step_count=20, deadline=None, suppress_health_check=list(HealthCheck))
