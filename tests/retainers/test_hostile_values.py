"""Hostile values in every text field a member, a client or a CSV import can write never come back
as markup: on any page (every route of the consultant side and the portal), in any email, or in
the HTML a PDF is printed from.

The demo is seeded, the objects it lacks are added (a session type and a booking, an attachment,
an invitation, a calendar), and then every such field of every row is overwritten with a hostile
value (tests/hostile.py): script and meta tags, attribute break-outs, template syntax, Markdown
links to `javascript:`. Each value carries a marker naming its field, so the test also proves that
every field was shown somewhere (escaped), and a failure names the field that got through.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import time, timedelta
from decimal import Decimal

import pytest
from allauth.account.models import EmailAddress, EmailConfirmationHMAC
from allauth.account.utils import user_pk_to_url_str
from django.apps import apps
from django.contrib.auth.tokens import default_token_generator
from django.core import signing
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import models
from django.test import Client as Browser
from django.urls import reverse

from billing import paylinks
from billing import pdf as billing_pdf
from billing import services as billing
from billing.models import Invoice, Payment
from clients import services as clients
from clients.models import Client, Contact
from communication import services as communication
from communication.models import Note
from delivery import approvals, booking, booking_setup, feeds
from delivery import services as delivery
from delivery.encryption import seal
from delivery.models import CalendarConnection
from demo import northwind
from renewals import services as renewals
from renewals.models import Renewal
from retainers import services as workspaces
from retainers.models import Email, Membership, User, Workspace
from tests import factories
from tests.hostile import LONG_PAYLOAD, audit_markup, hostile_value, marker
from tests.retainers.test_security import _routes

# --- Which fields are hostile ------------------------------------------------------------------

# Every text field a member, a client's contact, a CSV import or an outside service (Stripe, a
# calendar server) can write. A new text field must be added here or to NOT_WRITABLE below.
HOSTILE_FIELDS: dict[str, tuple[str, ...]] = {
    "retainers.User": ("name",),
    "retainers.Workspace": ("name",),
    "clients.Client": ("name", "address", "tax_id"),
    "clients.Contact": ("name", "role"),
    "clients.Plan": ("name", "description", "deliverables"),
    "clients.Retainer": ("name", "deliverables"),
    "clients.Amendment": ("reason", "deliverables"),
    "delivery.WorkItem": ("description",),
    "delivery.LedgerEntry": ("reason",),
    "delivery.Deliverable": ("name",),
    "delivery.SessionType": ("name", "location"),
    "delivery.Booking": ("cancel_reason",),
    "delivery.OverageApproval": ("message", "answered_name", "decline_reason"),
    "delivery.CalendarConnection": ("username", "last_error"),
    "billing.BillingProfile": ("legal_name", "address", "tax_id", "tax_label", "payment_instructions"),
    "billing.Invoice": ("tax_label", "memo", "seller_tax_id", "buyer_tax_id"),  # tax IDs: copies of typed ones
    "billing.InvoiceLine": ("description",),
    "billing.Payment": ("note", "failure_message"),
    "renewals.Renewal": ("proposal_text", "decline_reason", "deliverables"),
    "communication.Note": ("body",),
    "communication.NoteRevision": ("body",),
    "communication.Message": ("body",),
    "communication.Attachment": ("filename",),
    "communication.Task": ("title",),
}
# Text fields nobody types into freely: validated formats, choices kept in code, ids and secrets we
# make, Stripe's ids, and the outbox (its HTML is what the email check below reads).
NOT_WRITABLE = {
    "retainers.User": {"password", "email"},
    "retainers.Workspace": {"slug", "timezone", "currency", "locale"},
    "retainers.Invitation": {"email", "secret_hash"},
    # Written by services from values already checked where they were typed; shown escaped.
    "retainers.AuditEvent": {"action", "actor_label", "changes", "currency", "object_type", "summary"},
    "retainers.Email": {
        "key", "to", "from_name", "reply_to", "subject", "body_text", "body_html", "attachments", "message_id",
        "last_error",
    },
    "clients.Client": {"billing_email"},
    "clients.Contact": {"email", "timezone"},
    "clients.Plan": {"currency"},
    "clients.Retainer": {"currency"},
    "clients.Amendment": {"currency"},
    "delivery.Period": {"currency", "billing_timing"},
    "delivery.SessionType": {"reminder_minutes"},
    "delivery.Schedule": {"timezone"},
    "delivery.Booking": {"unit", "uid", "calendar_href"},
    "delivery.OverageApproval": {"currency"},
    "delivery.CalendarConnection": {"url", "password_sealed", "calendar_url"},
    "delivery.CalendarFeed": {"secret_hash", "secret_sealed"},
    "billing.BillingProfile": {"reminder_offsets", "retry_days", "accent_color"},
    "billing.StripeAccount": {"account_id"},
    "billing.Invoice": {"number", "currency", "delivery_error", "tax_mention"},  # delivery_error, tax_mention: our own words
    "billing.Payment": {"currency", "stripe_id"},
    "billing.StripeCustomer": {"customer_id", "payment_method_id", "card_brand", "card_last4", "card_exp"},
    "billing.StripeEvent": {"event_id", "type", "account"},
    "renewals.RenewalSettings": {"consultant_offsets", "client_offsets"},
    "renewals.Renewal": {"currency", "evidence", "suggestion_reason"},
    "communication.Attachment": {"content_type"},
    "communication.ReplyAddress": {"token"},
    # The inbound log: written from a stranger's email, but shown only in Django's admin (which
    # escapes everything); what a reply posts to the thread is a Message body, walked above.
    "communication.InboundEmail": {"message_id", "sender", "recipient", "subject", "reason", "body"},
}  # fmt: skip
# Hostile, but no page, email or PDF shows them (so the coverage check below does not expect them).
NEVER_SHOWN = {"delivery.Booking.cancel_reason", "communication.NoteRevision.body"}
PROJECT_APPS = {"retainers", "clients", "delivery", "billing", "renewals", "communication"}
APPEND_ONLY = {"delivery.LedgerEntry"}  # the database refuses UPDATE: written through the service instead


def text_fields() -> dict[str, set[str]]:
    """Every free-text column of the project's models: char, text and JSON fields without choices."""
    found: dict[str, set[str]] = {}
    for model in apps.get_models():
        if model._meta.app_label not in PROJECT_APPS:
            continue
        for f in model._meta.concrete_fields:
            if isinstance(f, models.CharField | models.TextField | models.JSONField) and not f.choices:
                found.setdefault(model._meta.label, set()).add(f.name)
    return found


FIELD_LABELS = [f"{label}.{name}" for label, names in HOSTILE_FIELDS.items() for name in names]
INDEX = {name: index for index, name in enumerate(FIELD_LABELS)}


def test_every_text_field_is_either_hostile_or_known_not_writable():
    """A new text field forces a decision: does a person (or an outside service) write it?"""
    unknown = []
    for label, names in sorted(text_fields().items()):
        for name in sorted(names - set(HOSTILE_FIELDS.get(label, ())) - NOT_WRITABLE.get(label, set())):
            unknown.append(f"{label}.{name}")
    assert unknown == [], "add each to HOSTILE_FIELDS or NOT_WRITABLE: " + ", ".join(unknown)
    listed = {f"{label}.{name}" for label, names in HOSTILE_FIELDS.items() for name in names}
    listed |= {f"{label}.{name}" for label, names in NOT_WRITABLE.items() for name in names}
    existing = {f"{label}.{name}" for label, names in text_fields().items() for name in names}
    assert listed - existing == set(), "fields that no longer exist"


# --- The demo, with the objects it lacks, made hostile ------------------------------------------


@dataclass
class Hostile:
    workspace: Workspace
    owner: User
    member: User
    contact: Contact
    tokens: dict[str, str]  # route name -> its token
    emails_before: int  # the outbox's last id before anything was made hostile
    written: set[str]  # the hostile fields that some row holds
    pdf_html: list[tuple[str, str]] = field(default_factory=list)  # (template, html) of every PDF rendered


def add_what_the_demo_lacks(workspace: Workspace, owner: User, member: User, acme: Client) -> dict[str, str]:
    """A session type and a cancelled booking, an attachment, an invitation, a calendar and its
    feed, a note revision: the objects some pages are keyed by. Returns the tokens of the
    public routes that need one of their own."""
    retainer = acme.retainers.filter(status="active").order_by("pk").first()
    booking_setup.save_schedule(
        workspace=workspace,
        member=member,
        settings={
            "timezone": workspace.timezone, "buffer_before_minutes": 0, "buffer_after_minutes": 0,
            "min_notice_minutes": 0, "horizon_days": 60, "daily_cap": None, "step_minutes": 30,
        },
        weekly={day: [(time(6), time(22))] for day in range(7)},
    )  # fmt: skip
    session_type = booking_setup.save_session_type(
        workspace=workspace, session_type=None, member=member, name="Coaching call", duration_minutes=60,
        hours=Decimal("1"), sessions=1, location="https://meet.example/bob", reminder_minutes=[60],
        all_retainers=True, retainers=[],
    )  # fmt: skip
    today = workspace.today()
    start = booking.available_starts(
        session_type=session_type, first=today + timedelta(days=2), last=today + timedelta(days=9)
    )[0]
    made = booking.book(session_type=session_type, retainer=retainer, starts_at=start, actor=owner)
    booking.cancel(booking=made, actor=owner, reason="Moved")
    booking.book(
        session_type=session_type, retainer=retainer, starts_at=start + timedelta(days=1), actor=owner
    )  # one that stays booked, for the calendar page
    communication.send_team_message(
        client=acme, author=owner, body="The agenda", files=[SimpleUploadedFile("agenda.pdf", b"%PDF-1.4\n%%EOF\n")]
    )
    note = Note.objects.for_workspace(workspace).filter(client=acme).order_by("pk").first()
    communication.update_note(note=note, actor=owner, body=note.body + " (edited)", visibility=note.visibility)
    CalendarConnection.objects.create(
        workspace=workspace, member=member, url="https://caldav.example/", username="bob",
        password_sealed=seal("app-password"), status=CalendarConnection.Status.FAILED,
        last_error="401 Unauthorized",
    )  # fmt: skip  # connecting needs a server; the page reads the row
    feed = feeds.regenerate_feed(workspace=workspace, member=owner)
    # Overage approval: one declined (with its reason) and one waiting, whose emailed link is walked.
    contact = Contact.objects.for_workspace(workspace).filter(client=acme, portal_access=True).order_by("pk").first()
    declined = approvals.request_overage(retainer=retainer, offered=Decimal("3"), message="More hours", actor=owner)
    approvals.answer_overage(approval=declined, approve=False, reason="Not now", contact=contact, via="portal")
    waiting = approvals.request_overage(retainer=retainer, offered=Decimal("2"), message="Please", actor=owner)
    owner_membership = Membership.objects.get(workspace=workspace, user=owner)
    workspaces.invite_member(actor=owner_membership, email="dana@example.com", role="member")
    invitation_text = Email.objects.filter(to="dana@example.com").latest("pk").body_text
    return {
        "invitation_accept": re.search(r"/invite/([^/\s]+)/", invitation_text).group(1),
        "delivery_public:calendar_feed": feeds.feed_url(feed).rsplit("/", 1)[1].removesuffix(".ics"),
        "delivery_public:overage_answer": approvals.approval_token(waiting, contact),
    }


def make_hostile(workspace: Workspace, owner: User, acme: Client) -> set[str]:
    """Overwrite every hostile field of every row of the workspace (and its people) with its value.
    Returns the fields written (a list field empty in every row, such as the deliverables of an
    amendment of an hours retainer, has nothing to write)."""
    written = {"delivery.LedgerEntry.reason"}
    users = User.objects.filter(pk__in=Membership.objects.filter(workspace=workspace).values("user"))
    users |= User.objects.filter(pk__in=Contact.objects.for_workspace(workspace).exclude(user=None).values("user"))
    for label, names in HOSTILE_FIELDS.items():
        if label in APPEND_ONLY:
            continue
        model = apps.get_model(label)
        if model is User:
            rows = users
        elif model is Workspace:
            rows = Workspace.objects.filter(pk=workspace.pk)
        else:
            rows = model._default_manager.filter(workspace=workspace)
        changed = []
        for row in rows:
            for name in names:
                column = model._meta.get_field(name)
                index = INDEX[f"{label}.{name}"]
                if isinstance(column, models.JSONField):
                    items = getattr(row, name) or []
                    setattr(row, name, [hostile_value(index, f"{row.pk}-{n}", 200) for n, _ in enumerate(items)])
                    written |= {f"{label}.{name}"} if items else set()
                else:
                    written.add(f"{label}.{name}")
                    setattr(row, name, hostile_value(index, row.pk, column.max_length))
            changed.append(row)
        model._default_manager.bulk_update(changed, list(names), batch_size=500)
    index = INDEX["delivery.LedgerEntry.reason"]
    for retainer in acme.retainers.filter(status="active"):
        delivery.adjust_balance(
            retainer=retainer, quantity=Decimal("1"), reason=hostile_value(index, retainer.pk, 255), actor=owner
        )
    return written


@pytest.fixture
def hostile(db, settings, tmp_path, monkeypatch, django_capture_on_commit_callbacks) -> Hostile:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.RATE_LIMITS_ENABLED = False  # the walk fetches each page many times; a 429 would hide its values
    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_demo", stdout=io.StringIO())
        workspace = Workspace.objects.get(slug=northwind.SLUG)
        owner = User.objects.get(email=northwind.OWNER)
        member = User.objects.get(email=northwind.TEAMMATE)
        contact = Contact.objects.select_related("client").get(email=northwind.CONTACT)
        tokens = add_what_the_demo_lacks(workspace, owner, member, contact.client)
        emails_before = Email.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        written = make_hostile(workspace, owner, contact.client)
    # Fresh copies: the rows in memory still hold the values from before.
    workspace = Workspace.objects.get(pk=workspace.pk)
    owner, member = User.objects.get(pk=owner.pk), User.objects.get(pk=member.pk)
    contact = Contact.objects.select_related("client", "user").get(pk=contact.pk)
    invoice = Invoice.objects.for_workspace(workspace).filter(client=contact.client, status="open").first()
    invoice = invoice or Invoice.objects.for_workspace(workspace).filter(status="open").first()
    for name in ("billing_public:pay", "billing_public:pay_pdf", "billing_public:pay_checkout"):
        tokens[name] = paylinks.pay_token(invoice)
    # A link made before links expired: its page (the expired one) shows the invoice's seller and number.
    tokens["billing_public:pay_link_request"] = signing.Signer(salt=paylinks.PAY_SALT).sign_object(
        {"i": invoice.pk, "w": workspace.pk}, compress=True
    )
    renewal = Renewal.objects.for_workspace(workspace).filter(status="proposal_sent").first()
    if renewal is not None:
        tokens["renewals_public:respond_accept"] = tokens["renewals_public:respond_decline"] = renewals.response_token(
            renewal, contact
        )
    result = Hostile(workspace, owner, member, contact, tokens, emails_before, written)
    render = billing_pdf.render_to_string

    def capture(template: str, context: dict, *args: object, **kwargs: object) -> str:
        html = render(template, context, *args, **kwargs)
        result.pdf_html.append((template, html))
        return html

    monkeypatch.setattr(billing_pdf, "render_to_string", capture)
    return result


# --- The walk ----------------------------------------------------------------------------------


def _model_for(param: str):
    wanted = param.removesuffix("_id").replace("_", "")
    for model in apps.get_models():
        if model._meta.model_name == wanted and any(f.name == "workspace" for f in model._meta.get_fields()):
            return model
    return None


SMALL_TABLE = 12


def _attnames(model) -> set[str]:
    return {f.attname for f in model._meta.concrete_fields} if model else set()


def _candidates(model, workspace: Workspace, client: Client | None) -> list[int]:
    """The rows (of the client, for the portal) whose pages the walk fetches: all of a small table
    (the demo's ten retainers differ in kind: fixed, rollover, deliverables), else the first and the last."""
    rows = model._default_manager.filter(workspace=workspace)
    if client is not None:
        names = {f.name for f in model._meta.get_fields()}
        for path in ("client", "retainer__client", "message__client"):
            if path.split("__")[0] in names:
                rows = rows.filter(**{path: client})
                break
    ids = list(rows.order_by("pk").values_list("pk", flat=True))
    return ids if len(ids) <= SMALL_TABLE else [ids[0], ids[-1]]


def route_urls(hostile: Hostile) -> list[tuple[str, str]]:
    """(route name, URL) of every route the walk can fill, with both variants of its objects."""
    workspace = hostile.workspace
    erin = factories.UserFactory(email="erin@example.com", verified=False)
    address = EmailAddress.objects.create(user=erin, email=erin.email, verified=False, primary=True)
    fixed = {
        "account_confirm_email": {"key": EmailConfirmationHMAC(address).key},
        "account_reset_password_from_key": {
            "uidb36": user_pk_to_url_str(erin),
            "key": default_token_generator.make_token(erin),
        },
    }
    common = {
        "workspace_slug": workspace.slug,
        "membership_id": Membership.objects.get(workspace=workspace, user=hostile.member).pk,
        "template": "invoice_issued",  # an email type's preview (the workspace's hostile name is on it)
    }
    urls = []
    for route in _routes():
        if route.name.startswith("admin:"):
            continue
        kwargs: dict[str, object] = {**fixed.get(route.name, {})}
        for param in route.params:
            if param in common:
                kwargs[param] = common[param]
            elif param == "token" and route.name in hostile.tokens:
                kwargs[param] = hostile.tokens[route.name]
        ints = [p for p in route.params if p in route.int_params and p not in kwargs]
        client = hostile.contact.client if route.name.startswith("portal:") else None
        # A child row names its parent (a work item its retainer_id): pick the child, read the parent.
        children = [p for p in ints if any(q in _attnames(_model_for(p)) for q in ints if q != p)]
        variants: list[dict[str, object]] = [{}]
        for param in children or ints:
            model = _model_for(param)
            ids = _candidates(model, workspace, client) if model else []
            variants = [{**variant, param: pk} for variant in variants for pk in ids]
        for variant in variants:
            values = {**kwargs, **variant}
            for child in children:
                row = _model_for(child)._default_manager.get(pk=values[child])
                values.update({q: getattr(row, q) for q in ints if q not in values and q in _attnames(type(row))})
            if set(values) == set(route.params):
                urls.append((route.name, reverse(route.name, kwargs=values)))
    return urls


@dataclass
class Findings:
    problems: dict[str, list[str]] = field(default_factory=dict)
    seen: dict[int, str] = field(default_factory=dict)  # field index -> where it was first seen
    pages: int = 0

    def audit(self, where: str, html: str) -> None:
        audit = audit_markup(html)
        if audit.problems:
            self.problems[where] = audit.problems
        for index in audit.seen:
            self.seen.setdefault(index, where)

    def report(self) -> str:
        lines = []
        for where, problems in sorted(self.problems.items()):
            text = "; ".join(sorted(set(problems)))
            # Name the field each marker stands for: "after HX012." -> "after HX012. (clients.Client.name)"
            text = re.sub(r"HX(\d{3})\.", lambda m: f"{m.group()} ({FIELD_LABELS[int(m.group(1))]})", text)
            lines.append(f"{where}: {text}")
        return "\n".join(lines)


def fetch(findings: Findings, browser_for: Callable[[], Browser], label: str, url: str) -> None:
    response = browser_for().get(url, follow=True)
    assert response.status_code < 500, f"{label} GET {url}: {response.status_code}"
    if not response.headers.get("Content-Type", "").startswith("text/html"):
        return
    findings.pages += 1
    findings.audit(f"{label} GET {url}", response.content.decode())


def hostile_csv() -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["name", "billing_email", "address", "tax_id", "contact_name", "contact_email", "contact_role"])
    writer.writerow([
        hostile_value(INDEX["clients.Client.name"], "csv", 200), "ap@csv.example",
        hostile_value(INDEX["clients.Client.address"], "csv", None), hostile_value(INDEX["clients.Client.tax_id"], "csv", 50),
        hostile_value(INDEX["clients.Contact.name"], "csv", 150), "ann@csv.example",
        hostile_value(INDEX["clients.Contact.role"], "csv", 100),
    ])  # fmt: skip
    return out.getvalue().encode()


def play_flows_that_send_email(hostile: Hostile) -> None:
    """What emails the people and values above: messages both ways, an invoice by hand issued,
    sent and paid, the renewal proposal sent and declined, invitations, and the scheduled jobs
    (reminders, dunning, renewals) run over the next weeks."""
    workspace, owner, contact = hostile.workspace, hostile.owner, hostile.contact
    acme = contact.client
    communication.send_team_message(
        client=acme, author=owner, body=marker(INDEX["communication.Message.body"]) + LONG_PAYLOAD
    )
    communication.send_contact_message(contact=contact, body=marker(INDEX["communication.Message.body"]) + LONG_PAYLOAD)
    line = hostile_value(INDEX["billing.InvoiceLine.description"], "new", 255)
    invoice = billing.create_invoice(
        client=acme, lines=[(line, Decimal("2"), 15000)], memo=hostile_value(INDEX["billing.Invoice.memo"], "new", None)
    )
    invoice = billing.issue_invoice(invoice=invoice, actor=owner)
    billing.record_payment(invoice=invoice, amount_minor=1000, method=Payment.Method.BANK_TRANSFER, actor=owner)
    clients.add_contact(
        client=acme, name=hostile_value(INDEX["clients.Contact.name"], "new", 150), email="dan@acme.example",
        role=hostile_value(INDEX["clients.Contact.role"], "new", 100), portal_access=True,
    )  # fmt: skip
    renewal = Renewal.objects.for_workspace(workspace).filter(retainer__client=acme, status="upcoming").first()
    if renewal is not None:
        renewal = renewals.send_proposal(renewal=renewal, actor=owner)
    for renewal in Renewal.objects.for_workspace(workspace).filter(status="proposal_sent"):
        renewals.decline_renewal(
            renewal=renewal, reason=hostile_value(INDEX["renewals.Renewal.decline_reason"], "new", None), actor=owner
        )
    today = workspace.today()
    for days in (0, 1, 20, 45):
        call_command("send_reminders", as_of=str(today + timedelta(days=days)), stdout=io.StringIO())
        call_command("run_dunning", as_of=str(today + timedelta(days=days)), stdout=io.StringIO())
        call_command("run_renewals", as_of=str(today + timedelta(days=days)), stdout=io.StringIO())


@pytest.mark.slow
def test_hostile_values_never_come_back_as_markup(hostile, login, django_capture_on_commit_callbacks):
    findings = Findings()
    visitors = {
        "owner": lambda: login(hostile.owner),
        "member": lambda: login(hostile.member),
        "contact": lambda: login(hostile.contact.user),
        "anonymous": Browser,
    }
    urls = route_urls(hostile)
    filled = {name for name, _ in urls}
    unfilled = sorted(r.name for r in _routes() if not r.name.startswith("admin:") and r.name not in filled)
    assert unfilled == [], "give the walk an object or a token for these routes"
    workspace_prefix = f"/w/{hostile.workspace.slug}/"
    for label, browser_for in visitors.items():
        for name, url in urls:
            consultant_page = url.startswith(workspace_prefix)
            if label == "member" and not consultant_page:
                continue  # the owner saw those
            if label in {"contact", "anonymous"} and consultant_page:
                continue  # they reach no consultant page (tests/retainers/test_tenancy.py): a 404 or sign-in
            if label == "anonymous" and name.startswith("portal:") and name not in {"portal:login", "portal:home"}:
                continue  # the portal's sign-in page again
            fetch(findings, browser_for, label, url)

    expired = reverse("billing_public:pay", args=[hostile.tokens["billing_public:pay_link_request"]])
    fetch(findings, Browser, "anonymous", expired)
    assert "This payment link has expired" in Browser().get(expired).content.decode()

    # What a CSV import writes, on its preview and after it.
    owner = login(hostile.owner)
    slug = hostile.workspace.slug
    upload = SimpleUploadedFile("clients.csv", hostile_csv(), content_type="text/csv")
    response = owner.post(reverse("clients:client_import", args=[slug]), {"file": upload}, follow=True)
    findings.audit("CSV import preview", response.content.decode())
    token = re.search(r'name="token" value="([^"]+)"', response.content.decode()).group(1)
    response = owner.post(
        reverse("clients:client_import_confirm", args=[slug]), {"token": token, "rows": "all"}, follow=True
    )
    findings.audit("CSV import done", response.content.decode())
    assert (
        Client.objects.for_workspace(hostile.workspace)
        .filter(name__startswith=marker(INDEX["clients.Client.name"]) + "csv")
        .exists()
    )

    # Forms that show what was typed again, with an error beside it.
    posted = hostile_value(INDEX["clients.Client.name"], "form", 200)
    response = owner.post(
        reverse("clients:client_create", args=[slug]), {"name": posted, "billing_email": "not-an-email"}
    )
    assert response.status_code == 200
    findings.audit("client form with errors", response.content.decode())

    # Emails written after the values turned hostile, and the PDFs printed for them.
    with django_capture_on_commit_callbacks(execute=True):
        play_flows_that_send_email(hostile)
    emails = Email.objects.filter(pk__gt=hostile.emails_before).order_by("pk")
    for email in emails:
        findings.audit(f"email {email.subject!r} to {email.to}", email.body_html)
    for template, html in hostile.pdf_html:
        findings.audit(f"PDF {template}", html)

    assert not findings.problems, "unescaped hostile markup:\n" + findings.report()
    # The walk really looked: many pages, emails of many kinds, both kinds of PDF, and every hostile
    # field shown (escaped) somewhere, so a value that got through would have been caught.
    assert findings.pages >= 150, findings.pages
    assert emails.values("subject").distinct().count() >= 10, list(emails.values_list("subject", flat=True))
    assert {t for t, _ in hostile.pdf_html} == {"billing/invoice_pdf.html", "portal/statement_pdf.html"}
    unseen = [name for name in sorted(hostile.written - NEVER_SHOWN) if INDEX[name] not in findings.seen]
    assert unseen == [], f"hostile values never shown anywhere: {unseen}"
    assert len(hostile.written) >= len(FIELD_LABELS) - 2, set(FIELD_LABELS) - hostile.written


def test_the_audit_catches_unescaped_values():
    """The checker itself: each way a value can get through is reported; escaped text is not."""
    from django.utils.html import escape

    value = hostile_value(3, 1, None)
    assert audit_markup(f"<p>{escape(value)}</p>").problems == []
    assert audit_markup(f"<p>{escape(value)}</p>").seen == {3}
    assert audit_markup(f"<p>{value}</p>").problems
    assert audit_markup(f'<input value="{hostile_value(3, 1, 50)}">').problems  # an attribute broken out of
    assert audit_markup('<a href=" javascript:alert(1)">x</a>').problems
    assert audit_markup('<meta http-equiv="refresh" content="0">').problems
    assert audit_markup("<b onclick=x>x</b>").problems
