"""Email previews: every email the product sends, as the workspace's clients and team get it.

Each type is rendered by `retainers.outbox.render_email` — the function `queue_email` sends
with — from the type's own templates, in the workspace's branding (name, logo, accent colour),
with demo data: unsaved objects that look like a real client's, never a row of the workspace.

The HTML part is an email's own document, with the inline styles email clients need; the
preview page (strict CSP) shows it in a sandboxed frame whose document is served by
`email_preview_frame` under a CSP of its own that allows no script at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.csp import CSP
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.csp import csp_override
from django.views.decorators.http import require_GET

from billing.models import Invoice, Payment
from billing.selectors import payment_options
from clients.models import Client, Contact, Retainer
from clients.terms import describe_terms
from communication.models import Message, Task
from delivery.approvals import overage_offer
from delivery.models import OverageApproval, Period
from renewals.models import Renewal
from retainers.http import WorkspaceRequest, workspace_view
from retainers.models import User, Workspace
from retainers.money import format_money
from retainers.outbox import RenderedEmail, branding_for, logo_data_uri, render_email


@dataclass(frozen=True)
class EmailType:
    template: str  # the folder under templates/emails/
    label: str
    audience: str  # "client" or "team"
    demo: Callable[[Workspace, Demo], dict[str, Any]]


class Demo:
    """The made-up client, people and objects every preview draws on, in the workspace's currency."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.today = workspace.today()
        self.now = timezone.now()
        self.client = Client(workspace=workspace, name="Acme Ltd", billing_email="accounts@acme.example")
        self.contact = Contact(workspace=workspace, client=self.client, name="Carol Chen", email="carol@acme.example")
        self.member = User(email="you@example.com", name="Alex Morgan")
        self.retainer = Retainer(
            workspace=workspace,
            client=self.client,
            name="Growth advisory",
            units_per_period=Decimal("10"),
            price_minor=150_000,
            currency=workspace.currency,
            starts_on=self.today - timedelta(days=330),
            term_ends_on=self.today + timedelta(days=30),
            pause_after_unpaid_days=30,
        )
        self.invoice = Invoice(
            workspace=workspace,
            client=self.client,
            retainer=self.retainer,
            number=f"{self.today.year}-0042",
            currency=workspace.currency,
            status=Invoice.Status.OPEN,
            issued_on=self.today,
            due_on=self.today + timedelta(days=14),
            period_start_on=self.today.replace(day=1),
            period_end_on=(self.today.replace(day=1) + timedelta(days=32)).replace(day=1),
            total_minor=180_000,
            memo="Hours beyond the allotment were billed twice in May.",
        )
        first_day = self.today.replace(day=1)
        self.period = Period(
            workspace=workspace,
            retainer=self.retainer,
            seq=12,
            start_on=first_day,
            end_on=(first_day + timedelta(days=32)).replace(day=1),
            currency=workspace.currency,
            overage_rate_minor=15_000,
        )
        self.approval = OverageApproval(
            workspace=workspace,
            retainer=self.retainer,
            period=self.period,
            status=OverageApproval.Status.APPROVED,
            offered=Decimal("5"),
            quantity=Decimal("3"),
            rate_minor=15_000,
            currency=workspace.currency,
            message="We are close to launch: a few more hours this month would see it through.",
            answered_name=self.contact.name,
            answered_at=self.now,
        )
        self.renewal = Renewal(
            workspace=workspace,
            retainer=self.retainer,
            term_ends_on=self.today + timedelta(days=30),
            term_periods=12,
            suggestion=Renewal.Suggestion.UPGRADE,
            suggestion_reason="They used 96% of their hours over the last three months.",
            proposal_text="Thank you for a great year. For the next one I suggest 12 hours a month.",
            decline_reason="Budget is frozen until the autumn.",
            sent_at=self.now - timedelta(days=7),
            units_per_period=Decimal("12"),
            price_minor=175_000,
            currency=workspace.currency,
        )

    def money(self, minor: int) -> str:
        return format_money(minor, self.workspace.currency, self.workspace.locale or "en_US")

    def url(self, path: str = "") -> str:
        return f"{settings.SITE_URL}/w/{self.workspace.slug}/{path}"

    def portal(self) -> str:
        return f"{settings.SITE_URL}/portal/w/{self.workspace.slug}/"

    def common(self) -> dict[str, Any]:
        return {"workspace": self.workspace, "client": self.client, "recipient_name": self.member.name}


def _invoice_context(d: Demo) -> dict[str, Any]:
    options = payment_options(d.workspace)  # what the workspace takes, worded as the real emails word it
    return {
        **d.common(),
        "invoice": d.invoice,
        "total": d.money(d.invoice.total_minor),
        "balance": d.money(d.invoice.total_minor),
        "pay_url": d.portal() + "invoices/",
        "portal_url": d.portal(),
        "invoice_url": d.url("invoices/"),
        "seller_name": d.workspace.name,
        "seller": d.workspace.name,
        "pay_label": options.pay_label,
        "card_payments": options.card,
    }


def _booking(d: Demo, *, for_client: bool) -> dict[str, Any]:
    start = timezone.localtime(d.now + timedelta(days=3)).replace(hour=10, minute=0, second=0, microsecond=0)
    return {
        **d.common(),
        "for_client": for_client,
        "recipient_name": d.contact.name if for_client else d.member.name,
        "member_name": d.member.name,
        "session_type": SimpleNamespace(name="Coaching call", location="Video call: https://meet.example/acme"),
        "booking": SimpleNamespace(retainer=d.retainer),
        "when": f"{start:%A %-d %B %Y, %H:%M} ({d.workspace.timezone})",
        "units": "1",
        "unit": "hours",
    }


def _renewal(d: Demo, *, for_client: bool) -> dict[str, Any]:
    return {
        **d.common(),
        "renewal": d.renewal,
        "retainer": d.retainer,
        "contact": d.contact,
        "current_terms": describe_terms(d.retainer, locale=d.workspace.locale or "en_US"),
        "proposed_terms": describe_terms(d.renewal, locale=d.workspace.locale or "en_US"),
        "days_left": 30,
        "accept_url": d.portal() + "renewals/",
        "decline_url": d.portal() + "renewals/",
        "portal_url": d.portal(),
        "renewal_url": d.url("renewals/"),
        "recorded_by": d.member,
        "next_retainer": Retainer(name=d.retainer.name, starts_on=d.renewal.term_ends_on),
        "renews_without_answer": True,
        "recipient_name": d.contact.name if for_client else d.member.name,
    }


def _task(d: Demo) -> Task:
    return Task(workspace=d.workspace, client=d.client, title="Send the quarterly report", due_at=d.now)


def _overage_request(d: Demo) -> dict[str, Any]:
    offer = overage_offer(d.retainer, d.period, balance=Decimal("-1.5"), approved=Decimal("0"))
    return {
        **d.common(),
        "recipient_name": d.contact.name,
        "retainer": d.retainer,
        "approval": d.approval,
        "offer": offer,
        "offered": "5.00",
        "offered_cost": d.money(5 * d.approval.rate_minor),
        "url": f"{settings.SITE_URL}/overage/…/",
    }


def _overage_answered(d: Demo) -> dict[str, Any]:
    return {
        **d.common(),
        "retainer": d.retainer,
        "approval": d.approval,
        "quantity": "3.00",
        "unit": "hours",
        "cost": d.money(3 * d.approval.rate_minor),
        "url": d.url(f"retainers/{d.retainer.pk}/"),
    }


TYPES: list[EmailType] = [
    EmailType("invoice_issued", "Invoice issued", "client", lambda w, d: _invoice_context(d)),
    EmailType("invoice_overdue", "Invoice overdue", "client", lambda w, d: {**_invoice_context(d), "days_overdue": 5}),
    EmailType("pay_link", "A new pay link", "client", lambda w, d: {**_invoice_context(d), "days": 60}),
    EmailType(
        "payment_receipt",
        "Payment receipt",
        "client",
        lambda w, d: {
            **_invoice_context(d),
            "amount": d.money(d.invoice.total_minor),
            "payment": Payment(method="card", created_at=d.now, amount_minor=d.invoice.total_minor),
            "state": "paid",
            "state_label": "Paid",
        },
    ),
    EmailType(
        "payment_failed",
        "Card payment failed",
        "client",
        lambda w, d: {**_invoice_context(d), "message": "Your card was declined.", "next_charge_on": d.today},
    ),
    EmailType(
        "credit_note_issued",
        "Credit note issued",
        "client",
        lambda w, d: {
            **_invoice_context(d),
            "invoice": Invoice(
                number=f"{d.today.year}-0043", credit_for=d.invoice, memo=d.invoice.memo, client=d.client
            ),
            "total": d.money(-30_000),
        },
    ),
    EmailType("overage_request", "Overage approval asked (to the client)", "client", lambda w, d: _overage_request(d)),
    EmailType("overage_answered", "Overage approval answered", "team", lambda w, d: _overage_answered(d)),
    EmailType(
        "checkin_client",
        "Book your next session (check-in)",
        "client",
        lambda w, d: {
            **d.common(),
            "recipient_name": d.contact.name,
            "since": "three weeks",
            "can_book": True,
            "url": d.portal() + "book/",
        },
    ),
    EmailType(
        "low_balance_client",
        "Low balance (to the client)",
        "client",
        lambda w, d: {
            **d.common(),
            "recipient_name": d.contact.name,
            "retainer": d.retainer,
            "remaining": "1.5",
            "available": "10",
            "unit": "hours",
            "last_day": d.today + timedelta(days=12),
            "url": d.portal(),
        },
    ),
    EmailType(
        "message_from_team",
        "Message from your team",
        "client",
        lambda w, d: {
            **d.common(),
            "recipient_name": d.contact.name,
            "sender": d.member.name,
            "message": Message(body="Here are the notes from Tuesday's call.\nTalk soon!"),
            "attachments": 1,
            "url": d.portal() + "messages/",
        },
    ),
    EmailType(
        "portal_invitation",
        "Portal invitation",
        "client",
        lambda w, d: {**d.common(), "contact": d.contact, "client_name": d.client.name, "path": "/portal/login/"},
    ),
    EmailType("booking_confirmed", "Session booked", "client", lambda w, d: _booking(d, for_client=True)),
    EmailType("booking_changed", "Session moved", "client", lambda w, d: _booking(d, for_client=True)),
    EmailType("booking_cancelled", "Session cancelled", "client", lambda w, d: _booking(d, for_client=True)),
    EmailType("booking_reminder", "Session reminder", "client", lambda w, d: _booking(d, for_client=True)),
    EmailType(
        "booking_nudge",
        "Book your next session",
        "client",
        lambda w, d: {**d.common(), "retainer": d.retainer, "days": 21, "url": d.portal() + "book/"},
    ),
    EmailType("renewal_proposal", "Renewal proposal", "client", lambda w, d: _renewal(d, for_client=True)),
    EmailType("renewal_reminder_client", "Renewal reminder", "client", lambda w, d: _renewal(d, for_client=True)),
    EmailType("renewal_accepted_client", "Renewal accepted", "client", lambda w, d: _renewal(d, for_client=True)),
    EmailType("renewal_declined_client", "Renewal declined", "client", lambda w, d: _renewal(d, for_client=True)),
    EmailType(
        "invitation",
        "Team invitation",
        "team",
        lambda w, d: {
            **d.common(),
            "inviter": d.member,
            "role": "Member",
            "path": "/invite/demo/",
            "expires_at": d.now + timedelta(days=7),
        },
    ),
    EmailType(
        "low_balance",
        "Low balance (to the team)",
        "team",
        lambda w, d: {
            **d.common(),
            "retainer": d.retainer,
            "remaining": "1.5",
            "available": "10",
            "unit": "hours",
            "last_day": d.today + timedelta(days=12),
            "overage": "billed at the overage rate",
            "told_client": True,
            "url": d.url("retainers/"),
        },
    ),
    EmailType(
        "message_from_client",
        "Message from a client",
        "team",
        lambda w, d: {
            **d.common(),
            "sender": d.contact.name,
            "message": Message(body="Could we move Thursday's call to Friday?"),
            "attachments": 0,
            "url": d.url("clients/"),
        },
    ),
    EmailType(
        "task_due",
        "Task due",
        "team",
        lambda w, d: {**d.common(), "task": _task(d), "timezone_name": w.timezone, "url": d.url("tasks/")},
    ),
    EmailType(
        "daily_digest",
        "Daily digest",
        "team",
        lambda w, d: {**d.common(), "day": d.today, "overdue": [_task(d)], "due": [_task(d)], "url": d.url("tasks/")},
    ),
    EmailType("invoice_overdue_consultant", "Invoice overdue (to the team)", "team", lambda w, d: _invoice_context(d)),
    EmailType(
        "invoice_overpaid_consultant",
        "Invoice overpaid",
        "team",
        lambda w, d: {**_invoice_context(d), "amount": d.money(190_000), "credit": d.money(10_000)},
    ),
    EmailType(
        "payment_failed_consultant",
        "Card payment failed (to the team)",
        "team",
        lambda w, d: {
            **_invoice_context(d),
            "attempt": 2,
            "message": "Your card was declined.",
            "next_charge_on": d.today + timedelta(days=3),
        },
    ),
    EmailType(
        "refund_failed_consultant",
        "Refund failed",
        "team",
        lambda w, d: {**_invoice_context(d), "amount": d.money(30_000), "reason": "The card has expired."},
    ),
    EmailType(
        "dispute_opened",
        "Card payment disputed",
        "team",
        lambda w, d: {
            **_invoice_context(d),
            "amount": d.money(d.invoice.total_minor),
            "dispute": {"id": "dp_demo"},
            "reason": "fraudulent",
            "evidence_due_by": d.today + timedelta(days=10),
        },
    ),
    EmailType(
        "retainer_paused",
        "Retainer paused",
        "team",
        lambda w, d: {**_invoice_context(d), "retainer": d.retainer, "days_overdue": 31},
    ),
    EmailType(
        "calendar_failed",
        "Calendar unreachable",
        "team",
        lambda w, d: {
            **d.common(),
            "connection": SimpleNamespace(url="https://calendar.example/dav/"),
            "error": "The server answered 401 Unauthorized.",
            "url": d.url("bookings/"),
        },
    ),
    EmailType("renewal_opened", "Renewal opened", "team", lambda w, d: _renewal(d, for_client=False)),
    EmailType(
        "renewal_reminder_consultant", "Renewal not answered", "team", lambda w, d: _renewal(d, for_client=False)
    ),
    EmailType(
        "renewal_accepted_consultant",
        "Renewal accepted (to the team)",
        "team",
        lambda w, d: _renewal(d, for_client=False),
    ),
    EmailType(
        "renewal_declined_consultant",
        "Renewal declined (to the team)",
        "team",
        lambda w, d: _renewal(d, for_client=False),
    ),
    EmailType("renewal_settled_consultant", "Renewal settled", "team", lambda w, d: _renewal(d, for_client=False)),
]
BY_TEMPLATE = {email_type.template: email_type for email_type in TYPES}


def preview(workspace: Workspace, template: str, *, logo_src: str | None = None) -> RenderedEmail:
    """The email `template` with demo data, in the workspace's branding (its logo as a data: URI)."""
    email_type = BY_TEMPLATE[template]
    branding = branding_for(workspace)
    context = email_type.demo(workspace, Demo(workspace))
    return render_email(
        template, context, branding=branding, logo_src=logo_src if logo_src is not None else logo_data_uri(branding)
    )


def _email_type(template: str) -> EmailType:
    try:
        return BY_TEMPLATE[template]
    except KeyError:
        raise Http404("No such email") from None


@require_GET
@workspace_view(admin=True)  # settings pages are for owners and admins
def email_previews(request: WorkspaceRequest) -> HttpResponse:
    """The list of every email type, for the client and for the team."""
    groups = [
        ("To your clients", [t for t in TYPES if t.audience == "client"]),
        ("To your team", [t for t in TYPES if t.audience == "team"]),
    ]
    return render(request, "dashboard/email_previews.html", {"groups": groups})


@require_GET
@workspace_view(admin=True)  # settings pages are for owners and admins
def email_preview(request: WorkspaceRequest, template: str) -> HttpResponse:
    """One email: its subject, sender, text part, and the HTML part in a sandboxed frame."""
    email_type = _email_type(template)
    email = preview(request.workspace, template, logo_src="")  # the frame shows the HTML; this page its text
    context = {
        "email_type": email_type,
        "email": email,
        "types": TYPES,
        "frame_url": reverse("email_preview_frame", args=[request.workspace.slug, template]),
    }
    return render(request, "dashboard/email_preview.html", context)


# An email's HTML is its own document: inline styles, as email clients require, and images inline
# as data: URIs. No script may run in it, and only our own page may frame it.
EMAIL_FRAME_CSP: dict[str, list[str] | str] = {
    "default-src": [CSP.NONE],
    "style-src": [CSP.UNSAFE_INLINE],
    "img-src": ["data:"],
    "frame-ancestors": [CSP.SELF],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.NONE],
    "sandbox": "",  # the bare directive, no allow-scripts: as the iframe's own sandbox attribute says
}


@require_GET
@workspace_view(admin=True)
@csp_override(EMAIL_FRAME_CSP)
@xframe_options_sameorigin
def email_preview_frame(request: WorkspaceRequest, template: str) -> HttpResponse:
    _email_type(template)
    return HttpResponse(preview(request.workspace, template).body_html)
