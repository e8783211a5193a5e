"""An in-memory mirror of delivery.services for one retainer, producing the rows they would write.

Bench workspaces are too many to seed through the per-row services (each call locks,
reads and writes a handful of rows). `MemoryBooks` keeps a retainer's state in Python,
follows the services step by step (same period bounds from `period_bounds`, same closing
arithmetic from `ledger.lots_of` / `ledger.plan_close`, same order of entries, same cache
fields), and hands the finished rows to `demo.bench` to be written with COPY.

When a service changes, this mirror must change with it: tests/demo replays bulk-written
retainers through the real services and fails on any difference.

Timestamps are made up from the business dates by the same `demo.story.Clock` the demo's
services are given (work logged at 17:00 on its day, periods closed at 01:00 on their end
date, in the workspace's zone), so the history reads in order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from clients.models import Amendment, Retainer, RetainerTerms
from delivery import ledger
from delivery.models import Deliverable, LedgerEntry, Period, WorkItem
from delivery.periods import period_bounds
from delivery.services import MAX_HOURS_UNCONFIRMED, MAX_SESSIONS_UNCONFIRMED, term_end
from demo.story import Clock, Story

if TYPE_CHECKING:
    from django.db.models import Model

    from demo.bench import Batch

ZERO = ledger.ZERO
CENT = Decimal("0.01")
TERM_FIELDS = RetainerTerms.TERM_FIELDS


def normalized_terms(terms: dict[str, Any]) -> dict[str, Any]:
    """Terms as the database gives them back: decimals with two places (they show in ledger reasons)."""
    terms = dict(terms)
    for name in ("units_per_period", "rollover_cap"):
        if terms.get(name) is not None:
            terms[name] = Decimal(terms[name]).quantize(CENT)
    return terms


def term_values(terms: dict[str, object]) -> tuple:
    return tuple(json.dumps(terms[name]) if name == "deliverables" else terms[name] for name in TERM_FIELDS)


@dataclass(slots=True, eq=False)
class PeriodRow:
    id: int
    seq: int
    anchor_index: int
    start_on: date
    end_on: date
    allotted: Decimal
    rolled_in: Decimal
    status: str = "open"
    used: Decimal = ZERO
    expired: Decimal = ZERO
    rolled_out: Decimal = ZERO
    overage: Decimal = ZERO
    closed_at: datetime | None = None
    # (kind, quantity, origin_seq, is_delivery) of its entries, as `ledger.lots_of` takes them.
    entries: list[tuple[str, Decimal, int, bool]] = field(default_factory=list)
    balance: Decimal = ZERO
    delivered: Decimal = ZERO  # sum of the entries of work items (deliveries and their reversals)
    deliverables: list[DeliverableRow] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class DeliverableRow:
    id: int
    period_id: int
    name: str
    created_at: datetime
    status: str = "planned"
    extra: bool = False
    carried_from_id: int | None = None
    delivered_on: date | None = None


@dataclass(slots=True, eq=False)
class ItemRow:
    id: int
    period: PeriodRow
    delivered_on: date
    quantity: Decimal
    description: str
    billable: bool
    deliverable: DeliverableRow | None
    replaces_id: int | None
    created_at: datetime
    entry_id: int | None = None  # its delivery entry, if billable
    removed_at: datetime | None = None


@dataclass(slots=True, eq=False)
class AmendmentRow:
    id: int
    terms: dict[str, object]
    effective_on: date
    reason: str
    created_at: datetime
    applied_at: datetime | None = None


class MemoryBooks:
    """One retainer's books, kept the way delivery.services keeps them. See the module docstring."""

    def __init__(
        self,
        *,
        batch: Batch,
        workspace_id: int,
        client_id: int,
        plan_id: int | None,
        name: str,
        terms: dict[str, object],
        actor_id: int | None,
        zone: ZoneInfo,
    ) -> None:
        self.batch, self.workspace_id, self.client_id, self.plan_id = batch, workspace_id, client_id, plan_id
        self.name, self.t, self.actor_id, self.zone = name, normalized_terms(terms), actor_id, zone
        self.id = batch.next_id(Retainer)
        self.periods: list[PeriodRow] = []
        self.items: list[ItemRow] = []
        self.amendments: list[AmendmentRow] = []
        self.entries: list[tuple] = []
        self.clock = Clock(zone)

    def stamp(self, day: date, hour: int) -> datetime:
        """A made-up creation time on `day`, the same as the services are given (demo.story.Clock)."""
        return self.clock.at(day, hour)

    # --- the Books protocol ---

    def start(self, story: Story) -> None:
        self.starts_on = self.anchor_on = story.starts_on
        self.term_ends_on = term_end(story.starts_on, self.t["cadence"], self.t["term_periods"])
        self.status, self.cancel_at_period_end = Retainer.Status.ACTIVE, False
        self.paused_on: date | None = None
        self.ended_on: date | None = None
        self.created_at = self.stamp(story.starts_on, 9)
        self.open: PeriodRow | None = self._open_period(seq=1, anchor_index=0, rolled=[], at=self.created_at)

    def terms(self) -> dict[str, object]:
        return self.t

    def open_period(self) -> tuple[int, date, date]:
        assert self.open is not None  # until the retainer ends
        return self.open.seq, self.open.start_on, self.open.end_on

    def deliverables(self) -> list[DeliverableRow]:
        assert self.open is not None  # until the retainer ends
        return self.open.deliverables

    def record(
        self,
        *,
        on: date,
        quantity: Decimal,
        description: str,
        billable: bool,
        deliverable: DeliverableRow | None,
        replaces: ItemRow | None = None,
    ) -> ItemRow | None:
        """services.record_delivery; None where it would refuse (the "refuse" policy)."""
        quantity = self._checked(quantity)
        period = self._period_for(on)
        returned = (
            replaces.quantity if replaces is not None and replaces.billable and replaces.period is period else ZERO
        )
        if billable and self._refused(period, quantity - returned):
            return None
        description = description.strip()
        item = ItemRow(
            id=self.batch.next_id(WorkItem),
            period=period,
            delivered_on=on,
            quantity=quantity,
            description=description,
            billable=billable,
            deliverable=deliverable,
            replaces_id=replaces.id if replaces is not None else None,
            created_at=self.stamp(on, 17),
        )
        self.items.append(item)
        if billable:
            item.entry_id = self._entry(
                period,
                LedgerEntry.Kind.DELIVERY,
                -quantity,
                period.seq,
                description[:255],
                at=item.created_at,
                work_item_id=item.id,
                actor_id=self.actor_id,
            )
        return item

    def edit(self, item: ItemRow, *, quantity: Decimal) -> ItemRow | None:
        """services.edit_delivery: the new item, then the reversal of the old one."""
        assert item.removed_at is None and item.period is self.open
        new = self.record(
            on=item.delivered_on,
            quantity=quantity,
            description=item.description,
            billable=item.billable,
            deliverable=item.deliverable,
            replaces=item,
        )
        if new is not None:
            self._reverse(item, reason=f"Edited: replaced by entry #{new.id}")
        return new

    def remove(self, item: ItemRow) -> None:
        assert item.removed_at is None and item.period is self.open
        self._reverse(item, reason="Removed")

    def adjust(self, *, on: date, quantity: Decimal, reason: str) -> None:
        assert quantity != 0 and reason.strip() and self.status != Retainer.Status.ENDED
        period = self.open
        assert period is not None  # until the retainer ends
        if quantity < 0 and self._refused(period, -quantity):
            return
        self._entry(
            period,
            LedgerEntry.Kind.ADJUSTMENT,
            quantity.quantize(CENT),
            period.seq,
            reason.strip()[:255],
            at=self.stamp(on, 12),
            actor_id=self.actor_id,
        )

    def add_extra(self, *, on: date, name: str) -> None:
        """services.add_deliverable."""
        assert self.status != Retainer.Status.ENDED and name.strip()
        assert self.open is not None  # until the retainer ends
        self.open.deliverables.append(
            DeliverableRow(
                id=self.batch.next_id(Deliverable),
                period_id=self.open.id,
                name=name.strip()[:200],
                created_at=self.stamp(on, 10),
                extra=True,
            )
        )

    def progress(self, deliverable: DeliverableRow, *, status: str, on: date) -> None:
        """services.set_deliverable_status (of the open period)."""
        assert self.open is not None  # until the retainer ends
        assert self.status != Retainer.Status.ENDED and any(d is deliverable for d in self.open.deliverables)
        deliverable.status = status
        deliverable.delivered_on = on if status == Deliverable.Status.DELIVERED else None

    def amend(self, *, on: date, changes: dict[str, object], reason: str) -> None:
        """services.amend_retainer: a newer amendment replaces the pending one (which is deleted)."""
        assert self.status != Retainer.Status.ENDED
        assert self.open is not None  # until the retainer ends
        if self.amendments and self.amendments[-1].applied_at is None:
            self.amendments.pop()
        self.amendments.append(
            AmendmentRow(
                id=self.batch.next_id(Amendment),
                terms=normalized_terms({**self.t, **changes}),
                effective_on=self.open.end_on,
                reason=reason,
                created_at=self.stamp(on, 11),
            )
        )

    def cancel(self, *, on: date) -> None:
        assert self.status != Retainer.Status.ENDED
        self.cancel_at_period_end = True

    def pause(self, *, on: date) -> None:
        assert self.status == Retainer.Status.ACTIVE
        self.status, self.paused_on = Retainer.Status.PAUSED, on

    def close(self, *, as_of: date) -> bool:
        """services.close_and_open_period, one loop turn per period that has ended by `as_of`."""
        while self.status == Retainer.Status.ACTIVE:
            period = self.open
            if period is None or period.end_on > as_of:
                break
            at = self.stamp(period.end_on, 1)
            ends_term = period.end_on >= self.term_ends_on
            has_next = not self.cancel_at_period_end and (not ends_term or self.t["auto_renew"])
            carried = [(d, d.status) for d in period.deliverables if d.status != Deliverable.Status.DELIVERED]
            rolled = self._close(period, has_next=has_next, at=at)
            if not has_next:
                self.status, self.ended_on, self.open = Retainer.Status.ENDED, period.end_on, None
                break
            self._apply_amendment(period.end_on, at=at)
            if ends_term:
                last_index = period.anchor_index + self.t["term_periods"]
                self.term_ends_on = period_bounds(self.anchor_on, self.t["cadence"], last_index)[1]
            following = self._open_period(
                seq=period.seq + 1, anchor_index=period.anchor_index + 1, rolled=rolled, at=at
            )
            if self.t["deliverables_carry"]:
                for d, status in carried:
                    following.deliverables.append(
                        DeliverableRow(
                            id=self.batch.next_id(Deliverable),
                            period_id=following.id,
                            name=d.name,
                            created_at=at,
                            status=status if status == Deliverable.Status.IN_PROGRESS else Deliverable.Status.PLANNED,
                            extra=d.extra,
                            carried_from_id=d.id,
                        )
                    )
            self.open = following
        return self.status == Retainer.Status.ACTIVE

    # --- the services' internals ---

    def _checked(self, quantity: Decimal) -> Decimal:
        limit = MAX_HOURS_UNCONFIRMED if self.t["unit"] == RetainerTerms.Unit.HOURS else MAX_SESSIONS_UNCONFIRMED
        assert 0 < quantity <= limit, quantity
        assert self.t["unit"] == RetainerTerms.Unit.HOURS or quantity == quantity.to_integral_value()
        return quantity.quantize(CENT)

    def _period_for(self, day: date) -> PeriodRow:
        assert self.open is not None  # until the retainer ends
        assert self.status == Retainer.Status.ACTIVE and self.open.start_on <= day < self.open.end_on
        return self.open

    def _refused(self, period: PeriodRow, draw: Decimal) -> bool:
        """services._check_balance: only the "refuse" policy refuses, and only beyond the balance."""
        return self.t["overage_policy"] == RetainerTerms.Overage.REFUSE and draw > 0 and draw > period.balance

    def _entry(
        self,
        period: PeriodRow,
        kind: str,
        quantity: Decimal,
        origin_seq: int,
        reason: str,
        *,
        at: datetime,
        work_item_id: int | None = None,
        reverses_id: int | None = None,
        actor_id: int | None = None,
    ) -> int:
        entry_id = self.batch.next_id(LedgerEntry)
        self.entries.append(
            (entry_id, self.workspace_id, self.id, period.id, kind, quantity, origin_seq, reason,
             work_item_id, reverses_id, actor_id, at)
        )  # fmt: skip
        period.entries.append((kind, quantity, origin_seq, work_item_id is not None))
        period.balance += quantity
        if work_item_id is not None:
            period.delivered += quantity
        return entry_id

    def _reverse(self, item: ItemRow, *, reason: str) -> None:
        at = self.stamp(item.delivered_on, 17)
        if item.entry_id is not None:
            self._entry(
                item.period,
                LedgerEntry.Kind.REVERSAL,
                item.quantity,
                item.period.seq,
                reason,
                at=at,
                work_item_id=item.id,
                reverses_id=item.entry_id,
                actor_id=self.actor_id,
            )
        item.removed_at = at

    def _open_period(self, *, seq: int, anchor_index: int, rolled: list[ledger.Move], at: datetime) -> PeriodRow:
        start_on, end_on = period_bounds(self.anchor_on, self.t["cadence"], anchor_index)
        deliverables_model = self.t["model"] == RetainerTerms.Model.DELIVERABLES
        period = PeriodRow(
            id=self.batch.next_id(Period),
            seq=seq,
            anchor_index=anchor_index,
            start_on=start_on,
            end_on=end_on,
            allotted=ZERO if deliverables_model else self.t["units_per_period"],
            rolled_in=sum((m.quantity for m in rolled), ZERO),
        )
        self.periods.append(period)
        for move in rolled:
            self._entry(period, move.kind, move.quantity, move.origin_seq, move.reason, at=at)
        if period.allotted > 0:
            self._entry(period, LedgerEntry.Kind.ALLOTMENT, period.allotted, seq, "Allotment", at=at)
        for name in self.t["deliverables"]:
            period.deliverables.append(
                DeliverableRow(id=self.batch.next_id(Deliverable), period_id=period.id, name=name, created_at=at)
            )
        return period

    def _close(self, period: PeriodRow, *, has_next: bool, at: datetime) -> list[ledger.Move]:
        lots, used = ledger.lots_of(period.entries, period.seq)
        plan = ledger.plan_close(
            seq=period.seq,
            lots=lots,
            used=used,
            model=self.t["model"],
            overage_policy=self.t["overage_policy"],
            rollover_cap=self.t["rollover_cap"],
            rollover_expiry_periods=self.t["rollover_expiry_periods"],
            has_next=has_next,
        )
        for move in plan.moves:
            if not move.in_next:
                self._entry(period, move.kind, move.quantity, move.origin_seq, move.reason, at=at)
        period.used, period.expired, period.rolled_out, period.overage = (
            used,
            plan.expired,
            plan.rolled_out,
            plan.overage,
        )
        period.status, period.closed_at = Period.Status.CLOSED, at
        carry = has_next and self.t["deliverables_carry"]
        for d in period.deliverables:
            if d.status != Deliverable.Status.DELIVERED:
                d.status = Deliverable.Status.CARRIED if carry else Deliverable.Status.LAPSED
        return [m for m in plan.moves if m.in_next]

    def _apply_amendment(self, starts_on: date, *, at: datetime) -> None:
        pending = self.amendments[-1] if self.amendments and self.amendments[-1].applied_at is None else None
        if pending is None or pending.effective_on > starts_on:
            return
        self.t = dict(pending.terms)
        pending.applied_at = at

    # --- rows ---

    def write(self, batch: Batch) -> None:
        """Hand the finished rows to the batch: the retainer with its cache, then its children."""
        ws, rid = self.workspace_id, self.id
        # services.refresh_balance: the cache is the open period's sums (all zero once ended).
        balance = self.open.balance if self.open is not None else ZERO
        used = -self.open.delivered if self.open is not None else ZERO
        batch.add(
            Retainer,
            (rid, ws, self.client_id, self.plan_id, self.name, self.status, self.starts_on, self.anchor_on,
             self.term_ends_on, self.cancel_at_period_end, self.paused_on, self.ended_on, self.created_at,
             balance + used, used, balance, *term_values(self.t)),
        )  # fmt: skip
        for a in self.amendments:
            batch.add(
                Amendment,
                (
                    a.id,
                    ws,
                    rid,
                    a.effective_on,
                    a.reason,
                    self.actor_id,
                    a.created_at,
                    a.applied_at,
                    *term_values(a.terms),
                ),
            )
        for p in self.periods:
            batch.add(
                Period,
                (p.id, ws, rid, p.seq, p.anchor_index, p.start_on, p.end_on, p.status, p.allotted, p.rolled_in,
                 p.used, p.expired, p.rolled_out, p.overage, p.closed_at),
            )  # fmt: skip
            for d in p.deliverables:
                batch.add(
                    Deliverable,
                    (
                        d.id,
                        ws,
                        rid,
                        d.period_id,
                        d.name,
                        d.status,
                        d.extra,
                        d.carried_from_id,
                        d.delivered_on,
                        d.created_at,
                    ),
                )
        for i in self.items:
            batch.add(
                WorkItem,
                (i.id, ws, rid, i.period.id, i.delivered_on, i.quantity, i.description, i.billable, self.actor_id,
                 i.deliverable.id if i.deliverable is not None else None, i.replaces_id, i.removed_at,
                 self.actor_id, i.created_at),
            )  # fmt: skip
        batch.extend(LedgerEntry, self.entries)


# The columns `MemoryBooks.write` fills, in its order; demo.bench gives every other column its default.
COLUMNS: dict[type[Model], list[str]] = {
    Retainer: [
        "id", "workspace_id", "client_id", "plan_id", "name", "status", "starts_on", "anchor_on", "term_ends_on",
        "cancel_at_period_end", "paused_on", "ended_on", "created_at", "period_available", "period_used",
        "balance", *TERM_FIELDS,
    ],
    Amendment: [
        "id", "workspace_id", "retainer_id", "effective_on", "reason", "created_by_id", "created_at", "applied_at",
        *TERM_FIELDS,
    ],
    Period: [
        "id", "workspace_id", "retainer_id", "seq", "anchor_index", "start_on", "end_on", "status", "allotted",
        "rolled_in", "used", "expired", "rolled_out", "overage", "closed_at",
    ],
    Deliverable: [
        "id", "workspace_id", "retainer_id", "period_id", "name", "status", "extra", "carried_from_id",
        "delivered_on", "created_at",
    ],
    WorkItem: [
        "id", "workspace_id", "retainer_id", "period_id", "delivered_on", "quantity", "description", "billable",
        "delivered_by_id", "deliverable_id", "replaces_id", "removed_at", "created_by_id", "created_at",
    ],
    LedgerEntry: [
        "id", "workspace_id", "retainer_id", "period_id", "kind", "quantity", "origin_seq", "reason",
        "work_item_id", "reverses_id", "actor_id", "created_at",
    ],
}  # fmt: skip
