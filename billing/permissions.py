"""Who may move money in a workspace: void, issue credit notes, write off, refund, charge a card
now, and refund or apply a credit balance. Owners and admins may; members only when the
workspace's billing settings grant it (`BillingProfile.members_move_money`)."""

from __future__ import annotations

from billing.models import BillingProfile
from retainers.models import Membership

REFUSAL = "Only owners and admins can move money in this workspace (void, credit, write off, refund or charge)."


def may_move_money(membership: Membership) -> bool:
    if membership.is_admin:
        return True
    return BillingProfile.objects.filter(workspace_id=membership.workspace_id, members_move_money=True).exists()
