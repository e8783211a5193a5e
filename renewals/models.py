"""Renewals: one per retainer term ending, with the proposal built from the term's evidence."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from clients.models import Contact, Retainer, RetainerTerms, terms_constraints
from retainers.models import WorkspaceOwned


def default_consultant_offsets() -> list[int]:
    return [30, 21, 14, 7]


def default_client_offsets() -> list[int]:
    return [21, 14, 7, 3]


class RenewalSettings(WorkspaceOwned):
    """When reminders go out, in days before the term ends. One per workspace."""

    consultant_offsets = models.JSONField(default=default_consultant_offsets)
    client_offsets = models.JSONField(default=default_client_offsets)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace"], name="renewalsettings_one_per_workspace")]


class Renewal(WorkspaceOwned, RetainerTerms):
    """The renewal of one retainer term. Its RetainerTerms fields are the proposed next terms."""

    class Status(models.TextChoices):
        UPCOMING = "upcoming", "Upcoming"
        PROPOSAL_SENT = "proposal_sent", "Proposal sent"
        ACCEPTED = "accepted", "Accepted"
        DECLINED = "declined", "Declined"
        RENEWED = "renewed", "Auto-renewed"
        LAPSED = "lapsed", "Lapsed"

    class Suggestion(models.TextChoices):
        KEEP = "keep", "Keep the same terms"
        UPGRADE = "upgrade", "Upgrade"
        DOWNGRADE = "downgrade", "Downgrade"

    retainer = models.ForeignKey(Retainer, on_delete=models.CASCADE, related_name="renewals")
    term_ends_on = models.DateField()
    opened_on = models.DateField()
    status = models.CharField(max_length=14, choices=Status.choices, default=Status.UPCOMING)
    evidence = models.JSONField(default=dict, help_text="The term's figures, computed when the renewal opened.")
    suggestion = models.CharField(max_length=10, choices=Suggestion.choices, default=Suggestion.KEEP)
    suggestion_reason = models.CharField(max_length=255, blank=True)
    proposal_text = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    responded_at = models.DateTimeField(null=True, blank=True)
    responded_by = models.ForeignKey(Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    decline_reason = models.TextField(blank=True)
    next_retainer = models.ForeignKey(
        Retainer, on_delete=models.SET_NULL, null=True, blank=True, related_name="renewed_from"
    )
    settled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "retainer", "term_ends_on"], name="renewal_one_per_term"),
            *terms_constraints(),
        ]
        indexes = [models.Index(fields=["workspace", "status", "term_ends_on"], name="renewal_pipeline_idx")]

    def __str__(self) -> str:
        return f"Renewal of {self.retainer_id} ending {self.term_ends_on}"
