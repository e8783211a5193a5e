"""The whole workflow in a real browser, with a real Celery worker sending the emails and
rendering the PDFs: a consultant signs up, signs a client to a rollover retainer, logs work with
the quick-add and bills; the client's contact signs in to the portal with the emailed code, sees
what is left and the invoice, downloads it, writes, and accepts the renewal.

One test, in order: every step builds on the one before (and the live server's database is
emptied after each test).
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from billing.models import Invoice
from billing.services import run_billing
from clients.models import Client, Retainer
from communication.models import Message
from renewals import services as renewals
from renewals.models import Renewal
from retainers.models import User, Workspace
from tests.e2e.support import latest_email, links_in, same_origin, screenshot

pytestmark = pytest.mark.e2e

CONSULTANT = {"name": "Dana Diaz", "email": "dana@northwind.example", "password": "plum-Orchard-7-lantern"}
BUSINESS = {"name": "Northwind Advisory", "timezone": "Europe/London", "currency": "GBP"}
CLIENT = {"name": "Acme Corp", "billing_email": "billing@acme.example"}
CONTACT = {"name": "Carol Chen", "email": "carol@acme.example"}
RETAINER = "Advisory retainer"
SESSIONS = [("1.5", "Kick-off workshop"), ("1:30", "Pricing review"), ("60m", "Board pack edits")]  # 4 hours


def label(text: str) -> re.Pattern:
    """A field's label exactly (Django's form labels end with a colon)."""
    return re.compile(rf"^{re.escape(text)}:?$")


CODE = re.compile(r"^\s*([A-Z0-9]{4}-[A-Z0-9]{4})\s*$", re.MULTILINE)


def test_consultant_bills_a_retainer_and_the_client_renews_it_in_the_portal(
    transactional_db, worker, browser_context, page: Page, app_server, watch
):
    workspace = sign_up(page, worker)
    client = create_client_and_contact(page, workspace)
    retainer = create_rollover_retainer(page, workspace, client)
    log_three_sessions(page)
    invoice = bill_and_see_the_invoice(page, worker, workspace, client)

    portal = browser_context().new_page()  # the contact: a browser of their own
    portal_sign_in(portal, worker, workspace)
    portal_overview_and_invoice(portal, invoice)
    portal_message(portal, workspace)
    portal_accept_renewal(portal, page, workspace, retainer)

    watch.assert_clean()


# --- The consultant ------------------------------------------------------------------------


def sign_up(page: Page, worker) -> Workspace:
    page.goto("/accounts/signup/")
    page.get_by_label(label("Your name")).fill(CONSULTANT["name"])
    page.get_by_label(label("Email")).fill(CONSULTANT["email"])
    page.get_by_label(label("Password")).fill(CONSULTANT["password"])
    page.get_by_label(label("Password (again)")).fill(CONSULTANT["password"])
    page.get_by_label(label("Business name")).fill(BUSINESS["name"])
    page.get_by_label(label("Time zone")).select_option(BUSINESS["timezone"])
    page.get_by_label(label("Default currency")).select_option(BUSINESS["currency"])
    page.get_by_role("button", name="Create my workspace").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Confirm your email address")

    # The confirmation link, from the email the worker sent.
    email = worker.wait_until(
        "the email confirmation to be sent", lambda: latest_email(to=CONSULTANT["email"], subject="confirm")
    )
    [link] = [url for url in links_in(worker.mailbox.text_of(email)) if "/accounts/confirm-email/" in url]
    page.goto(same_origin(link, page.url))
    page.get_by_role("button", name="Confirm").click()

    workspace = Workspace.objects.get(name=BUSINESS["name"])
    expect(page).to_have_url(re.compile(rf"/w/{workspace.slug}/$"))
    assert User.objects.get(email=CONSULTANT["email"]).emailaddress_set.get().verified
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    screenshot(page, "dashboard-empty")
    return workspace


def create_client_and_contact(page: Page, workspace: Workspace) -> Client:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Clients").click()
    page.get_by_role("link", name=re.compile(r"(New|Add) client")).first.click()
    page.get_by_label(label("Name")).fill(CLIENT["name"])
    page.get_by_label(label("Billing email")).fill(CLIENT["billing_email"])
    page.get_by_role("button", name="Add client").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(CLIENT["name"])
    client = Client.objects.for_workspace(workspace).get(name=CLIENT["name"])

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
    expect(contacts.get_by_role("table")).to_contain_text(CONTACT["email"])
    return client


def create_rollover_retainer(page: Page, workspace: Workspace, client: Client) -> Retainer:
    page.get_by_role("link", name="New retainer", exact=True).click()
    form = page.locator("#create-form")
    expect(form.get_by_label(label("Client"))).to_have_value(str(client.pk))
    form.get_by_label(label("Name")).fill(RETAINER)
    expect(form.get_by_label(label("Starts on"))).to_have_value(workspace.today().isoformat())
    # The terms are the plan form's: choosing rollover shows the rollover fields (htmx).
    form.get_by_label("Rollover units (unused units roll over)").check()
    expect(form.get_by_label(label("Rollover cap"))).to_be_visible()
    form.get_by_label(label("Unit")).select_option("hours")
    form.get_by_label(label("Units per period")).fill("10")
    form.get_by_label(label("Billing cadence")).select_option("monthly")
    form.get_by_label(label("Price per period")).fill("1,500.00")
    form.get_by_label(label("Overage rate")).fill("150.00")
    form.get_by_label(label("Rollover cap")).fill("5")
    form.get_by_label(label("Rolled units expire after")).fill("2")
    form.get_by_role("button", name="Create retainer").click()

    retainer = Retainer.objects.for_workspace(workspace).get(client=client)
    expect(page).to_have_url(re.compile(rf"/retainers/{retainer.pk}/$"))
    assert (retainer.model, retainer.units_per_period, retainer.price_minor) == ("rollover", Decimal(10), 150000)
    assert (retainer.rollover_cap, retainer.rollover_expiry_periods) == (Decimal(5), 2)
    expect(page.locator("#stat-remaining")).to_contain_text("10")
    return retainer


def log_three_sessions(page: Page) -> None:
    """The quick-add, by keyboard only: type the quantity, Tab, the description, Enter."""
    page.evaluate("window.__e2eNoReload = true")  # gone if the page navigates
    quantity = page.locator("#quick-add").get_by_label(label("Quantity"))
    for typed, description in SESSIONS:
        quantity.focus()
        page.keyboard.type(typed)
        page.keyboard.press("Tab")
        page.keyboard.type(description)
        page.keyboard.press("Enter")
        expect(page.locator("#quick-add").get_by_role("status")).to_contain_text(description)
        expect(page.locator("#work-list")).to_contain_text(description)
        # The fresh form puts the cursor back in Quantity when htmx settles the swap: a typist who starts
        # before that loses the focus mid-word, so wait for it as a person would see it.
        expect(quantity).to_be_focused()
    expect(page.locator("#stat-remaining")).to_contain_text("6.00")
    expect(page.locator("#stat-used")).to_contain_text("4.00")
    assert page.evaluate("window.__e2eNoReload") is True, "the quick-add reloaded the page"
    screenshot(page, "retainer")


def bill_and_see_the_invoice(page: Page, worker, workspace: Workspace, client: Client) -> Invoice:
    summary = run_billing(inline=True)  # what beat runs hourly; the PDF and email go to the worker
    assert summary.invoices == 1
    invoice = Invoice.objects.for_workspace(workspace).get(client=client)
    worker.wait_until(
        "the worker to render the invoice PDF and email it",
        lambda: latest_email(to=CLIENT["billing_email"], subject=invoice.number),
    )
    invoice.refresh_from_db()
    assert invoice.pdf and invoice.sent_at

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Invoices").click()
    expect(page.get_by_role("main")).to_contain_text(invoice.number)
    screenshot(page, "invoices")
    page.get_by_role("link", name=invoice.number).first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(invoice.number)
    screenshot(page, "invoice")

    page.goto(f"/w/{workspace.slug}/clients/{client.pk}/billing/")  # the client page's Billing tab
    expect(page.get_by_role("main")).to_contain_text(invoice.number)
    screenshot(page, "client")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard").click()
    expect(page.get_by_role("main")).to_contain_text(CLIENT["name"])
    screenshot(page, "dashboard")
    return invoice


# --- The client, in the portal -------------------------------------------------------------


def portal_sign_in(portal: Page, worker, workspace: Workspace) -> None:
    portal.goto("/portal/login/")
    screenshot(portal, "portal-login")
    portal.get_by_label(label("Email")).fill(CONTACT["email"])
    portal.get_by_role("button", name="Email me a code").click()
    expect(portal.get_by_role("heading", level=1)).to_contain_text("Check your email")
    email = worker.wait_until(
        "the sign-in code to be emailed", lambda: latest_email(to=CONTACT["email"], subject="code")
    )
    code = CODE.search(worker.mailbox.text_of(email)).group(1)
    portal.get_by_label(label("Code")).fill(code)
    portal.get_by_role("button", name="Sign in").click()
    expect(portal).to_have_url(re.compile(rf"/portal/w/{workspace.slug}/$"))


def portal_overview_and_invoice(portal: Page, invoice: Invoice) -> None:
    main = portal.get_by_role("main")
    expect(main).to_contain_text(RETAINER)
    expect(main).to_contain_text("6.00")
    expect(main).to_contain_text(invoice.number)
    screenshot(portal, "portal-overview")

    portal.get_by_role("navigation", name="Portal").get_by_role("link", name="Invoices").click()
    expect(main).to_contain_text(invoice.number)
    screenshot(portal, "portal-invoices")
    with portal.expect_download() as download:
        portal.get_by_role("link", name=f"PDF of invoice {invoice.number}").click()
    assert download.value.suggested_filename.endswith(".pdf")
    with open(download.value.path(), "rb") as pdf:
        assert pdf.read(5) == b"%PDF-"


def portal_message(portal: Page, workspace: Workspace) -> None:
    portal.get_by_role("navigation", name="Portal").get_by_role("link", name="Messages").click()
    text = "Could we move Thursday's call to Friday morning?"
    portal.get_by_label(label("Message")).fill(text)
    portal.get_by_role("button", name="Send message").click()
    expect(portal.get_by_role("main")).to_contain_text(text)
    assert Message.objects.for_workspace(workspace).filter(body__contains="Thursday").exists()
    screenshot(portal, "portal-messages")


def portal_accept_renewal(portal: Page, consultant: Page, workspace: Workspace, retainer: Retainer) -> None:
    # The consultant opens the renewal of this term early (the daily run opens it 30 days
    # before the term ends) and sends the proposal from its page.
    renewal = renewals.open_renewal(retainer=retainer, today=workspace.today())
    assert renewal is not None
    consultant.goto(f"/w/{workspace.slug}/renewals/{renewal.pk}/")
    consultant.get_by_role("button", name="Send proposal").click()
    expect(consultant.get_by_role("status")).to_contain_text("Proposal sent")
    screenshot(consultant, "renewal")

    portal.get_by_role("navigation", name="Portal").get_by_role("link", name="Renewal").click()
    if portal.get_by_role("button", name="Accept the proposal").count() == 0:
        portal.get_by_role("link", name=re.compile(RETAINER)).first.click()
    screenshot(portal, "portal-renewal")
    portal.get_by_role("button", name="Accept the proposal").click()
    expect(portal.get_by_role("main")).to_contain_text(re.compile("accepted", re.IGNORECASE))

    renewal.refresh_from_db()
    assert renewal.status == Renewal.Status.ACCEPTED
    retainer.refresh_from_db()
    next_term = Retainer.objects.for_workspace(workspace).get(pk=renewal.next_retainer_id)
    assert next_term.client_id == retainer.client_id and next_term.starts_on == retainer.term_ends_on
