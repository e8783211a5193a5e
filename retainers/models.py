"""The core: users, workspaces (the tenants), memberships, invitations and the email outbox."""

from __future__ import annotations

import hashlib
import secrets
from datetime import date, datetime, timedelta
from typing import ClassVar, Self
from zoneinfo import ZoneInfo

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone as tz


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra: object) -> User:
        if not email:
            raise ValueError("An email address is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra: object) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: object) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self._create_user(email, password, **extra)

    def get_by_natural_key(self, email: str | None) -> User:
        return self.get(email__iexact=email)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who signs in: a workspace member, a client's contact, or both. Email is the login."""

    email = models.EmailField(max_length=254, unique=True)
    name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=tz.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        constraints = [models.UniqueConstraint(Lower("email"), name="user_email_ci_unique")]

    def __str__(self) -> str:
        return self.email

    def get_full_name(self) -> str:
        return self.name or self.email

    def get_short_name(self) -> str:
        return self.name.split(" ")[0] if self.name else self.email


CURRENCY_CODE = r"^[A-Z]{3}$"


def currency_constraint() -> models.CheckConstraint:
    """The `currency` column holds an ISO 4217 code, as Stripe and retainers.money read it: three capital
    letters. Every table with a currency lists it in its Meta (the name is per table)."""
    return models.CheckConstraint(condition=models.Q(currency__regex=CURRENCY_CODE), name="%(class)s_currency_code")


class Workspace(models.Model):
    """A tenant: one consultant's business or a small firm."""

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    timezone = models.CharField(max_length=64, default="UTC")
    currency = models.CharField(max_length=3, default="USD")
    locale = models.CharField(max_length=10, default="en_US", help_text="How amounts are written, e.g. en_GB, de_DE.")
    created_at = models.DateTimeField(default=tz.now)
    # The dashboard's getting-started checklist was closed by hand before it was complete.
    onboarding_dismissed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [currency_constraint()]

    def __str__(self) -> str:
        return self.name

    @property
    def tzinfo(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def today(self) -> date:
        """The business date in the workspace's own time zone."""
        return tz.localdate(timezone=self.tzinfo)


class DataVersion(models.Model):
    """A counter per workspace that PostgreSQL moves whenever a transaction changes the workspace's
    data (see retainers.pagecache). Not tenant data: a plain id, no foreign key, so the trigger
    never fails on a workspace being deleted."""

    workspace_id = models.BigIntegerField(primary_key=True)
    version = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"workspace {self.workspace_id}: {self.version}"


class WorkspaceQuerySet[M: models.Model](models.QuerySet[M]):
    def for_workspace(self, workspace: Workspace | int) -> Self:
        return self.filter(workspace=workspace)


class WorkspaceOwned(models.Model):
    """Base of every top-level tenant table: its own indexed, non-null workspace FK."""

    workspace = models.ForeignKey("retainers.Workspace", on_delete=models.PROTECT)

    objects = WorkspaceQuerySet.as_manager()

    class Meta:
        abstract = True


class Membership(WorkspaceOwned):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=tz.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "user"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace_id} as {self.role}"

    @property
    def is_admin(self) -> bool:
        """Owners and admins manage the workspace and its team."""
        return self.role in {self.Role.OWNER, self.Role.ADMIN}


INVITATION_LIFETIME = timedelta(days=7)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class InvitationQuerySet(WorkspaceQuerySet["Invitation"]):
    def pending(self) -> Self:
        return self.filter(accepted_at=None, revoked_at=None, expires_at__gt=tz.now())


class Invitation(WorkspaceOwned):
    """An emailed invitation to join a workspace. The link works once and expires.

    Only a hash of the link's secret is stored, so a database leak does not leak working links.
    """

    email = models.EmailField()
    role = models.CharField(max_length=10, choices=Membership.Role.choices, default=Membership.Role.MEMBER)
    secret_hash = models.CharField(max_length=64)
    invited_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=tz.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)

    # Bare ClassVar: like the base class's manager, a class attribute; django-stubs infers the manager type.
    objects: ClassVar = InvitationQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                "workspace",
                Lower("email"),
                condition=models.Q(accepted_at=None, revoked_at=None),
                name="invitation_one_open_per_email",
            )
        ]

    def __str__(self) -> str:
        return f"Invitation of {self.email} to {self.workspace_id}"

    @staticmethod
    def new_secret() -> str:
        return secrets.token_urlsafe(32)

    def token(self, secret: str) -> str:
        return f"{self.pk}.{secret}"

    def is_open(self, *, now: datetime) -> bool:
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > now


class DailyRun(WorkspaceOwned):
    """The last local date a daily job (dunning, renewals) processed a workspace. The hourly beat
    claims a workspace's day by moving `done_on` forward in one conditional upsert
    (`retainers.daily.claim_days`), so each workspace is processed once per local day."""

    class Job(models.TextChoices):
        DUNNING = "dunning", "Dunning"
        RENEWALS = "renewals", "Renewals"

    job = models.CharField(max_length=20, choices=Job.choices)
    done_on = models.DateField()
    claimed_at = models.DateTimeField(default=tz.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "job"], name="dailyrun_one_per_job")]

    def __str__(self) -> str:
        return f"{self.job} of workspace {self.workspace_id}: {self.done_on}"


class Email(models.Model):
    """The outbox: one row per email, written in the transaction that causes it.

    A platform table (account emails have no workspace), so it carries no workspace FK.
    The sender claims a row with a conditional UPDATE before talking to SMTP, so a row is
    handed to SMTP by one worker at a time and a sent row is never picked up again.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    key = models.CharField(max_length=200, null=True, blank=True, unique=True)
    to = models.EmailField()
    from_name = models.CharField(max_length=120)
    reply_to = models.EmailField(blank=True)
    subject = models.CharField(max_length=255)
    body_text = models.TextField()
    body_html = models.TextField()
    attachments = models.JSONField(default=list, blank=True)
    message_id = models.CharField(max_length=255)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=tz.now)
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=tz.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    # A working link or code (invitation, password reset, sign-in code): the body is redacted once sent.
    secret = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status__in=["queued", "sending"]),
                name="email_due_idx",
            ),
            models.Index(fields=["sent_at"], condition=models.Q(status="sent"), name="email_sent_idx"),  # pruning
        ]

    def __str__(self) -> str:
        return f"{self.subject} → {self.to} ({self.status})"


# What each audit action reads as on the invoice page and the client timeline.
AUDIT_ACTIONS = {
    "invoice.issued": "Issued",
    "invoice.paid": "Paid in full",
    "invoice.reopened": "Reopened",
    "invoice.voided": "Voided",
    "invoice.uncollectible": "Marked uncollectible",
    "payment.received": "Payment recorded",
    "charge.attempted": "Card charge started",
    "charge.failed": "Card charge failed",
    "refund.recorded": "Refund recorded",
    "refund.succeeded": "Refund succeeded",
    "refund.pending": "Refund pending",
    "refund.failed": "Refund failed",
    "refund.canceled": "Refund canceled",
    "refund.asked_back": "Refunded amount asked for again",
    "credit_note.issued": "Credit note issued",
    "credit.moved": "Credit moved to another invoice",
    "credit.applied": "Credit applied from another invoice",
    "credit.carried": "Credit carried to the next invoice",
    "terms.amended": "Terms amended",
    "retainer.paused": "Retainer paused",
    "retainer.resumed": "Retainer resumed",
    "retainer.cancelled": "Set to end at period end",
    "retainer.cancel_undone": "Cancellation undone",
    "retainer.ended": "Retainer ended",
    "retainer.collection_changed": "Payment collection changed",
    "overage.requested": "Overage approval asked",
    "overage.approved": "Overage approved",
    "overage.declined": "Overage declined",
    "renewal.accepted": "Renewal accepted",
    "renewal.declined": "Renewal declined",
    "member.invited": "Member invited",
    "member.invitation_revoked": "Invitation revoked",
    "member.joined": "Member joined",
    "member.role_changed": "Role changed",
    "member.removed": "Member removed",
    "member.left": "Member left",
    "settings.workspace_changed": "Workspace settings changed",
    "settings.billing_changed": "Billing settings changed",
}


class AuditEvent(WorkspaceOwned):
    """Who did what to which object, and how much money it moved: written by `retainers.audit.record`
    in the transaction of the change it describes. Append-only: PostgreSQL refuses UPDATE and DELETE
    (migration 0005), so the trail cannot be rewritten after the fact, whoever connects.

    The object is named by type ("billing.invoice") and id rather than by a foreign key: the audit
    trail sits in the core and may not point at the apps to its right; `client_id` likewise is a
    plain id, for the client's timeline. The actor's email is kept beside the key, so the row still
    says who when the person's account is gone.
    """

    actor = models.ForeignKey(User, on_delete=models.DO_NOTHING, db_constraint=False, null=True, related_name="+")
    actor_label = models.CharField(max_length=254, blank=True)
    action = models.CharField(max_length=60)
    object_type = models.CharField(max_length=60, blank=True)
    object_id = models.BigIntegerField(null=True, blank=True)
    client_id = models.BigIntegerField(null=True, blank=True)
    summary = models.CharField(max_length=255, blank=True)
    amount_minor = models.BigIntegerField(null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(default=tz.now)

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "object_type", "object_id"], name="audit_object_idx"),
            models.Index(fields=["workspace", "client_id", "created_at"], name="audit_client_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(currency="") | models.Q(currency__regex=CURRENCY_CODE),
                name="auditevent_currency_code",
            ),
            models.CheckConstraint(
                condition=models.Q(amount_minor=None) | ~models.Q(currency=""), name="auditevent_amount_has_currency"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.object_type}:{self.object_id} by {self.actor_label or 'the system'}"

    @property
    def label(self) -> str:
        return AUDIT_ACTIONS.get(self.action, self.action)

    @property
    def by(self) -> str:
        """Who, as the trail shows it: the person's address, or the system (a job, Stripe)."""
        return self.actor_label or "Retainers (automatic)"
