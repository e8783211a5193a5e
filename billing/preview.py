"""The next-invoice preview: an estimate of a retainer's next scheduled invoice, as the billing
run will issue it (the client portal shows it on each retainer card)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from billing.services import tax_on
from clients.models import Amendment, Retainer, RetainerTerms
from delivery.figures import PeriodFigures
from delivery.forecast import ends_with
from delivery.models import Period
from retainers.money import format_money, multiply


@dataclass
class NextInvoice:
    on: date
    amount: str
    includes_overage: bool


def next_invoice(
    retainer: Retainer,
    period: Period,
    figures: PeriodFigures,
    *,
    pending: Amendment | None,
    delivered_extras: int,
    tax_rate_bp: int,
    locale: str,
    approved: Decimal = Decimal("0"),
) -> NextInvoice | None:
    """An estimate of the retainer's next scheduled invoice, as the billing run will issue it.

    In advance: at the period end, the next period's fee (a pending amendment's, if it takes
    effect by then) plus this period's overage and extras so far. In arrears: at the period
    end, this period's fee, overage and extras. None when no further fee is due. Overage counts
    under "bill", and otherwise as far as the client `approved` it (delivery.approvals).
    """
    if retainer.status != Retainer.Status.ACTIVE:
        return None
    ends_here = ends_with(retainer, period)
    if period.billing_timing == RetainerTerms.Timing.ADVANCE:
        if ends_here:
            return None
        terms = pending if pending is not None and pending.effective_on <= period.end_on else retainer
        fee, currency = terms.price_minor, terms.currency
    else:
        fee, currency = period.price_minor, period.currency
    extra = 0
    billed = (
        figures.overage if retainer.overage_policy == RetainerTerms.Overage.BILL else min(figures.overage, approved)
    )
    if billed > 0:
        extra += multiply(period.overage_rate_minor, billed)
    extra += delivered_extras * period.extra_deliverable_price_minor
    subtotal = fee + extra
    return NextInvoice(
        on=period.end_on,
        amount=format_money(subtotal + tax_on(subtotal, tax_rate_bp), currency, locale),
        includes_overage=extra > 0,
    )
