"""What a retainer period's invoice says: its lines and its totals.

One builder for both the billing run (`billing.services`, which issues the invoice) and the
next-invoice preview (`billing.preview`, which shows it before it is issued): with no further
work recorded the preview is, to the minor unit and line by line, the invoice the run issues.
Pure functions over rows already read; nothing here queries or writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from billing.models import Invoice, InvoiceLine
from billing.overage import Covered, approved_overage_lines
from billing.tax import tax_on
from clients.models import Retainer
from delivery.models import Deliverable, Period
from retainers.dates import period_range
from retainers.money import multiply


@dataclass(frozen=True)
class Totals:
    subtotal_minor: int
    tax_minor: int
    total_minor: int


def invoice_totals(lines: Sequence[InvoiceLine], *, tax_rate_bp: int) -> Totals:
    """An invoice's subtotal (the sum of its lines), its tax and total (subtotal + tax)."""
    subtotal = sum(line.amount_minor for line in lines)
    tax = tax_on(subtotal, tax_rate_bp)
    return Totals(subtotal_minor=subtotal, tax_minor=tax, total_minor=subtotal + tax)


def invoice_lines(
    period: Period,
    previous: Period | None,
    retainer: Retainer,
    extras: Mapping[int, Sequence[Deliverable]],
    *,
    kind: str,
    approvals: Covered,
) -> list[InvoiceLine]:
    """The lines (unsaved) of a retainer period's invoice.

    In advance: this period's fee, plus the overage and extra deliverables of the period
    that just ended (`previous`). In arrears: this period's fee, overage and extras, at the
    period's end. A closing invoice bills what the last period of an in-advance retainer used
    beyond its fee, since no next invoice will carry it. `extras` are the delivered extra
    deliverables by period id; the usage period's `overage` and `approved_overage` are read as
    closing set them; approved overage is billed on its own lines (`billing.overage`), one per
    approval in `approvals` (by period id: each approval with the units it covers).
    """
    lines = []
    if kind == Invoice.Kind.SCHEDULED:
        lines.append(
            InvoiceLine(
                kind=InvoiceLine.Kind.FEE,
                description=f"{retainer.name}: {period_range(period.start_on, period.end_on)}",
                quantity=Decimal("1"),
                unit_price_minor=period.price_minor,
                amount_minor=period.price_minor,
            )
        )
    usage = period if period.billing_timing == "arrears" or kind == Invoice.Kind.CLOSING else previous
    if usage is not None and usage.overage > 0 and usage.overage_rate_minor > 0:
        unit = retainer.get_unit_display().lower()
        lines.append(
            InvoiceLine(
                kind=InvoiceLine.Kind.OVERAGE,
                description=f"Overage: {usage.overage} {unit} beyond the allotment, "
                f"{period_range(usage.start_on, usage.end_on)}",
                quantity=usage.overage,
                unit_price_minor=usage.overage_rate_minor,
                amount_minor=multiply(usage.overage_rate_minor, usage.overage),
            )
        )
    if usage is not None:
        lines += approved_overage_lines(usage, retainer, approvals.get(usage.pk, ()))
    if usage is not None and usage.extra_deliverable_price_minor > 0:
        for deliverable in extras.get(usage.pk, []):
            lines.append(
                InvoiceLine(
                    kind=InvoiceLine.Kind.EXTRA_DELIVERABLE,
                    description=f"Extra deliverable: {deliverable.name}",
                    quantity=Decimal("1"),
                    unit_price_minor=usage.extra_deliverable_price_minor,
                    amount_minor=usage.extra_deliverable_price_minor,
                )
            )
    return lines
