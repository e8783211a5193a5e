"""The dashboard's getting-started checklist for a new workspace: each step ticked from the data
(never from clicks), each linking to the page where it is done; gone once every step is done or
the workspace dismissed it."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Q
from django.urls import reverse

from billing.models import BillingProfile, StripeAccount
from clients.models import Client, Contact, Plan, Retainer
from delivery.models import CalendarConnection
from retainers.models import Workspace


@dataclass(frozen=True)
class Step:
    key: str
    label: str
    done: bool
    url: str


@dataclass(frozen=True)
class Checklist:
    steps: list[Step]

    @property
    def done_count(self) -> int:
        return sum(1 for step in self.steps if step.done)


def checklist(workspace: Workspace) -> Checklist | None:
    """The steps a new workspace takes, as its data stands (one query); None once all are done or
    the checklist was dismissed."""
    if workspace.onboarding_dismissed_at is not None:
        return None
    mine = {"workspace": OuterRef("pk")}
    profile = BillingProfile.objects.filter(**mine)
    facts = (
        Workspace.objects.filter(pk=workspace.pk)
        .annotate(
            has_billing=Exists(profile.exclude(legal_name="").exclude(address="")),
            has_plan=Exists(Plan.objects.filter(**mine)),
            has_client=Exists(Client.objects.filter(**mine)),
            has_retainer=Exists(Retainer.objects.filter(**mine)),
            has_portal=Exists(
                Contact.objects.filter(Q(portal_access=True) | Q(portal_invited_at__isnull=False), **mine)
            ),
            has_stripe=Exists(StripeAccount.objects.filter(charges_enabled=True, disconnected_at=None, **mine)),
            has_calendar=Exists(CalendarConnection.objects.filter(**mine)),
        )
        .values("has_billing", "has_plan", "has_client", "has_retainer", "has_portal", "has_stripe", "has_calendar")
        .get()
    )
    slug = [workspace.slug]
    billing_url = reverse("billing:billing_settings", args=slug)
    first_retainer = reverse("delivery:retainer_create" if facts["has_client"] else "clients:client_create", args=slug)
    steps = [
        Step("billing", "Add your billing details (name and address on invoices)", facts["has_billing"], billing_url),
        Step("plan", "Create your first plan", facts["has_plan"], reverse("clients:plan_create", args=slug)),
        Step("retainer", "Add your first client and retainer", facts["has_retainer"], first_retainer),
        Step(
            "portal",
            "Invite a client contact to the portal",
            facts["has_portal"],
            reverse("clients:client_list", args=slug),
        ),
        Step("stripe", "Connect Stripe to take card payments", facts["has_stripe"], billing_url + "#stripe"),
        Step(
            "calendar",
            "Connect a calendar for bookings",
            facts["has_calendar"],
            reverse("delivery:booking_calendar", args=slug),
        ),
    ]
    if all(step.done for step in steps):
        return None
    return Checklist(steps)
