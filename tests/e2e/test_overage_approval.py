"""Overage the client approves first, in a real browser (issue 14's "done when"): the consultant is
refused work beyond the balance and asks the client from the retainer page; the client approves in
the portal from the banner; the work beyond the balance is then recorded, up to the approval and
not beyond; the billing run's next invoice carries the approval's own line.

The set-up is written through the services; people are signed in by session cookie. Every page
visited must log no console error and no Content-Security-Policy violation.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from allauth.account.models import EmailAddress
from django.conf import settings
from django.test import Client as DjangoClient
from django.urls import reverse
from playwright.sync_api import BrowserContext, Page, expect

from billing import services as billing
from billing.models import Invoice
from clients import services as clients
from clients.models import Contact
from delivery import services as delivery
from delivery.models import OverageApproval, Period
from retainers import services as workspaces
from retainers.models import Email, User
from tests.e2e.support import screenshot

pytestmark = pytest.mark.e2e


def _session_cookie(user: User) -> str:
    client = DjangoClient()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def _signed_in(browser_context, app_server, user: User) -> tuple[BrowserContext, Page]:
    context = browser_context()
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": _session_cookie(user), "url": app_server.url}])
    return context, context.new_page()


def _set_up():
    alice = User.objects.create_user(email="alice@northwind.example", password="plum-Orchard-7", name="Alice Archer")
    EmailAddress.objects.create(user=alice, email=alice.email, verified=True, primary=True)
    workspace = workspaces.create_workspace(
        owner=alice, name="Northwind Advisory", timezone_name="Europe/London", currency="GBP"
    )
    acme = clients.create_client(workspace=workspace, name="Acme Corp", billing_email="billing@acme.example")
    carol = clients.add_contact(client=acme, name="Carol Chen", email="carol@acme.example", portal_access=True)
    retainer = delivery.create_retainer(
        client=acme,
        name="Advisory retainer",
        starts_on=workspace.today().replace(day=1),
        terms={"model": "fixed", "unit": "hours", "units_per_period": Decimal(4), "price_minor": 120000,
               "currency": "GBP", "cadence": "monthly", "overage_policy": "refuse", "overage_rate_minor": 15000,
               "term_periods": 12},
    )  # fmt: skip
    delivery.record_delivery(
        retainer=retainer,
        delivered_on=workspace.today().replace(day=1),
        quantity=Decimal("4"),
        description="Board pack",
        actor=alice,
    )
    return workspace, alice, Contact.objects.get(pk=carol.pk), retainer


def _record(page: Page, hours: str, what: str) -> None:
    form = page.locator("#quick-add")
    form.get_by_label("Quantity").fill(hours)
    form.get_by_label("What was done").fill(what)
    form.get_by_role("button", name="Record").click()


def test_the_client_approves_in_the_portal_then_the_work_and_the_invoice_follow(
    transactional_db, browser_context, app_server, watch
):
    workspace, alice, carol, retainer = _set_up()
    _, consultant = _signed_in(browser_context, app_server, alice)
    retainer_url = f"/w/{workspace.slug}/retainers/{retainer.pk}/"

    # The consultant turns approval on where the retainer's collection settings are edited.
    consultant.goto(retainer_url)
    collection = consultant.locator("#collection")
    collection.get_by_text("Change payment collection").click()
    collection.get_by_label("Overage needs the client's approval").check()
    collection.get_by_label("Units offered for approval at once").fill("3")
    collection.get_by_role("button", name="Save payment collection").click()
    expect(consultant.locator("#collection")).to_contain_text("Needs the client's approval, offered 3.00 hours")

    # Beyond the balance: refused, with the way to ask for more.
    _record(consultant, "1", "Extra analysis")
    expect(consultant.locator("#quick-add")).to_contain_text("ask them to approve more from the retainer page")
    consultant.reload()
    overage = consultant.locator("#overage")
    overage.get_by_text("Ask the client to approve more").click()
    overage.get_by_label("Units to ask for").fill("3")
    overage.get_by_label("Message to the client").fill("The audit needs two more afternoons.")
    overage.get_by_role("button", name="Ask for approval").click()
    expect(consultant.get_by_role("status").first).to_contain_text("Asked the client to approve up to 3.00")
    expect(consultant.locator("#overage")).to_contain_text("Waiting for the client")
    approval = OverageApproval.objects.get(retainer=retainer)
    assert Email.objects.filter(to=carol.email, key__startswith=f"overage-ask-{approval.pk}-").exists()

    # The client approves in the portal, from the banner on the overview.
    _, portal = _signed_in(browser_context, app_server, carol.user)
    portal.goto(f"/portal/w/{workspace.slug}/")
    banner = portal.locator("#overage-banner")
    expect(banner).to_contain_text("asks you to approve up to 3.00 extra hours on Advisory retainer")
    screenshot(portal, "overage-banner")
    banner.get_by_role("link", name="Approve or decline").click()
    expect(portal.get_by_role("main")).to_contain_text("The audit needs two more afternoons.")
    expect(portal.get_by_role("main")).to_contain_text("£450.00 for all of them")
    portal.get_by_label("Hours you approve").fill("2")
    screenshot(portal, "overage-approve")
    portal.get_by_role("button", name="Approve").click()
    expect(portal.get_by_role("status").first).to_contain_text("your answer is recorded")
    expect(portal.get_by_role("main")).to_contain_text("Approved: 2.00 hours, by Carol Chen")
    approval.refresh_from_db()
    assert (approval.status, approval.quantity, approval.answered_via) == ("approved", Decimal("2"), "portal")
    assert approval.answered_ip == "127.0.0.1"
    assert Email.objects.filter(to=alice.email, key__startswith=f"overage-answer-{approval.pk}-").exists()

    # Work beyond the balance is recorded up to the approval, and not one unit more.
    consultant.goto(retainer_url)
    expect(consultant.locator("#overage")).to_contain_text("Carol Chen <carol@acme.example>")
    _record(consultant, "1.5", "Extra analysis")
    expect(consultant.locator("#quick-add").get_by_role("status")).to_contain_text("Saved")
    _record(consultant, "1", "More analysis")
    expect(consultant.locator("#quick-add")).to_contain_text("Only 0.50 hours left this period")
    _record(consultant, "0:30", "Last half hour")
    expect(consultant.locator("#quick-add").get_by_role("status")).to_contain_text("Saved")
    retainer.refresh_from_db()
    assert retainer.balance == Decimal("-2")
    screenshot(consultant, "overage-retainer")

    # The billing run: the next invoice carries the approval as its own line.
    period = Period.objects.get(retainer=retainer, seq=1)
    billing.bill_workspace(workspace_id=workspace.pk, as_of=period.end_on, deliver=False)
    invoice = Invoice.objects.get(retainer=retainer, period__seq=2)
    consultant.goto(reverse("billing:invoice_detail", args=[workspace.slug, invoice.pk]))
    lines = consultant.get_by_role("main")
    expect(lines).to_contain_text(
        re.compile(rf"Approved overage: 2\.00 hours, .* \(approval #{approval.pk} by Carol Chen")
    )
    expect(lines).to_contain_text("£300.00")
    screenshot(consultant, "overage-invoice")
    approval.refresh_from_db()
    assert approval.used == Decimal("2")
    watch.assert_clean()
