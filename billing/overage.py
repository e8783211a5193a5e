"""Overage the client approved (delivery.approvals), on the invoice: one line per approval that
covered work, at the approval's rate, naming the approval. The invoice builder
(`billing.invoicing.invoice_lines`) calls `approved_overage_lines` for the period whose usage it
bills, with each approval's covered units: as the close settled them (`settled_approvals`, the
billing run and a closed period in the preview), or as the close would (the preview of an open one).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal

from billing.models import InvoiceLine
from clients.models import Retainer
from delivery.models import OverageApproval, Period
from retainers.dates import period_range
from retainers.money import multiply

# By period id: the period's approvals, oldest answer first, each with the units it covers.
Covered = Mapping[int, Sequence[tuple[OverageApproval, Decimal]]]


def settled_approvals(
    workspace_ids: Iterable[int], periods: Iterable[Period]
) -> dict[int, list[tuple[OverageApproval, Decimal]]]:
    """The approvals of closed `periods` that covered work, with what each covered as the period's
    close set it (`OverageApproval.used`), by period id: one query."""
    result: dict[int, list[tuple[OverageApproval, Decimal]]] = defaultdict(list)
    for approval in OverageApproval.objects.filter(
        workspace_id__in=list(workspace_ids),
        period_id__in=[p.pk for p in periods],
        status=OverageApproval.Status.APPROVED,
        used__gt=0,
    ).order_by("answered_at", "pk"):
        result[approval.period_id].append((approval, approval.used))
    return result


def approved_overage_lines(
    usage: Period, retainer: Retainer, covered: Sequence[tuple[OverageApproval, Decimal]] = ()
) -> list[InvoiceLine]:
    """The lines billing a period's approved overage: one per approval in `covered` (the period's
    approvals with the units each covers, oldest answer first) that covered any. None for a period
    that used none."""
    if usage.approved_overage <= 0:
        return []
    unit = retainer.get_unit_display().lower()
    lines = []
    for approval, quantity in covered:
        if quantity <= 0:
            continue
        assert approval.answered_at is not None  # an approved request was answered
        who = approval.answered_name.split(" <")[0] or "the client"
        lines.append(
            InvoiceLine(
                kind=InvoiceLine.Kind.OVERAGE,
                description=(
                    f"Approved overage: {quantity} {unit}, {period_range(usage.start_on, usage.end_on)} "
                    f"(approval #{approval.pk} by {who} on {approval.answered_at:%d %b %Y})"
                )[:255],
                quantity=quantity,
                unit_price_minor=approval.rate_minor,
                amount_minor=multiply(approval.rate_minor, quantity),
            )
        )
    return lines
