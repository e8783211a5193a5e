"""Workflows of the core: workspaces, the team, invitations."""

from __future__ import annotations

import hmac

from django.db import transaction
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from retainers import audit, tenancy
from retainers.models import INVITATION_LIFETIME, Invitation, Membership, User, Workspace, hash_secret
from retainers.outbox import queue_email

Role = Membership.Role

# Slugs that would read as product pages rather than a customer's workspace.
RESERVED_SLUGS = {"new", "admin", "api", "app", "portal", "accounts", "static", "media", "www", "healthz"}


class TeamError(Exception):
    """A team change that is not allowed; the message is shown to the user."""


def unique_slug(name: str) -> str:
    base = (slugify(name) or "workspace")[:50].strip("-") or "workspace"
    if base in RESERVED_SLUGS:
        base = f"{base}-team"
    taken = set(Workspace.objects.filter(slug__startswith=base).values_list("slug", flat=True))
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    return slug


def dismiss_onboarding(*, workspace: Workspace) -> None:
    """Hide the dashboard's getting-started checklist for good. Idempotent: the first dismissal's time stays."""
    Workspace.objects.filter(pk=workspace.pk, onboarding_dismissed_at=None).update(
        onboarding_dismissed_at=timezone.now()
    )


@transaction.atomic
def create_workspace(*, owner: User, name: str, timezone_name: str, currency: str) -> Workspace:
    """Create a workspace and make `owner` its owner."""
    workspace = Workspace.objects.create(
        name=name.strip(), slug=unique_slug(name), timezone=timezone_name, currency=currency.upper()
    )
    with tenancy.use_workspace(workspace):
        Membership.objects.create(workspace=workspace, user=owner, role=Role.OWNER)
    return workspace


@transaction.atomic
def update_workspace(
    *, workspace: Workspace, name: str, timezone_name: str, currency: str, actor: User | None = None
) -> Workspace:
    fields = ["name", "timezone", "currency"]
    before = {name: getattr(workspace, name) for name in fields}
    workspace.name, workspace.timezone, workspace.currency = name.strip(), timezone_name, currency.upper()
    workspace.save(update_fields=fields)
    changes = audit.diff(before, {name: getattr(workspace, name) for name in fields})
    if changes:
        audit.record(
            workspace=workspace, actor=actor, action="settings.workspace_changed", target=workspace, changes=changes
        )
    return workspace


def consultant_recipients(workspace_id: int) -> list[tuple[int, str]]:
    """Who hears about money trouble and renewals: the workspace's active owners and admins, as
    (user id, email), in a stable order (outbox keys are built from the user id)."""
    return list(
        Membership.objects.filter(
            workspace_id=workspace_id, role__in=[Membership.Role.OWNER, Membership.Role.ADMIN], user__is_active=True
        )
        .order_by("user_id")
        .values_list("user_id", "user__email")
    )


def assignable_roles(actor: Membership) -> list[str]:
    """Owners may grant any role; admins may grant admin or member."""
    if actor.role == Role.OWNER:
        return [Role.OWNER, Role.ADMIN, Role.MEMBER]
    if actor.role == Role.ADMIN:
        return [Role.ADMIN, Role.MEMBER]
    return []


@transaction.atomic
def invite_member(*, actor: Membership, email: str, role: str) -> Invitation:
    """Email an invitation link; re-inviting the same address replaces the open invitation."""
    if role not in assignable_roles(actor):
        raise TeamError("You cannot invite someone with that role.")
    email = email.strip().lower()
    workspace = actor.workspace
    if Membership.objects.for_workspace(workspace).filter(user__email__iexact=email).exists():
        raise TeamError(f"{email} is already a member of this workspace.")
    now = timezone.now()
    Invitation.objects.for_workspace(workspace).annotate(email_ci=Lower("email")).filter(
        email_ci=email, accepted_at=None, revoked_at=None
    ).update(revoked_at=now)
    secret = Invitation.new_secret()
    invitation = Invitation.objects.create(
        workspace=workspace,
        email=email,
        role=role,
        secret_hash=hash_secret(secret),
        invited_by=actor.user,
        created_at=now,
        expires_at=now + INVITATION_LIFETIME,
    )
    queue_email(
        to=email,
        template="invitation",
        context={
            "workspace": workspace,
            "inviter": actor.user,
            "role": invitation.get_role_display(),
            "expires_at": invitation.expires_at,
            "path": reverse("invitation_accept", args=[invitation.token(secret)]),
        },
        workspace=workspace,
        reply_to=actor.user.email,
        secret=True,  # the link lets anyone join
    )
    audit.record(
        workspace=workspace,
        actor=actor,
        action="member.invited",
        target=invitation,
        summary=email,
        changes={"email": email, "role": role},
    )
    return invitation


def find_invitation(token: str) -> Invitation | None:
    """The invitation a link's token points at, whatever its state; None for a forged or garbled token."""
    pk, _, secret = token.partition(".")
    if not pk.isdigit() or not secret:
        return None
    # Before anyone knows its workspace: the one row the token names, across workspaces.
    with tenancy.cross_tenant("invitation link: the invitation a token names"):
        invitation = Invitation.objects.select_related("workspace").filter(pk=int(pk)).first()
    if invitation is None or not hmac.compare_digest(invitation.secret_hash, hash_secret(secret)):
        return None
    return invitation


@transaction.atomic
def accept_invitation(*, invitation: Invitation, user: User) -> Membership:
    """Join the workspace. The link works once: the row is locked and marked accepted."""
    with tenancy.use_workspace(invitation.workspace_id):
        return _accept_invitation(invitation=invitation, user=user)


def _accept_invitation(*, invitation: Invitation, user: User) -> Membership:
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    now = timezone.now()
    if not invitation.is_open(now=now):
        raise TeamError("This invitation has expired or was already used.")
    if invitation.email.lower() != user.email.lower():
        raise TeamError(f"This invitation is for {invitation.email}. Sign in with that address to accept it.")
    invitation.accepted_at, invitation.accepted_by = now, user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    membership, created = Membership.objects.get_or_create(
        workspace_id=invitation.workspace_id, user=user, defaults={"role": invitation.role}
    )
    if created:
        audit.record(
            workspace=invitation.workspace_id,
            actor=user,
            action="member.joined",
            target=membership,
            summary=user.email,
            changes={"role": membership.role, "invitation": invitation.pk},
        )
    return membership


@transaction.atomic
def accept_invitation_as_new_user(*, invitation: Invitation, name: str, password: str) -> Membership:
    """Create the invited person's account and join. The emailed link proves they own the address."""
    from allauth.account.models import EmailAddress

    if User.objects.filter(email__iexact=invitation.email).exists():
        raise TeamError(f"An account for {invitation.email} already exists. Sign in to accept.")
    user = User.objects.create_user(email=invitation.email, password=password, name=name.strip())
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    return accept_invitation(invitation=invitation, user=user)


@transaction.atomic
def revoke_invitation(*, actor: Membership, invitation: Invitation) -> None:
    if not actor.is_admin:
        raise TeamError("Only owners and admins can revoke invitations.")
    revoked = Invitation.objects.filter(pk=invitation.pk, accepted_at=None, revoked_at=None).update(
        revoked_at=timezone.now()
    )
    if revoked:
        audit.record(
            workspace=actor.workspace_id,
            actor=actor,
            action="member.invitation_revoked",
            target=invitation,
            summary=invitation.email,
        )


def _lock_team(workspace: Workspace) -> list[Membership]:
    """Lock the workspace row, then its memberships: the one lock order for team changes."""
    Workspace.objects.select_for_update().get(pk=workspace.pk)
    return list(Membership.objects.for_workspace(workspace).select_for_update().order_by("pk"))


@transaction.atomic
def change_role(*, actor: Membership, membership: Membership, role: str) -> Membership:
    """Change a member's role. Only owners touch owners; a workspace always keeps an owner."""
    team = _lock_team(actor.workspace)
    if role not in Role.values:
        raise TeamError("Unknown role.")
    if role not in assignable_roles(actor) or (membership.role == Role.OWNER and actor.role != Role.OWNER):
        raise TeamError("You cannot give or take away that role.")
    owners = [m for m in team if m.role == Role.OWNER]
    if membership.role == Role.OWNER and role != Role.OWNER and len(owners) == 1:
        raise TeamError("A workspace needs at least one owner. Make someone else owner first.")
    changes = audit.diff({"role": membership.role}, {"role": role})
    membership.role = role
    membership.save(update_fields=["role"])
    if changes:
        audit.record(
            workspace=actor.workspace_id,
            actor=actor,
            action="member.role_changed",
            target=membership,
            summary=membership.user.email,
            changes=changes,
        )
    return membership


@transaction.atomic
def remove_member(*, actor: Membership, membership: Membership) -> None:
    """Remove someone from the team (or leave it yourself). The last owner cannot leave."""
    team = _lock_team(actor.workspace)
    leaving = membership.pk == actor.pk
    if not leaving and (not actor.is_admin or (membership.role == Role.OWNER and actor.role != Role.OWNER)):
        raise TeamError("You cannot remove this member.")
    if membership.role == Role.OWNER and sum(m.role == Role.OWNER for m in team) == 1:
        raise TeamError("A workspace needs at least one owner. Make someone else owner first.")
    audit.record(
        workspace=actor.workspace_id,
        actor=actor,
        action="member.left" if leaving else "member.removed",
        target=membership,
        summary=membership.user.email,
        changes={"role": membership.role},
    )
    membership.delete()
