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

    class Meta:
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status__in=["queued", "sending"]),
                name="email_due_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.subject} → {self.to} ({self.status})"
