"""Workflows of delivery: retainers' lifecycle, recording work, and closing periods.

Every workflow that changes a retainer's units locks the retainer row first (then its
periods), so two people logging at once cannot spend the same hour twice, and a close
cannot interleave with a delivery.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from clients.models import Amendment, Client, Plan, Retainer, RetainerTerms
from delivery import ledger
from delivery.models import Booking, Deliverable, LedgerEntry, OverageApproval, Period, WorkItem
from delivery.periods import period_bounds
from retainers import audit
from retainers.bulk import insert_all, update_each
from retainers.models import User

Kind = LedgerEntry.Kind
ZERO = ledger.ZERO
MAX_HOURS_UNCONFIRMED = Decimal("24")
MAX_SESSIONS_UNCONFIRMED = Decimal("10")
MAX_UNPAID_DAYS = 365  # pausing delivery over an invoice unpaid for more than a year is not a setting


class DeliveryError(Exception):
    """Bad input for a delivery workflow. `field` names the form field it belongs to, if any."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


# --- Retainers ----------------------------------------------------------------


def term_end(anchor: date, cadence: str, term_periods: int) -> date:
    return period_bounds(anchor, cadence, term_periods - 1)[1]


@transaction.atomic
def create_retainer(
    *,
    client: Client,
    name: str,
    starts_on: date,
    plan: Plan | None = None,
    terms: dict[str, object] | None = None,
    now: datetime | None = None,
) -> Retainer:
    """Sign a retainer: terms copied from the plan (then overridden by `terms`), first period opened.

    `now` (here and in the other workflows that write rows): when it happened, for history
    written after the fact (the demo); the real now otherwise."""
    now = now or timezone.now()
    values = {**(plan.terms() if plan else {}), **(terms or {})}
    unknown = set(values) - set(RetainerTerms.TERM_FIELDS)
    if unknown:
        raise ValueError(f"unknown terms: {sorted(unknown)}")
    retainer = Retainer(
        workspace_id=client.workspace_id,
        client=client,
        plan=plan,
        name=name.strip(),
        starts_on=starts_on,
        anchor_on=starts_on,
        created_at=now,
        **values,
    )
    retainer.term_ends_on = term_end(starts_on, retainer.cadence, retainer.term_periods)
    retainer.save()
    _open_periods([(retainer, 1, 0, [])], now=now)
    refresh_balance(retainer)
    return retainer


def _lock(retainer: Retainer) -> Retainer:
    return Retainer.objects.select_for_update().get(pk=retainer.pk)


def open_period(retainer: Retainer) -> Period | None:
    return Period.objects.filter(retainer=retainer, status=Period.Status.OPEN).first()


def _open_periods(openings: list[tuple[Retainer, int, int, list[ledger.Move]]], *, now: datetime) -> list[Period]:
    """Open one period per (retainer, seq, anchor index, units rolled in): the period with the
    retainer's current terms as its price snapshot, its allotment and rolled-in entries, and its
    planned deliverables. Three inserts, however many retainers."""
    periods = []
    for retainer, seq, anchor_index, rolled in openings:
        start_on, end_on = period_bounds(retainer.anchor_on, retainer.cadence, anchor_index)
        periods.append(
            Period(
                workspace_id=retainer.workspace_id,
                retainer=retainer,
                seq=seq,
                anchor_index=anchor_index,
                start_on=start_on,
                end_on=end_on,
                allotted=retainer.units_per_period if retainer.model != RetainerTerms.Model.DELIVERABLES else ZERO,
                rolled_in=sum((m.quantity for m in rolled), ZERO),
                currency=retainer.currency,
                billing_timing=retainer.billing_timing,
                price_minor=retainer.price_minor,
                overage_rate_minor=retainer.overage_rate_minor,
                extra_deliverable_price_minor=retainer.extra_deliverable_price_minor,
            )
        )
    insert_all(periods)
    entries, deliverables = [], []
    for (retainer, seq, _, rolled), period in zip(openings, periods, strict=True):
        moves = list(rolled)
        if period.allotted > 0:
            moves.append(ledger.Move(Kind.ALLOTMENT, period.allotted, seq, "Allotment"))
        entries += [_entry(retainer, period, m, now=now) for m in moves]
        deliverables += [
            Deliverable(workspace_id=retainer.workspace_id, retainer=retainer, period=period, name=name, created_at=now)
            for name in retainer.deliverables
        ]
    insert_all(entries)
    insert_all(deliverables)
    return periods


def refresh_balance(retainer: Retainer) -> None:
    """Recompute the retainer's cached balance of its open period from the ledger."""
    _refresh_balances([retainer])


def _refresh_balances(retainers: list[Retainer]) -> None:
    """Recompute the cached balance, used and available units of the retainers' open periods
    from the ledger, in one aggregate and one update (a retainer with no open period: zeros)."""
    sums = {
        row["retainer_id"]: row
        for row in LedgerEntry.objects.filter(
            retainer_id__in=[r.pk for r in retainers], period__status=Period.Status.OPEN
        )
        .order_by()
        .values("retainer_id")
        .annotate(
            balance=Sum("quantity", default=ZERO),
            used=Sum("quantity", filter=Q(work_item__isnull=False), default=ZERO),
        )
    }
    for retainer in retainers:
        row = sums.get(retainer.pk, {"balance": ZERO, "used": ZERO})
        used = -row["used"]
        retainer.balance, retainer.period_used, retainer.period_available = row["balance"], used, row["balance"] + used
    update_each(retainers, ["balance", "period_used", "period_available"])


@transaction.atomic
def amend_retainer(
    *, retainer: Retainer, terms: dict[str, object], reason: str, actor: User | None, now: datetime | None = None
) -> Amendment:
    """Change terms from the next period start. A newer amendment replaces a pending one."""
    retainer = _lock(retainer)
    if retainer.status == Retainer.Status.ENDED:
        raise DeliveryError("This retainer has ended; its terms can no longer change.")
    period = open_period(retainer)
    assert period is not None  # a retainer that has not ended has exactly one open period
    Amendment.objects.filter(retainer=retainer, applied_at=None).delete()
    current = retainer.terms()
    values = {**current, **terms}
    amendment = Amendment.objects.create(
        workspace_id=retainer.workspace_id,
        retainer=retainer,
        effective_on=period.end_on,
        reason=reason,
        created_by=actor,
        created_at=now or timezone.now(),
        **values,
    )
    _audit(
        retainer,
        "terms.amended",
        actor=actor,
        changes={**audit.diff(current, values), "effective_on": str(period.end_on), "reason": reason},
    )
    return amendment


def _audit(retainer: Retainer, action: str, *, actor: User | None, changes: Mapping[str, object]) -> None:
    """The audit row of a change to a retainer's terms or lifecycle, in the caller's transaction."""
    audit.record(
        workspace=retainer.workspace_id,
        actor=actor,
        action=action,
        target=retainer,
        summary=retainer.name,
        changes=changes,
    )


@transaction.atomic
def pause_retainer(*, retainer: Retainer, on: date, actor: User | None = None) -> Retainer:
    """Freeze the retainer: no new periods, no deliveries, the balance kept as it is."""
    retainer = _lock(retainer)
    if retainer.status != Retainer.Status.ACTIVE:
        raise DeliveryError("Only an active retainer can be paused.")
    retainer.status, retainer.paused_on = Retainer.Status.PAUSED, on
    retainer.save(update_fields=["status", "paused_on"])
    _audit(retainer, "retainer.paused", actor=actor, changes={"status": ["active", "paused"], "on": str(on)})
    return retainer


@transaction.atomic
def resume_retainer(*, retainer: Retainer, on: date, actor: User | None = None) -> Retainer:
    """Resume after a pause: the open period and the term are pushed back by the pause's length."""
    retainer = _lock(retainer)
    if retainer.status != Retainer.Status.PAUSED:
        raise DeliveryError("Only a paused retainer can be resumed.")
    assert retainer.paused_on is not None  # set with the paused status
    shift = timedelta(days=max((on - retainer.paused_on).days, 0))
    period = open_period(retainer)
    assert period is not None  # a paused retainer keeps its open period
    period.end_on += shift
    # Later periods are counted from the shifted end of this one.
    period.anchor_index = -1
    period.save(update_fields=["end_on", "anchor_index"])
    retainer.anchor_on = period.end_on
    retainer.term_ends_on += shift
    if next_term := Retainer.objects.filter(previous_term=retainer).live().order_by("starts_on").first():
        # An accepted renewal fixed the day the next term starts: this term still ends there.
        retainer.term_ends_on = min(retainer.term_ends_on, next_term.starts_on)
        if period.end_on > retainer.term_ends_on:
            period.end_on = retainer.anchor_on = retainer.term_ends_on
            period.save(update_fields=["end_on"])
    retainer.status, retainer.paused_on = Retainer.Status.ACTIVE, None
    retainer.save(update_fields=["anchor_on", "term_ends_on", "status", "paused_on"])
    _audit(
        retainer,
        "retainer.resumed",
        actor=actor,
        changes={"status": ["paused", "active"], "on": str(on), "term_ends_on": str(retainer.term_ends_on)},
    )
    return retainer


@transaction.atomic
def cancel_at_period_end(*, retainer: Retainer, cancel: bool = True, actor: User | None = None) -> Retainer:
    retainer = _lock(retainer)
    if retainer.status == Retainer.Status.ENDED:
        raise DeliveryError("This retainer has already ended.")
    changes = audit.diff({"cancel_at_period_end": retainer.cancel_at_period_end}, {"cancel_at_period_end": cancel})
    retainer.cancel_at_period_end = cancel
    retainer.save(update_fields=["cancel_at_period_end"])
    _audit(retainer, "retainer.cancelled" if cancel else "retainer.cancel_undone", actor=actor, changes=changes)
    return retainer


@transaction.atomic
def set_collection(
    *,
    retainer: Retainer,
    auto_charge: bool,
    pause_after_unpaid_days: int | None,
    overage_needs_approval: bool | None = None,
    overage_block: Decimal | None = None,
    actor: User | None = None,
) -> Retainer:
    """How the retainer's invoices are collected: charge the client's saved card when one is issued
    (invoices keep the setting they were issued with), and pause delivery once one is unpaid this
    many days past due (read by the daily dunning run). With `overage_needs_approval`, work beyond
    the balance waits for the client's approval, offered in blocks of `overage_block` units
    (delivery.approvals); None leaves either as it is."""
    retainer = _lock(retainer)
    if retainer.status == Retainer.Status.ENDED:
        raise DeliveryError("This retainer has already ended.")
    if pause_after_unpaid_days is not None and not 1 <= pause_after_unpaid_days <= MAX_UNPAID_DAYS:
        raise DeliveryError(f"Pause after 1 to {MAX_UNPAID_DAYS} days unpaid, or never.")
    before = {
        "auto_charge": retainer.auto_charge,
        "pause_after_unpaid_days": retainer.pause_after_unpaid_days,
        "overage_needs_approval": retainer.overage_needs_approval,
        "overage_block": retainer.overage_block,
    }
    if overage_block is not None:
        if not ZERO < overage_block < Decimal("10000"):
            raise DeliveryError("A block of more than 0 and less than 10,000 units.", field="overage_block")
        if retainer.unit == RetainerTerms.Unit.SESSIONS and overage_block != overage_block.to_integral_value():
            raise DeliveryError("Sessions are counted in whole numbers.", field="overage_block")
        retainer.overage_block = overage_block.quantize(Decimal("0.01"))
    if overage_needs_approval is not None:
        retainer.overage_needs_approval = overage_needs_approval
    retainer.auto_charge, retainer.pause_after_unpaid_days = auto_charge, pause_after_unpaid_days
    changes = audit.diff(
        before,
        {
            "auto_charge": retainer.auto_charge,
            "pause_after_unpaid_days": retainer.pause_after_unpaid_days,
            "overage_needs_approval": retainer.overage_needs_approval,
            "overage_block": retainer.overage_block,
        },
    )
    retainer.save(update_fields=["auto_charge", "pause_after_unpaid_days", "overage_needs_approval", "overage_block"])
    if changes:
        _audit(retainer, "retainer.collection_changed", actor=actor, changes=changes)
    return retainer


@transaction.atomic
def end_retainer(*, retainer: Retainer, on: date, actor: User | None = None) -> Retainer:
    """End now: the open period is closed as it stands (unused units lapse, debt is billed)."""
    retainer = _lock(retainer)
    if retainer.status == Retainer.Status.ENDED:
        return retainer
    period = open_period(retainer)
    if period is not None:
        _close_round({retainer.pk: retainer}, {retainer.pk: period}, now=timezone.now(), final=True)
    _audit(retainer, "retainer.ended", actor=actor, changes={"status": [retainer.status, "ended"], "on": str(on)})
    retainer.status, retainer.ended_on = Retainer.Status.ENDED, on
    retainer.save(update_fields=["status", "ended_on"])
    refresh_balance(retainer)
    return retainer


def end_replaced_terms(*, workspace_id: int, as_of: date) -> list[int]:
    """End, on their own term end, the paused terms whose next term (an accepted renewal) has
    started by `as_of`: a pause would otherwise keep the old term alive beside the new one
    (pausing moves the term end only when it resumes). Active ones end at their last close.
    Idempotent: an ended term is not found again. Returns the ids ended."""
    replaced = list(
        Retainer.objects.filter(
            workspace_id=workspace_id,
            status=Retainer.Status.PAUSED,
            next_terms__starts_on__lte=as_of,
            next_terms__status__in=[Retainer.Status.ACTIVE, Retainer.Status.PAUSED],
        )
        .distinct()
        .order_by("pk")
    )
    for retainer in replaced:
        end_retainer(retainer=retainer, on=retainer.term_ends_on)
    return [r.pk for r in replaced]


# --- Closing periods ------------------------------------------------------------


@dataclass
class Closed:
    period: Period
    next_period: Period | None


def close_and_open_period(*, retainer: Retainer, as_of: date, now: datetime | None = None) -> list[Closed]:
    """Close every period of the retainer that ended on or before `as_of`, opening the next each time.

    Idempotent and catching up: run twice, nothing more happens; run after downtime,
    each missed period is closed on its own with its own dates. Paused and ended
    retainers are left alone. At the end of a term the retainer renews itself when
    it auto-renews, and ends otherwise; `cancel_at_period_end` ends it at the next close.
    """
    return close_and_open_periods(retainer_ids=[retainer.pk], as_of=as_of, now=now)[retainer.pk]


@transaction.atomic
def close_and_open_periods(
    *, retainer_ids: Iterable[int], as_of: date, now: datetime | None = None
) -> dict[int, list[Closed]]:
    """`close_and_open_period` for many retainers at once, in a fixed number of queries per round.

    The billing run closes thousands of periods: one retainer at a time that is a dozen
    queries each. Here the retainers are locked together (in id order, so two batches
    cannot deadlock), each round reads every ended open period with its ledger,
    unfinished deliverables and pending amendment in bulk, plans the closes with the
    pure `ledger` functions, and writes with bulk inserts and updates. A round closes
    one period per retainer; catching up after downtime takes one round per missed period.
    """
    now = now or timezone.now()
    ids = sorted(set(retainer_ids))
    retainers = {r.pk: r for r in Retainer.objects.select_for_update().filter(pk__in=ids).order_by("pk")}
    closed: dict[int, list[Closed]] = {pk: [] for pk in ids}
    while True:
        active = [pk for pk, r in retainers.items() if r.status == Retainer.Status.ACTIVE]
        ended = {
            p.retainer_id: p
            for p in Period.objects.select_for_update()
            .filter(retainer_id__in=active, status=Period.Status.OPEN, end_on__lte=as_of)
            .order_by("retainer_id")
        }
        if not ended:
            break
        for retainer_id, next_period in _close_round(retainers, ended, now=now).items():
            closed[retainer_id].append(Closed(ended[retainer_id], next_period))
    _refresh_balances(list(retainers.values()))
    return closed


def _close_round(
    retainers: dict[int, Retainer], ended: dict[int, Period], *, now: datetime, final: bool = False
) -> dict[int, Period | None]:
    """Close each of the `ended` periods (one per retainer) and open the next where there is one;
    `final`: the retainers end now, so nothing rolls and no period opens."""
    entries: dict[int, list[tuple[str, Decimal, int, bool]]] = defaultdict(list)
    # By ids (`period_id__in`), not model objects: the ORM normalizes each object of an `__in`.
    period_ids = [p.pk for p in ended.values()]
    rows = LedgerEntry.objects.filter(period_id__in=period_ids).values_list(
        "period_id", "kind", "quantity", "origin_seq", "work_item_id"
    )
    for period_id, kind, quantity, origin, work_item_id in rows:
        entries[period_id].append((kind, quantity, origin, work_item_id is not None))
    unfinished: dict[int, list[Deliverable]] = defaultdict(list)
    for deliverable in (
        Deliverable.objects.filter(period_id__in=period_ids).exclude(status=Deliverable.Status.DELIVERED).order_by("pk")
    ):
        unfinished[deliverable.period_id].append(deliverable)
    pending = {a.retainer_id: a for a in Amendment.objects.filter(retainer_id__in=list(ended), applied_at=None)}
    # Approvals of overage: approved ones cover work beyond the balance (oldest answer first), the
    # rest of them and unanswered requests lapse with the period.
    approvals: dict[int, list[OverageApproval]] = defaultdict(list)
    for approval in OverageApproval.objects.filter(
        period_id__in=period_ids,
        status__in=[OverageApproval.Status.APPROVED, OverageApproval.Status.REQUESTED],
        closed_at=None,
    ).order_by("answered_at", "pk"):
        approvals[approval.period_id].append(approval)

    closing: list[LedgerEntry] = []
    carried_ids: list[int] = []
    lapsed_ids: list[int] = []
    applied: list[Amendment] = []
    opening: list[tuple[Retainer, Period, list[ledger.Move], list[Deliverable]]] = []
    changed: list[Retainer] = []  # ended, amended or renewed for another term
    result: dict[int, Period | None] = {}
    for retainer_id, period in ended.items():
        retainer = retainers[retainer_id]
        ends_term = period.end_on >= retainer.term_ends_on
        has_next = not final and not retainer.cancel_at_period_end and (not ends_term or retainer.auto_renew)
        plan = ledger.plan_period_close(
            retainer=retainer,
            seq=period.seq,
            entries=entries[period.pk],
            has_next=has_next,
            approved=approved_quantity(approvals[period.pk]),
        )
        closing += [_entry(retainer, period, m, now=now) for m in plan.moves if not m.in_next]
        period.used, period.expired, period.rolled_out, period.overage, period.approved_overage = (
            plan.used,
            plan.expired,
            plan.rolled_out,
            plan.overage,
            plan.approved_overage,
        )
        _settle_approvals(approvals[period.pk], plan.approved_overage, now=now)
        period.status, period.closed_at = Period.Status.CLOSED, now
        # The closing period's own terms decide whether its unfinished deliverables carry.
        carry = has_next and retainer.deliverables_carry
        (carried_ids if carry else lapsed_ids).extend(d.pk for d in unfinished[period.pk])
        result[retainer_id] = None
        if not has_next:
            retainer.status, retainer.ended_on = Retainer.Status.ENDED, period.end_on
            changed.append(retainer)
            continue
        amendment = pending.get(retainer_id)
        amended = amendment is not None and amendment.effective_on <= period.end_on
        if amended:
            assert amendment is not None  # amended implies it
            for name, value in amendment.terms().items():
                setattr(retainer, name, value)
            amendment.applied_at = now
            applied.append(amendment)
        if ends_term:  # auto-renewal on the same terms (the renewals workflow may offer new ones)
            last_index = period.anchor_index + retainer.term_periods
            retainer.term_ends_on = period_bounds(retainer.anchor_on, retainer.cadence, last_index)[1]
        if amended or ends_term:
            changed.append(retainer)
        rolled = [m for m in plan.moves if m.in_next]
        opening.append((retainer, period, rolled, unfinished[period.pk] if carry else []))

    insert_all(closing)
    update_each(
        list(ended.values()), ["used", "expired", "rolled_out", "overage", "approved_overage", "status", "closed_at"]
    )
    update_each([a for group in approvals.values() for a in group], ["status", "used", "closed_at"])
    Deliverable.objects.filter(pk__in=carried_ids).update(status=Deliverable.Status.CARRIED)
    Deliverable.objects.filter(pk__in=lapsed_ids).update(status=Deliverable.Status.LAPSED)
    update_each(applied, ["applied_at"])
    update_each(changed, [*RetainerTerms.TERM_FIELDS, "term_ends_on", "status", "ended_on"])
    next_periods = _open_periods(
        [(retainer, period.seq + 1, period.anchor_index + 1, rolled) for retainer, period, rolled, _ in opening],
        now=now,
    )
    copies = []
    for (retainer, _, _, carried), next_period in zip(opening, next_periods, strict=True):
        result[retainer.pk] = next_period
        copies += [
            Deliverable(
                workspace_id=retainer.workspace_id,
                retainer=retainer,
                period=next_period,
                name=d.name,
                status=d.status if d.status == Deliverable.Status.IN_PROGRESS else Deliverable.Status.PLANNED,
                extra=d.extra,
                carried_from=d,
                created_at=now,
            )
            for d in carried
        ]
    insert_all(copies)
    return result


def approved_quantity(approvals: Iterable[OverageApproval]) -> Decimal:
    """The overage units a period's approvals let the close bill (`ledger.plan_period_close`'s `approved`)."""
    return sum((a.quantity for a in approvals if a.status == OverageApproval.Status.APPROVED), ZERO)


def _settle_approvals(approvals: list[OverageApproval], covered: Decimal, *, now: datetime) -> None:
    """Share the approved overage a closing period used among its approvals, oldest answer first
    (`ledger.share_approved`); requests still unanswered lapse."""
    approved = [a for a in approvals if a.status == OverageApproval.Status.APPROVED]
    for approval, used in zip(approved, ledger.share_approved([a.quantity for a in approved], covered), strict=True):
        approval.used = used
    for approval in approvals:
        approval.closed_at = now
        if approval.status == OverageApproval.Status.REQUESTED:
            approval.status = OverageApproval.Status.LAPSED


def _entry(retainer: Retainer, period: Period, move: ledger.Move, *, now: datetime) -> LedgerEntry:
    return LedgerEntry(
        workspace_id=retainer.workspace_id,
        retainer=retainer,
        period=period,
        kind=move.kind,
        quantity=move.quantity,
        origin_seq=move.origin_seq,
        reason=move.reason,
        created_at=now,
    )


# --- Recording delivery ---------------------------------------------------------------


def _check_quantity(retainer: Retainer, quantity: Decimal, *, confirm_large: bool) -> Decimal:
    if quantity <= 0:
        raise DeliveryError("Enter more than zero.", field="quantity")
    if retainer.unit == RetainerTerms.Unit.SESSIONS and quantity != quantity.to_integral_value():
        raise DeliveryError("Sessions are counted in whole numbers.", field="quantity")
    limit = MAX_HOURS_UNCONFIRMED if retainer.is_hours else MAX_SESSIONS_UNCONFIRMED
    if quantity > limit and not confirm_large:
        raise DeliveryError(
            f"More than {limit:.0f} {retainer.get_unit_display().lower()} in one entry: tick “confirm” if that is right.",
            field="quantity",
        )
    if quantity >= Decimal("10000"):
        raise DeliveryError("That is too large for one entry.", field="quantity")
    return quantity.quantize(Decimal("0.01"))


def _period_for(retainer: Retainer, delivered_on: date) -> Period:
    if retainer.status == Retainer.Status.PAUSED:
        raise DeliveryError("This retainer is paused: resume it to record work.")
    if retainer.status == Retainer.Status.ENDED:
        raise DeliveryError("This retainer has ended.")
    period = Period.objects.select_for_update().get(retainer=retainer, status=Period.Status.OPEN)
    if period.contains(delivered_on):
        return period
    if delivered_on < retainer.starts_on:
        raise DeliveryError(f"The retainer starts on {retainer.starts_on:%d %b %Y}.", field="delivered_on")
    if delivered_on < period.start_on:
        raise DeliveryError(
            f"That date is in a closed period; the current one started on {period.start_on:%d %b %Y}. "
            "Record an adjustment instead.",
            field="delivered_on",
        )
    raise DeliveryError(
        f"That date is after the current period, which ends on {period.end_on - timedelta(days=1):%d %b %Y}.",
        field="delivered_on",
    )


def _check_balance(retainer: Retainer, period: Period, draw: Decimal, *, reservation: Booking | None = None) -> None:
    """Under "refuse", or when overage needs the client's approval, nothing is drawn beyond the
    balance plus the units the client approved for the period (delivery.approvals), less what the
    period's active bookings reserve (other than `reservation`, the booking this draw settles):
    work logged by hand cannot eat the units of a session already booked."""
    if not retainer.limits_overage or draw <= 0:
        return
    balance = LedgerEntry.objects.filter(period=period).aggregate(b=Sum("quantity", default=ZERO))["b"]
    approved = OverageApproval.objects.filter(
        workspace_id=retainer.workspace_id, period=period, status=OverageApproval.Status.APPROVED
    ).aggregate(q=Sum("quantity", default=ZERO))["q"]
    reserved = _reserved(retainer, period, reservation)
    if draw <= balance + approved - reserved:
        return
    unit = retainer.get_unit_display().lower()
    left = max(balance + approved - reserved, ZERO)
    booked = f" ({reserved} {unit} are reserved by upcoming bookings)" if reserved > 0 else ""
    if approved > 0 or retainer.overage_needs_approval:
        approval = f", counting the {approved} {unit} the client approved beyond the balance" if approved > 0 else ""
        raise DeliveryError(
            f"Only {left} {unit} left this period{approval}{booked}. Overage needs the client's approval: "
            "ask them to approve more from the retainer page.",
            field="quantity",
        )
    if reserved > 0:
        raise DeliveryError(
            f"Only {left} {unit} left this period: {reserved} {unit} are reserved "
            "by upcoming bookings, and this retainer refuses overage.",
            field="quantity",
        )
    raise DeliveryError(f"Only {balance} {unit} left this period, and this retainer refuses overage.", field="quantity")


def _reserved(retainer: Retainer, period: Period, reservation: Booking | None) -> Decimal:
    """Units the period's active bookings reserve, other than `reservation`'s."""
    bookings = Booking.objects.reserving(
        retainer, start_on=period.start_on, end_on=period.end_on, zone=retainer.workspace.tzinfo
    )
    if reservation is not None:
        bookings = bookings.exclude(pk=reservation.pk)
    reserved: Decimal = bookings.aggregate(units=Sum("units", default=ZERO))["units"]
    return reserved


@transaction.atomic
def record_delivery(
    *,
    retainer: Retainer,
    delivered_on: date,
    quantity: Decimal,
    description: str,
    actor: User | None,
    billable: bool = True,
    deliverable: Deliverable | None = None,
    delivered_by: User | None = None,
    confirm_large: bool = False,
    replaces: WorkItem | None = None,
    reservation: Booking | None = None,
    now: datetime | None = None,
) -> WorkItem:
    """Record work against the open period. Locks the retainer: the balance check and the
    debit happen with no other delivery (or booking) in between. `reservation`: the booking this
    work settles, whose reserved units it may use (delivery.booking)."""
    now = now or timezone.now()
    retainer = _lock(retainer)
    quantity = _check_quantity(retainer, quantity, confirm_large=confirm_large)
    period = _period_for(retainer, delivered_on)
    if deliverable is not None and deliverable.retainer_id != retainer.pk:
        raise DeliveryError("That deliverable belongs to another retainer.", field="deliverable")
    returned = ZERO
    if replaces is not None and replaces.billable and replaces.period_id == period.pk:
        returned = replaces.quantity
    if billable:
        _check_balance(retainer, period, quantity - returned, reservation=reservation)
    item = WorkItem.objects.create(
        workspace_id=retainer.workspace_id,
        retainer=retainer,
        period=period,
        delivered_on=delivered_on,
        quantity=quantity,
        description=description.strip(),
        billable=billable,
        deliverable=deliverable,
        delivered_by=delivered_by or actor,
        created_by=actor,
        replaces=replaces,
        created_at=now,
    )
    if billable:
        LedgerEntry.objects.create(
            workspace_id=retainer.workspace_id,
            retainer=retainer,
            period=period,
            kind=Kind.DELIVERY,
            quantity=-quantity,
            origin_seq=period.seq,
            reason=description.strip()[:255],
            work_item=item,
            actor=actor,
            created_at=now,
        )
    refresh_balance(retainer)
    return item


def _reverse_item(item: WorkItem, *, actor: User | None, reason: str, now: datetime) -> None:
    entry = LedgerEntry.objects.filter(work_item=item, kind=Kind.DELIVERY).first()
    if entry is not None:
        LedgerEntry.objects.create(
            workspace_id=item.workspace_id,
            retainer_id=item.retainer_id,
            period_id=item.period_id,
            kind=Kind.REVERSAL,
            quantity=-entry.quantity,
            origin_seq=entry.origin_seq,
            reason=reason,
            work_item=item,
            reverses=entry,
            actor=actor,
            created_at=now,
        )
    WorkItem.objects.filter(pk=item.pk).update(removed_at=now)


def _editable(item: WorkItem) -> WorkItem:
    item = WorkItem.objects.select_related("period").get(pk=item.pk)
    if item.removed_at is not None:
        raise DeliveryError("This entry was already changed or removed; reload the page.")
    if item.period.status != Period.Status.OPEN:
        raise DeliveryError("This entry is in a closed period. Record an adjustment instead.")
    return item


@transaction.atomic
def edit_delivery(
    *,
    item: WorkItem,
    delivered_on: date,
    quantity: Decimal,
    description: str,
    billable: bool,
    actor: User | None,
    deliverable: Deliverable | None = None,
    confirm_large: bool = False,
    now: datetime | None = None,
) -> WorkItem:
    """Change a delivery: reverse its entry and record the new one, shown to people as one row."""
    now = now or timezone.now()
    retainer = _lock(item.retainer)
    item = _editable(item)
    new = record_delivery(
        retainer=retainer,
        delivered_on=delivered_on,
        quantity=quantity,
        description=description,
        actor=actor,
        billable=billable,
        deliverable=deliverable,
        delivered_by=item.delivered_by,
        confirm_large=confirm_large,
        replaces=item,
        now=now,
    )
    _reverse_item(item, actor=actor, reason=f"Edited: replaced by entry #{new.pk}", now=now)
    refresh_balance(retainer)
    return new


@transaction.atomic
def remove_delivery(*, item: WorkItem, actor: User | None, now: datetime | None = None) -> None:
    retainer = _lock(item.retainer)
    item = _editable(item)
    _reverse_item(item, actor=actor, reason="Removed", now=now or timezone.now())
    refresh_balance(retainer)


@transaction.atomic
def adjust_balance(
    *, retainer: Retainer, quantity: Decimal, reason: str, actor: User | None, now: datetime | None = None
) -> LedgerEntry:
    """Add (or, negative, take away) units in the open period, with a reason on record."""
    retainer = _lock(retainer)
    quantity = quantity.quantize(Decimal("0.01"))
    if quantity == 0:  # after rounding: a ledger entry is never zero (the `ledger_quantity_not_zero` constraint)
        raise DeliveryError("Enter a quantity other than zero.", field="quantity")
    if not reason.strip():
        raise DeliveryError("Say why: the reason stays on the ledger.", field="reason")
    if retainer.status == Retainer.Status.ENDED:
        raise DeliveryError("This retainer has ended.")
    period = Period.objects.select_for_update().get(retainer=retainer, status=Period.Status.OPEN)
    if quantity < 0:
        _check_balance(retainer, period, -quantity)
    entry = LedgerEntry.objects.create(
        workspace_id=retainer.workspace_id,
        retainer=retainer,
        period=period,
        kind=Kind.ADJUSTMENT,
        quantity=quantity,
        origin_seq=period.seq,
        reason=reason.strip()[:255],
        actor=actor,
        created_at=now or timezone.now(),
    )
    refresh_balance(retainer)
    return entry


# --- Deliverables ------------------------------------------------------------------------

SETTABLE_DELIVERABLE_STATUSES = (
    Deliverable.Status.PLANNED,
    Deliverable.Status.IN_PROGRESS,
    Deliverable.Status.DELIVERED,
)


@transaction.atomic
def set_deliverable_status(
    *, deliverable: Deliverable, status: str, actor: User | None, on: date | None = None
) -> Deliverable:
    """Move a deliverable of the open period along (planned, in progress, delivered).

    Locks the retainer, then the deliverable. `delivered_on` is set to `on` (the
    workspace's today by default) when delivered, and cleared otherwise. Closed
    periods are history: their deliverables no longer change.
    """
    retainer = _lock(deliverable.retainer)
    deliverable = Deliverable.objects.select_for_update().select_related("period").get(pk=deliverable.pk)
    if status not in SETTABLE_DELIVERABLE_STATUSES:
        raise DeliveryError("Choose planned, in progress or delivered.", field="status")
    if deliverable.period.status != Period.Status.OPEN:
        raise DeliveryError("This deliverable is in a closed period; it can no longer change.")
    if status == deliverable.status:
        return deliverable
    deliverable.status = status
    if status == Deliverable.Status.DELIVERED:
        deliverable.delivered_on = on or retainer.workspace.today()
    else:
        deliverable.delivered_on = None
    deliverable.save(update_fields=["status", "delivered_on"])
    return deliverable


@transaction.atomic
def add_deliverable(*, retainer: Retainer, name: str, actor: User | None, now: datetime | None = None) -> Deliverable:
    """Add an extra deliverable (beyond the plan, billed as agreed) to the open period."""
    retainer = _lock(retainer)
    name = name.strip()
    if not name:
        raise DeliveryError("Name the deliverable.", field="name")
    if retainer.status == Retainer.Status.ENDED:
        raise DeliveryError("This retainer has ended.")
    period = open_period(retainer)
    if period is None:
        raise DeliveryError("This retainer has no open period.")
    return Deliverable.objects.create(
        workspace_id=retainer.workspace_id,
        retainer=retainer,
        period=period,
        name=name[:200],
        extra=True,
        created_at=now or timezone.now(),
    )
