"""Overage the client approved (delivery.approvals), on the invoice: one line per approval that
covered work, at the approval's rate, naming the approval. The invoice builder calls
`approved_overage_lines` for the period whose usage it bills."""

from __future__ import annotations

from datetime import timedelta

from billing.models import InvoiceLine
from clients.models import Retainer
from delivery.models import OverageApproval, Period
from retainers.money import multiply


def approved_overage_lines(usage: Period, retainer: Retainer) -> list[InvoiceLine]:
    """The lines billing a closed period's approved overage: what each approval covered, as set when
    the period closed (`OverageApproval.used`). None for a period that used none."""
    if usage.approved_overage <= 0:
        return []
    unit = retainer.get_unit_display().lower()
    last_day = usage.end_on - timedelta(days=1)
    lines = []
    for approval in OverageApproval.objects.filter(
        workspace_id=usage.workspace_id, period=usage, status=OverageApproval.Status.APPROVED, used__gt=0
    ).order_by("answered_at", "pk"):
        assert approval.answered_at is not None  # an approved request was answered
        who = approval.answered_name.split(" <")[0] or "the client"
        lines.append(
            InvoiceLine(
                kind=InvoiceLine.Kind.OVERAGE,
                description=(
                    f"Approved overage: {approval.used} {unit}, {usage.start_on:%d %b} – {last_day:%d %b %Y} "
                    f"(approval #{approval.pk} by {who} on {approval.answered_at:%d %b %Y})"
                )[:255],
                quantity=approval.used,
                unit_price_minor=approval.rate_minor,
                amount_minor=multiply(approval.rate_minor, approval.used),
            )
        )
    return lines
