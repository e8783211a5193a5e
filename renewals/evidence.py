"""The proposal builder: a term's evidence and the suggested next term.

The arithmetic is pure functions over plain values (`period_figures`, `trend`, `suggest`,
`punctuality`, `sparkline`), so the rules are tested without a database; `build_evidence`
does the reads, a fixed number of queries per retainer, and hands the rows over.

Evidence is stored on the renewal as JSON (decimals and dates as strings) so the page and the
portal show the figures the proposal was built from; `for_display` turns it back into values.

The figures are the ledger's own sums, per period and kind of entry:

- allotted: allotment credits (the units bought); rolled_in / rolled_out: rollover entries
  (a carried negative balance shows as a negative roll); adjusted: adjustments;
- used: deliveries less their reversals (entries tied to a work item, as delivery counts them);
- expired: expiry debits; overage: units billed beyond the balance;
- utilisation is retainers.units.utilisation, the one definition every page shows: used ÷ what
  the period made available (allotted, rolled in, adjusted); a period "went over" when it used
  more than that (retainers.units.went_over), which is what the sparkline marks red and "went
  over in N of M" counts.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db.models import BooleanField, ExpressionWrapper, Q, Sum
from django.template.defaultfilters import pluralize

from billing.models import Invoice
from clients.models import Amendment, RetainerTerms
from delivery.models import Deliverable, LedgerEntry, Period
from renewals import signals
from renewals.models import Renewal
from retainers.units import format_units, utilisation, utilisation_percent, went_over

ZERO = Decimal("0.00")
RECENT_PERIODS = 3  # the trend compares the last few closed periods with the whole term
UPGRADE_ABOVE = Decimal("1")  # average use above everything bought
DOWNGRADE_BELOW = Decimal("0.60")
OVERAGE_PERIODS_FOR_UPGRADE = 2
TREND_STEP = Decimal("0.10")  # ten points of utilisation either way is a trend, less is noise


FIGURES = ("allotted", "rolled_in", "adjusted", "used", "rolled_out", "expired", "overage", "balance")


def percent(ratio: Decimal | None) -> int | None:
    """A ratio as a whole percentage, rounded half up (1.275 → 128)."""
    if ratio is None:
        return None
    return int((ratio * 100).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


def annual_value_minor(price_minor: int, cadence: str) -> int:
    """What a retainer brings in a year at its price per period."""
    return price_minor * RetainerTerms.Cadence(cadence).per_year


# --- Per period ------------------------------------------------------------------------


@dataclass(frozen=True)
class PeriodFigures:
    seq: int
    start_on: date
    end_on: date  # exclusive, like the period's
    open: bool
    allotted: Decimal = ZERO
    rolled_in: Decimal = ZERO
    adjusted: Decimal = ZERO
    used: Decimal = ZERO
    rolled_out: Decimal = ZERO
    expired: Decimal = ZERO
    overage: Decimal = ZERO
    balance: Decimal = ZERO
    deliverables_planned: int = 0
    deliverables_delivered: int = 0
    deliverables_extra: int = 0

    @property
    def available(self) -> Decimal:
        return self.allotted + self.rolled_in + self.adjusted

    @property
    def utilisation(self) -> Decimal | None:
        return utilisation(self.used, self.available)

    @property
    def went_over(self) -> bool:
        return went_over(self.used, self.available)


def period_figures(entries: Iterable[tuple[str, Decimal, bool]]) -> dict[str, Decimal]:
    """Sum a period's ledger rows (kind, quantity, is_usage) into its figures.

    `is_usage` marks deliveries and their reversals (rows tied to a work item); every figure
    is positive the way people read it, and `balance` is the plain sum of every row.
    """
    sums = dict.fromkeys(FIGURES, ZERO)
    for kind, quantity, is_usage in entries:
        sums["balance"] += quantity
        if is_usage:
            sums["used"] -= quantity
        elif kind == "allotment":
            sums["allotted"] += quantity
        elif kind == "rollover_in":
            sums["rolled_in"] += quantity
        elif kind == "rollover_out":
            sums["rolled_out"] -= quantity
        elif kind == "expiry":
            sums["expired"] -= quantity
        elif kind == "overage":
            sums["overage"] += quantity
        else:  # adjustments (and reversals not tied to work)
            sums["adjusted"] += quantity
    return sums


# --- Trend and suggestion -------------------------------------------------------------------


def _ratio(periods: Sequence[PeriodFigures]) -> Decimal | None:
    available = sum((p.available for p in periods), ZERO)
    used = sum((p.used for p in periods), ZERO)
    return utilisation(used, available)


def closed_with_units(periods: Sequence[PeriodFigures]) -> list[PeriodFigures]:
    """The closed periods that made units available: the ones with a utilisation (a sparkline dot)."""
    return [p for p in periods if not p.open and p.available > 0]


@dataclass(frozen=True)
class Trend:
    recent_periods: int
    recent_utilization: int | None  # percent, the last RECENT_PERIODS closed periods together
    term_utilization: int | None  # percent, every closed period of the term together
    direction: str  # "rising", "falling", "steady" or "unknown"


def trend(periods: Sequence[PeriodFigures]) -> Trend:
    """Recent utilisation against the term's: ratios of sums, so a short period weighs what it had."""
    closed = closed_with_units(periods)
    recent = closed[-RECENT_PERIODS:]
    recent_ratio, term_ratio = _ratio(recent), _ratio(closed)
    if recent_ratio is None or term_ratio is None or len(closed) <= len(recent):
        direction = "unknown" if recent_ratio is None else "steady"
    elif recent_ratio - term_ratio >= TREND_STEP:
        direction = "rising"
    elif term_ratio - recent_ratio >= TREND_STEP:
        direction = "falling"
    else:
        direction = "steady"
    return Trend(len(recent), percent(recent_ratio), percent(term_ratio), direction)


@dataclass(frozen=True)
class Suggestion:
    kind: str  # "keep", "upgrade" or "downgrade" (Renewal.Suggestion)
    reason: str
    units_per_period: Decimal
    price_minor: int


def round_up_units(quantity: Decimal) -> Decimal:
    """Up to a number people sign for: whole units to 20, then fives to 100, then tens."""
    step = 1 if quantity <= 20 else 5 if quantity <= 100 else 10
    return Decimal(math.ceil(quantity / step) * step).quantize(Decimal("0.01"))


def scale_price(price_minor: int, *, units: Decimal, from_units: Decimal) -> int:
    """The price per period scaled pro rata to the new units, rounded half up to a minor unit."""
    if from_units <= 0:
        return price_minor
    return int((Decimal(price_minor) * units / from_units).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


def _span(count: int, noun: str, *, partial: bool) -> str:
    if partial:
        return f"this {noun} so far"
    return f"the last {noun}" if count == 1 else f"the last {count} {noun}s"


def suggest(
    *,
    periods: Sequence[PeriodFigures],
    model: str,
    unit: str,
    cadence: str,
    units_per_period: Decimal,
    price_minor: int,
    amended: bool = False,
) -> Suggestion:
    """Keep, upgrade or downgrade, with the reason in words.

    `units_per_period` and `price_minor` are the terms the next term starts from: a pending
    amendment's when there is one (`amended`), and then each period is measured as if it had
    made the amended allotment available (what the client already agreed to is the baseline).

    Over the last RECENT_PERIODS closed periods (or, before any closed, the open one so far):
    - upgrade when the average utilisation is above 100%, or when the term went into
      overage in OVERAGE_PERIODS_FOR_UPGRADE periods or more: units up to cover the average
      use (of the overage periods, if that is more), rounded up, the price scaled pro rata;
    - downgrade when the average use is under DOWNGRADE_BELOW of what was bought and none
      of those periods went over: units down to the average use, rounded up;
    - keep otherwise. An open period alone can only show an upgrade: half a period of low
      use proves nothing.
    Deliverables retainers have no units to size: keep, with what was delivered as the reason.
    """
    keep = Suggestion("keep", "", units_per_period, price_minor)
    noun = RetainerTerms.Cadence(cadence).noun
    if model == "deliverables":
        planned = sum(p.deliverables_planned for p in periods)
        delivered = sum(p.deliverables_delivered for p in periods)
        extra = sum(p.deliverables_extra for p in periods)
        if not planned and not extra:
            return Suggestion("keep", "No deliverables were planned this term.", units_per_period, price_minor)
        reason = f"{delivered} of {planned} planned deliverable{pluralize(planned, ' was,s were')} delivered this term"
        reason += f", and {extra} extra." if extra else "."
        return Suggestion("keep", reason, units_per_period, price_minor)

    if amended:
        periods = [replace(p, allotted=units_per_period) if p.allotted > 0 else p for p in periods]
    closed = closed_with_units(periods)
    window, partial = closed[-RECENT_PERIODS:], False
    if not window:
        window, partial = [p for p in periods if p.open and p.available > 0][-1:], True
    ratio = _ratio(window)
    if ratio is None:
        return Suggestion("keep", "There is no usage to go on yet.", units_per_period, price_minor)

    unit_noun = "hours" if unit == "hours" else "sessions"
    pct = percent(ratio)
    span = _span(len(window), noun, partial=partial)
    average_use = sum((p.used for p in window), ZERO) / len(window)
    over = [p for p in closed if p.went_over]
    said = f"You used {pct}% of your {unit_noun} on average over {span}"
    if over:
        said += f", and went over in {len(over)} of {len(closed)} {noun}{'s' if len(closed) != 1 else ''}"

    if ratio > UPGRADE_ABOVE or (len(over) >= OVERAGE_PERIODS_FOR_UPGRADE and not partial):
        target = average_use
        if over:
            target = max(target, sum((p.used for p in over), ZERO) / len(over))
        new_units = round_up_units(target)
        if new_units > units_per_period:
            price = scale_price(price_minor, units=new_units, from_units=units_per_period)
            change = f"{format_units(new_units)} {unit_noun} a {noun} (from {format_units(units_per_period)})"
            reason = f"{said}: {change} would cover it."
            return Suggestion("upgrade", reason[:255], new_units, price)

    if not partial and ratio < DOWNGRADE_BELOW and not any(p.went_over for p in window):
        new_units = max(round_up_units(average_use), Decimal("1.00"))
        if new_units < units_per_period:
            price = scale_price(price_minor, units=new_units, from_units=units_per_period)
            reason = (
                f"{said}: {format_units(new_units)} {unit_noun} a {noun} (from {format_units(units_per_period)}) "
                "would still cover it."
            )
            return Suggestion("downgrade", reason[:255], new_units, price)

    reason = f"{said}: {format_units(units_per_period)} {unit_noun} a {noun} fit."
    return Suggestion(keep.kind, reason[:255], units_per_period, price_minor)


# --- Payment punctuality -------------------------------------------------------------------


@dataclass(frozen=True)
class InvoiceRow:
    status: str  # billing.Invoice.Status
    due_on: date | None
    paid_on: date | None  # in the workspace's time zone
    total_minor: int


@dataclass(frozen=True)
class Punctuality:
    invoices: int = 0
    on_time: int = 0
    late: int = 0
    unpaid: int = 0  # overdue and still open, or written off as uncollectible
    not_due: int = 0  # open, not yet due
    average_days_late: str | None = None  # over the invoices paid late, one decimal


def punctuality(rows: Iterable[InvoiceRow], *, today: date) -> Punctuality:
    """How the term's invoices were paid: on time (by the due date), late, or not at all."""
    on_time = late = unpaid = not_due = count = 0
    days_late: list[int] = []
    for row in rows:
        count += 1
        if row.status == "paid":
            if row.due_on is None or row.paid_on is None or row.paid_on <= row.due_on:
                on_time += 1
            else:
                late += 1
                days_late.append((row.paid_on - row.due_on).days)
        elif row.status == "open" and (row.due_on is None or row.due_on >= today):
            not_due += 1
        else:
            unpaid += 1
    average = None
    if days_late:
        average = str((Decimal(sum(days_late)) / len(days_late)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))
    return Punctuality(count, on_time, late, unpaid, not_due, average)


# --- The sparkline ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sparkline:
    width: int
    height: int
    points: str  # SVG polyline points
    dots: list[tuple[str, str, bool]]  # (x, y, over 100%)
    full_y: str  # the 100% line
    summary: str


def sparkline(values: Sequence[tuple[int | None, bool]], *, width: int = 200, height: int = 48) -> Sparkline | None:
    """Utilisation percentages with whether the period went over, one per period, as a small line
    with the 100% mark and the periods that went over in red.

    Periods without units (None) are skipped. None when there is nothing to draw.
    """
    over = {i for i, (_, went) in enumerate(values) if went}
    known = [(i, v) for i, (v, _) in enumerate(values) if v is not None]
    if not known:
        return None
    pad = 4
    ceiling = max(100, *(v for _, v in known))
    slots = max(len(values) - 1, 1)

    def x(i: int) -> float:
        return pad + (width - 2 * pad) * i / slots

    def y(v: int) -> float:
        return pad + (height - 2 * pad) * (ceiling - v) / ceiling

    points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in known)
    dots = [(f"{x(i):.1f}", f"{y(v):.1f}", i in over) for i, v in known]
    summary = "Utilisation by period: " + ", ".join(f"{v}%" for _, v in known) + "."
    return Sparkline(width, height, points, dots, f"{y(100):.1f}", summary)


# --- Reading the database ----------------------------------------------------------------


@dataclass
class Evidence:
    """Everything the proposal rests on, ready to store as JSON."""

    term_starts_on: date
    term_ends_on: date
    computed_on: date
    model: str
    unit: str
    cadence: str
    periods: list[PeriodFigures]
    trend: Trend
    payments: Punctuality
    highlights: list[dict[str, str]] = field(default_factory=list)
    suggestion: Suggestion | None = None
    base_terms: dict[str, object] = field(default_factory=dict)  # the terms the next term starts from

    def totals(self) -> dict[str, Decimal]:
        return {name: sum((getattr(p, name) for p in self.periods), ZERO) for name in FIGURES}

    def as_json(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, Decimal):
                return f"{value:.2f}"
            if isinstance(value, (date, datetime)):
                return value.isoformat()
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [plain(v) for v in value]
            return value

        over = [p for p in self.periods if p.overage > 0]
        totals = self.totals()
        return plain(
            {
                "version": 1,
                "computed_on": self.computed_on,
                "term": {
                    "starts_on": self.term_starts_on,
                    "ends_on": self.term_ends_on,
                    "model": self.model,
                    "unit": self.unit,
                    "cadence": self.cadence,
                },
                "periods": [
                    {**asdict(p), "utilisation": percent(p.utilisation), "went_over": p.went_over} for p in self.periods
                ],
                "totals": {
                    **totals,
                    "utilisation": utilisation_percent(
                        totals["used"], totals["allotted"] + totals["rolled_in"] + totals["adjusted"]
                    ),
                    "deliverables_planned": sum(p.deliverables_planned for p in self.periods),
                    "deliverables_delivered": sum(p.deliverables_delivered for p in self.periods),
                    "deliverables_extra": sum(p.deliverables_extra for p in self.periods),
                },
                "trend": asdict(self.trend),
                "overage": {
                    "periods": len(over),
                    "units": sum((p.overage for p in over), ZERO),
                    "history": [{"seq": p.seq, "start_on": p.start_on, "overage": p.overage} for p in over],
                },
                "payments": asdict(self.payments),
                "highlights": self.highlights,
                "suggestion": asdict(self.suggestion) if self.suggestion else None,
            }
        )


def term_periods(retainer, *, term_ends_on: date, starts_after: date | None):
    """The periods of the term ending `term_ends_on`: the last `term_periods` that start before
    it (after the previous term's end, when a renewal recorded it). Newest last."""
    periods = Period.objects.filter(retainer=retainer, start_on__lt=term_ends_on)
    if starts_after is not None:
        periods = periods.filter(start_on__gte=starts_after)
    return list(reversed(periods.order_by("-seq")[: retainer.term_periods]))


def build_evidence(retainer, *, term_ends_on: date, today: date) -> Evidence:
    """Read the term's ledger, deliverables and invoices; compute the figures and the suggestion.
    Five queries, however long the term, and those of the `evidence_built` receivers (the shared
    notes' highlights, one more: communication.receivers)."""
    workspace = retainer.workspace
    previous = (
        Renewal.objects.filter(retainer=retainer, term_ends_on__lt=term_ends_on)
        .order_by("-term_ends_on")
        .values_list("term_ends_on", flat=True)
        .first()
    )
    periods = term_periods(retainer, term_ends_on=term_ends_on, starts_after=previous)
    term_starts_on = periods[0].start_on if periods else retainer.starts_on
    ids = [p.pk for p in periods]

    rows: dict[int, list[tuple[str, Decimal, bool]]] = defaultdict(list)
    for row in (
        LedgerEntry.objects.filter(retainer=retainer, period_id__in=ids)
        .annotate(usage=ExpressionWrapper(Q(work_item__isnull=False), output_field=BooleanField()))
        .values("period_id", "kind", "usage")
        .annotate(total=Sum("quantity"))
        .order_by()
    ):
        rows[row["period_id"]].append((row["kind"], row["total"], row["usage"]))

    deliverables: dict[int, dict[str, int]] = defaultdict(lambda: {"planned": 0, "delivered": 0, "extra": 0})
    for period_id, status, extra in Deliverable.objects.filter(retainer=retainer, period_id__in=ids).values_list(
        "period_id", "status", "extra"
    ):
        counts = deliverables[period_id]
        if extra:
            counts["extra"] += status == Deliverable.Status.DELIVERED
        else:
            # A carried deliverable is planned in the period it was finally delivered or lapsed in.
            counts["planned"] += status != Deliverable.Status.CARRIED
            counts["delivered"] += status == Deliverable.Status.DELIVERED

    figures = [
        PeriodFigures(
            seq=p.seq,
            start_on=p.start_on,
            end_on=p.end_on,
            open=p.status == "open",
            **period_figures(rows.get(p.pk, [])),
            deliverables_planned=deliverables[p.pk]["planned"],
            deliverables_delivered=deliverables[p.pk]["delivered"],
            deliverables_extra=deliverables[p.pk]["extra"],
        )
        for p in periods
    ]

    invoices = (
        Invoice.objects.filter(workspace=workspace, retainer=retainer, issued_on__gte=term_starts_on)
        .filter(issued_on__lt=term_ends_on)
        .exclude(kind=Invoice.Kind.CREDIT_NOTE)
        .exclude(status__in=[Invoice.Status.DRAFT, Invoice.Status.VOID])
        .values_list("status", "due_on", "paid_at", "total_minor")
    )
    zone = workspace.tzinfo
    payments = punctuality(
        (
            InvoiceRow(status, due_on, paid_at.astimezone(zone).date() if paid_at else None, total)
            for status, due_on, paid_at, total in invoices
        ),
        today=today,
    )

    evidence = Evidence(
        term_starts_on=term_starts_on,
        term_ends_on=term_ends_on,
        computed_on=today,
        model=retainer.model,
        unit=retainer.unit,
        cadence=retainer.cadence,
        periods=figures,
        trend=trend(figures),
        payments=payments,
    )
    signals.evidence_built.send(sender=Evidence, retainer=retainer, evidence=evidence, term_starts_on=term_starts_on)
    # A change of terms already agreed (taking effect by the next term) is where the next term starts from.
    pending = Amendment.objects.filter(retainer=retainer, applied_at=None, effective_on__lte=term_ends_on).first()
    evidence.base_terms = pending.terms() if pending is not None else retainer.terms()
    evidence.suggestion = suggest(
        periods=figures,
        model=retainer.model,
        unit=retainer.unit,
        cadence=retainer.cadence,
        units_per_period=pending.units_per_period if pending is not None else retainer.units_per_period,
        price_minor=pending.price_minor if pending is not None else retainer.price_minor,
        amended=pending is not None and pending.units_per_period != retainer.units_per_period,
    )
    return evidence


# --- Reading stored evidence back ---------------------------------------------------------------


def for_display(evidence: Mapping[str, Any]) -> dict[str, Any]:
    """Stored evidence with its dates as dates, for templates; an empty dict stays empty."""
    if not evidence:
        return {}

    def day(value: str | None) -> date | None:
        return date.fromisoformat(value) if value else None

    shown = dict(evidence)
    shown["term"] = {
        **evidence["term"],
        "starts_on": day(evidence["term"]["starts_on"]),
        "ends_on": day(evidence["term"]["ends_on"]),
    }
    shown["computed_on"] = day(evidence.get("computed_on"))
    shown["periods"] = [
        {**p, "start_on": day(p["start_on"]), "end_on": day(p["end_on"]), **_utilisation_of(p)}
        for p in evidence.get("periods", [])
    ]
    if "totals" in evidence:
        shown["totals"] = {**evidence["totals"], **_utilisation_of(evidence["totals"])}
    shown["highlights"] = [{**h, "date": day(h["date"])} for h in evidence.get("highlights", [])]
    shown["overage"] = {
        **evidence.get("overage", {}),
        "history": [{**h, "start_on": day(h["start_on"])} for h in evidence.get("overage", {}).get("history", [])],
    }
    # Closed periods only: an open period's use so far would dip the line for no reason.
    closed = [(p["utilisation"], p["went_over"]) for p in shown["periods"] if not p.get("open")]
    shown["sparkline"] = sparkline(closed or [(p["utilisation"], p["went_over"]) for p in shown["periods"]])
    return shown


def _utilisation_of(figures: Mapping[str, Any]) -> dict[str, Any]:
    """A stored period's (or the totals') utilisation and whether it went over, from its stored
    figures: evidence stored before utilisation had one definition shows today's."""
    if "used" not in figures:
        return {"utilisation": None, "went_over": False}
    used = Decimal(figures["used"])
    available = sum((Decimal(figures.get(name, "0")) for name in ("allotted", "rolled_in", "adjusted")), ZERO)
    return {"utilisation": utilisation_percent(used, available), "went_over": went_over(used, available)}
