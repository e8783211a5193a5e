"""The arithmetic of closing a period, as pure functions over lots of units.

A *lot* is units of one origin: the period whose allotment (or adjustment) they came
from. Rolled-over units keep their origin, so they can expire K periods later. Usage
is taken from the oldest lot first, so what expires is what the client really left
unused. Nothing here touches the database; `services.close_and_open_period` writes
what `plan_close` returns.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clients.models import RetainerTerms

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class Move:
    """One ledger entry to write: in the closing period, or (`in_next`) in the next one."""

    kind: str
    quantity: Decimal
    origin_seq: int
    reason: str
    in_next: bool = False


@dataclass
class ClosePlan:
    moves: list[Move] = field(default_factory=list)
    expired: Decimal = ZERO
    rolled_out: Decimal = ZERO
    overage: Decimal = ZERO
    approved_overage: Decimal = ZERO
    used: Decimal = ZERO  # set by plan_period_close: the units the period's work used


def consume(lots: dict[int, Decimal], used: Decimal) -> tuple[dict[int, Decimal], Decimal]:
    """Take `used` units from the lots, oldest origin first.

    Negative lots (a carried negative balance, a negative adjustment) are debts and
    are settled first. Returns what is left of each positive lot, and the shortfall
    (units used beyond every lot: the overage).
    """
    debt = used - sum((q for q in lots.values() if q < 0), ZERO)
    remaining: dict[int, Decimal] = {}
    for origin in sorted(lots):
        quantity = lots[origin]
        if quantity <= 0:
            continue
        taken = min(quantity, debt) if debt > 0 else ZERO
        debt -= taken
        if quantity - taken > 0:
            remaining[origin] = quantity - taken
    return remaining, max(debt, ZERO)


def lots_of(entries: Iterable[tuple[str, Decimal, int, bool]], seq: int) -> tuple[dict[int, Decimal], Decimal]:
    """Split a period's entries into lots by origin and the units used.

    `entries` are (kind, quantity, origin_seq, is_delivery) rows; `is_delivery` marks
    deliveries and their reversals, which are usage. Every other entry is a credit (or
    debit) of its origin's lot; adjustments count as this period's units.
    """
    lots: dict[int, Decimal] = defaultdict(lambda: ZERO)
    used = ZERO
    for kind, quantity, origin, is_delivery in entries:
        if is_delivery:
            used -= quantity
        elif kind in {"allotment", "rollover_in"}:
            lots[origin] += quantity
        else:  # adjustments and their reversals
            lots[seq] += quantity
    return dict(lots), used


def plan_close(
    *,
    seq: int,
    lots: dict[int, Decimal],
    used: Decimal,
    model: str,
    overage_policy: str,
    rollover_cap: Decimal | None,
    rollover_expiry_periods: int | None,
    has_next: bool,
    approved: Decimal = ZERO,
) -> ClosePlan:
    """What closing period `seq` writes so that its balance ends at zero.

    - units used beyond the balance: billed as overage, or (policy "carry"/"refuse")
      carried into the next period as a negative balance;
    - fixed retainers: every unused unit lapses;
    - rollover retainers: unused units older than K periods expire, then units beyond
      the cap expire (oldest first), and the rest roll into the next period, keeping
      their origin;
    - with no next period (the retainer ends), nothing rolls and debt is billed;
    - units beyond the balance that the client `approved` come first and are billed whatever the
      policy (at the approvals' rates, `approved_overage`); only the rest follows the policy.
    """
    plan = ClosePlan()
    remaining, shortfall = consume(lots, used)

    covered = min(shortfall, approved)
    if covered > 0:
        plan.moves.append(Move("overage", covered, seq, "Approved overage: billed at the approved rate"))
        plan.approved_overage = covered
        shortfall -= covered

    if shortfall > 0:
        if overage_policy == "bill" or not has_next:
            plan.moves.append(Move("overage", shortfall, seq, "Used beyond the balance: billed as overage"))
            plan.overage = shortfall
        else:
            plan.moves.append(Move("rollover_out", shortfall, seq, "Negative balance carried forward"))
            plan.moves.append(Move("rollover_in", -shortfall, seq + 1, "Negative balance carried in", in_next=True))
            plan.rolled_out -= shortfall

    survivors: dict[int, Decimal] = {}
    for origin in sorted(remaining):
        quantity = remaining[origin]
        if model != "rollover" or not has_next:
            plan.moves.append(Move("expiry", -quantity, origin, "Unused units lapse at period end"))
            plan.expired += quantity
        elif rollover_expiry_periods is not None and seq - origin >= rollover_expiry_periods:
            periods = rollover_expiry_periods
            plan.moves.append(
                Move("expiry", -quantity, origin, f"Expired: unused for {periods} period(s) after its own")
            )
            plan.expired += quantity
        else:
            survivors[origin] = quantity

    if rollover_cap is not None:
        excess = sum(survivors.values(), ZERO) - rollover_cap
        for origin in sorted(survivors):
            if excess <= 0:
                break
            cut = min(survivors[origin], excess)
            plan.moves.append(Move("expiry", -cut, origin, f"Over the rollover cap of {rollover_cap}"))
            plan.expired += cut
            survivors[origin] -= cut
            excess -= cut

    for origin in sorted(survivors):
        quantity = survivors[origin]
        if quantity > 0:
            plan.moves.append(Move("rollover_out", -quantity, origin, "Rolled into the next period"))
            plan.moves.append(Move("rollover_in", quantity, origin, "Rolled in from the previous period", in_next=True))
            plan.rolled_out += quantity
    return plan


def plan_period_close(
    *,
    retainer: RetainerTerms,
    seq: int,
    entries: Iterable[tuple[str, Decimal, int, bool]],
    has_next: bool,
    approved: Decimal = ZERO,
) -> ClosePlan:
    """`plan_close` for period `seq` of a retainer, from its ledger entries (kind, quantity, origin,
    is it work), its terms and the overage units the client `approved` for the period: what the
    close writes, and what the next-invoice preview reads."""
    lots, used = lots_of(entries, seq)
    plan = plan_close(
        seq=seq,
        lots=lots,
        used=used,
        model=retainer.model,
        overage_policy=retainer.overage_policy,
        rollover_cap=retainer.rollover_cap,
        rollover_expiry_periods=retainer.rollover_expiry_periods,
        has_next=has_next,
        approved=approved,
    )
    plan.used = used
    return plan


def share_approved(quantities: Iterable[Decimal], covered: Decimal) -> list[Decimal]:
    """What each approval covers of the `covered` approved overage (`ClosePlan.approved_overage`),
    given their approved quantities oldest answer first: each takes what it can in turn. Closing
    writes these as `OverageApproval.used`; the next-invoice preview bills them before the close."""
    shares = []
    for quantity in quantities:
        taken = min(quantity, covered) if covered > 0 else ZERO
        shares.append(taken)
        covered -= taken
    return shares


def expiring_at_close(
    *, seq: int, lots: dict[int, Decimal], used: Decimal, rollover_expiry_periods: int | None
) -> Decimal:
    """Units left now that will expire by age when period `seq` closes ("expiring soon")."""
    if rollover_expiry_periods is None:
        return ZERO
    remaining, _ = consume(lots, used)
    return sum((q for origin, q in remaining.items() if seq - origin >= rollover_expiry_periods), ZERO)
