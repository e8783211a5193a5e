"""A new consultant's first hour, in a real browser (issue 17): sign up through our own pages,
confirm the email from the test mailbox, then follow the dashboard's getting-started checklist step
by step (billing details, a first plan, a first client and retainer, a contact invited to the
portal, Stripe, a calendar), seeing each step ticked from the data, until the checklist is gone and
the billing run has issued the retainer's first invoice, which the Invoices page lists.

Every page on the way passes axe-core. Stripe's onboarding happens on Stripe's own pages, which
localstripe does not have: the walk opens the Stripe step's page and then takes up a test account
the way `manage.py demo_stripe` does (`billing.connect.use_test_account`). The calendar is a real
CalDAV server (radicale on loopback, as the booking tests use).
"""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from playwright.sync_api import Locator, Page, expect

from billing import connect
from billing.models import Invoice
from clients.models import Client, Contact, Plan, Retainer
from retainers.models import Workspace
from tests.billing.conftest import localstripe  # noqa: F401 (a fixture)
from tests.booking.conftest import RADICALE_PASSWORD, RADICALE_USER, Radicale, caldav_settings, radicale  # noqa: F401
from tests.e2e.support import assert_accessible, latest_email, screenshot
from tests.e2e.test_flow import label, sign_up

pytestmark = pytest.mark.e2e

STEPS = ("billing", "plan", "retainer", "portal", "stripe", "calendar")
PLAN = "Advisory, 10 hours"
CLIENT = {"name": "Acme Corp", "billing_email": "billing@acme.example"}
CONTACT = {"name": "Carol Chen", "email": "carol@acme.example"}


def test_a_new_consultant_follows_the_checklist_to_a_first_invoice(
    transactional_db,
    worker,
    page: Page,
    watch,
    settings,
    localstripe,  # noqa: F811 (the fixtures imported above)
    radicale,  # noqa: F811
    caldav_settings,  # noqa: F811
):
    # Stripe is set up on this server (pointed at localstripe): the Stripe step has a page to show.
    settings.STRIPE_SECRET_KEY = "sk_test_first_hour"
    settings.STRIPE_API_BASE = localstripe
    workspace = sign_up(page, worker)
    expect(checklist(page)).to_contain_text("0 of 6 done")
    assert_ticked(page, set())
    assert_accessible(page, "first-hour-dashboard")

    billing_details(page, workspace)
    assert_ticked(page, {"billing"})
    first_plan(page, workspace)
    assert_ticked(page, {"billing", "plan"})
    retainer = first_client_and_retainer(page, workspace)
    assert_ticked(page, {"billing", "plan", "retainer"})
    expect(checklist(page)).to_contain_text("3 of 6 done")
    screenshot(page, "readme-onboarding")  # the README's picture of the checklist, half done

    invite_the_client(page, workspace, retainer.client)
    assert_ticked(page, {"billing", "plan", "retainer", "portal"})
    connect_stripe(page, workspace)
    assert_ticked(page, {"billing", "plan", "retainer", "portal", "stripe"})
    connect_a_calendar(page, radicale)

    # Every step done: the checklist is gone (from the data, nobody dismissed it).
    go_to_dashboard(page, workspace)
    expect(page.locator("#onboarding")).to_have_count(0)
    workspace.refresh_from_db()
    assert workspace.onboarding_dismissed_at is None
    assert_accessible(page, "first-hour-dashboard-done")

    first_invoice(page, worker, workspace, retainer)
    watch.assert_clean()


# --- The checklist -----------------------------------------------------------------------------


def checklist(page: Page) -> Locator:
    return page.locator("#onboarding")


def go_to_dashboard(page: Page, workspace: Workspace) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard").click()
    expect(page).to_have_url(re.compile(rf"/w/{workspace.slug}/$"))


def assert_ticked(page: Page, done: set[str]) -> None:
    """On the dashboard: the steps in `done` are ticked (no link), every other one is a link."""
    for key in STEPS:
        step = page.locator(f"#onboarding-{key}")
        if key in done:
            expect(step).to_contain_text("(done)")
            expect(step.get_by_role("link")).to_have_count(0)
        else:
            expect(step.get_by_role("link")).to_be_visible()
    expect(checklist(page)).to_contain_text(f"{len(done)} of {len(STEPS)} done")


def follow(page: Page, key: str, name: str) -> None:
    """Click the step's link on the dashboard; the page it opens passes axe."""
    page.locator(f"#onboarding-{key}").get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    assert_accessible(page, f"first-hour-{name}")


# --- The steps ---------------------------------------------------------------------------------


def billing_details(page: Page, workspace: Workspace) -> None:
    follow(page, "billing", "billing-settings")
    page.get_by_label(label("Legal name")).fill("Northwind Advisory Ltd")
    page.get_by_label(label("Address")).fill("1 High Street\nLondon N1 1AA")
    page.get_by_role("button", name="Save billing settings").click()
    expect(page.get_by_label(label("Address"))).to_have_value("1 High Street\nLondon N1 1AA")
    go_to_dashboard(page, workspace)


def first_plan(page: Page, workspace: Workspace) -> None:
    follow(page, "plan", "plan-create")
    page.get_by_label(label("Plan name")).fill(PLAN)
    page.get_by_label("Fixed units (unused units lapse)").check()
    page.get_by_label(label("Unit")).select_option("hours")
    page.get_by_label(label("Units per period")).fill("10")
    page.get_by_label(label("Billing cadence")).select_option("monthly")
    page.get_by_label(re.compile(r"^Price per period")).fill("1,500.00")  # "… (GBP):"
    page.get_by_label(re.compile(r"^Overage rate")).fill("150.00")
    page.get_by_role("button", name="Create plan").click()
    expect(page.get_by_role("main")).to_contain_text(PLAN)
    assert Plan.objects.for_workspace(workspace).get().name == PLAN
    go_to_dashboard(page, workspace)


def first_client_and_retainer(page: Page, workspace: Workspace) -> Retainer:
    # With no client yet, the step starts with the client.
    follow(page, "retainer", "client-create")
    page.get_by_label(label("Name")).fill(CLIENT["name"])
    page.get_by_label(label("Billing email")).fill(CLIENT["billing_email"])
    page.get_by_role("button", name="Add client").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(CLIENT["name"])
    client = Client.objects.for_workspace(workspace).get()

    # A client is not a retainer: the step is still open, and now leads to the new-retainer page.
    go_to_dashboard(page, workspace)
    assert_ticked(page, {"billing", "plan"})
    follow(page, "retainer", "retainer-create")
    plan = Plan.objects.for_workspace(workspace).get()
    page.get_by_label(label("Plan")).select_option(str(plan.pk))  # htmx loads the plan's terms
    form = page.locator("#create-form")
    expect(form.get_by_role("heading", level=2)).to_contain_text(f"Terms from {PLAN}")
    form.get_by_label(label("Client")).select_option(str(client.pk))
    expect(form.get_by_label(label("Units per period"))).to_have_value(re.compile(r"^10(\.0+)?$"))
    form.get_by_role("button", name="Create retainer").click()

    retainer = Retainer.objects.for_workspace(workspace).get(client=client)
    expect(page).to_have_url(re.compile(rf"/retainers/{retainer.pk}/$"))
    assert (retainer.plan_id, retainer.price_minor, retainer.name) == (plan.pk, 150000, PLAN)
    assert_accessible(page, "first-hour-retainer")
    go_to_dashboard(page, workspace)
    return retainer


def invite_the_client(page: Page, workspace: Workspace, client: Client) -> None:
    follow(page, "portal", "clients")
    page.get_by_role("main").get_by_role("link", name=CLIENT["name"]).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(CLIENT["name"])
    # The contacts are on the client page's Communication tab.
    page.get_by_role("navigation", name=f"Sections of {CLIENT['name']}").get_by_role(
        "link", name="Communication"
    ).click()
    contacts = page.locator("#contacts")
    contacts.get_by_text("Add a contact").click()
    contacts.get_by_label(label("Name")).fill(CONTACT["name"])
    contacts.get_by_label(label("Email")).fill(CONTACT["email"])
    contacts.get_by_label(label("Give portal access")).check()
    contacts.get_by_role("button", name="Add contact").click()
    expect(contacts.get_by_role("status")).to_contain_text("Portal access is on")
    assert Contact.objects.for_workspace(workspace).get(client=client).portal_access
    go_to_dashboard(page, workspace)


def connect_stripe(page: Page, workspace: Workspace) -> None:
    follow(page, "stripe", "stripe")
    stripe = page.locator("#stripe")
    expect(stripe.get_by_role("button", name="Connect Stripe")).to_be_visible()
    # "Connect Stripe" sends the consultant to Stripe's onboarding pages, which localstripe has not;
    # the account comes back connected, as `demo_stripe` takes one up.
    connect.use_test_account(workspace=workspace, account_id="acct_1FirstHour")
    page.reload()
    expect(stripe.locator("#stripe-status")).to_contain_text("Connected")
    go_to_dashboard(page, workspace)


def connect_a_calendar(page: Page, server: Radicale) -> None:
    server.new_calendar()
    follow(page, "calendar", "calendar")
    page.get_by_label(label("CalDAV address")).fill(server.url)
    page.get_by_label(label("Username")).fill(RADICALE_USER)
    page.get_by_label(label("App password")).fill(RADICALE_PASSWORD)
    page.get_by_role("button", name="Connect calendar").click()
    expect(page.get_by_role("main")).to_contain_text("Calendar synced")
    assert_accessible(page, "first-hour-calendar-connected")


def first_invoice(page: Page, worker, workspace: Workspace, retainer: Retainer) -> None:
    """The billing run (hourly under beat; `manage.py run_billing` by hand, as the README says)
    issues the first period's invoice, billed in advance; the worker renders and emails it."""
    call_command("run_billing")
    invoice = Invoice.objects.for_workspace(workspace).get(client=retainer.client)
    assert invoice.number and invoice.total_minor == 150000
    worker.wait_until(
        "the worker to email the first invoice",
        lambda: latest_email(to=CLIENT["billing_email"], subject=invoice.number),
    )
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Invoices").click()
    expect(page.get_by_role("main")).to_contain_text(invoice.number)
    assert_accessible(page, "first-hour-invoices")
    page.get_by_role("link", name=invoice.number).first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(invoice.number)
    expect(page.get_by_role("main")).to_contain_text("£1,500.00")
    assert_accessible(page, "first-hour-invoice")
