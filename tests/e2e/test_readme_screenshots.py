"""The README's screenshots, taken from the demo workspace (`manage.py seed_demo`, as `make run`
shows it), and what a person sees on those two pages: counts in the right number, no stray list
bullets, no raw Markdown.

The screenshots land in artifacts/screenshots/readme-dashboard.png, readme-portal-overview.png and
readme-client.png; docs/screenshots/dashboard.png, portal-overview.png and client.png are copies of
them. The client page's tests also check its summary against the functions that own each figure,
and walk its tabs with and without JavaScript.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client as DjangoClient
from django.test import override_settings
from django.urls import reverse
from playwright.sync_api import Page, expect

from billing.models import Invoice
from billing.preview import next_invoice
from billing.selectors import outstanding_totals
from clients.models import Client, Contact, Retainer
from communication.models import Task
from demo import northwind
from retainers import tenancy
from retainers.models import User
from retainers.money import format_money
from retainers.units import format_units
from tests.e2e.support import assert_accessible, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

# A list item that shows a marker (a bullet or a number) where the page lays items out as rows.
MARKERS = """(root) => [...root.querySelectorAll("li")]
  .filter((li) => getComputedStyle(li).display === "list-item" && getComputedStyle(li).listStyleType !== "none")
  .map((li) => li.textContent.trim().slice(0, 60))"""
# "1 overdue invoices", "1 renewals to propose": a count of one with a plural noun after it.
ONE_PLURAL = re.compile(r"\b1 (?:[a-z]+ ){0,2}(?:invoices|renewals|balances|tasks|payments|clients|deliverables)\b")


@dataclass(frozen=True)
class Demo:
    slug: str
    consultant_session: str
    contact_session: str


def _flush() -> None:
    call_command("flush", verbosity=0, interactive=False, inhibit_post_migrate=False)


def _session_cookie(user: User) -> str:
    client = DjangoClient()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client.cookies[settings.SESSION_COOKIE_NAME].value


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker, app_server, media_root) -> Demo:
    """The demo, seeded once for the module (committed, so the live server sees it), emptied after."""
    test_settings = override_settings(
        CELERY_TASK_ALWAYS_EAGER=True,
        MAILERS={"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}},
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        SITE_URL=app_server.url,
        MEDIA_ROOT=str(media_root),
    )
    with django_db_blocker.unblock(), test_settings:
        # The test's own reads and its emptying cross the wall (the module outlives the per-test
        # bypass of tests/conftest.py); seed_demo names its own, and the live server keeps the wall up.
        with tenancy.cross_tenant("e2e: the module's demo"):
            if User.objects.exists():  # left by an interrupted run (--reuse-db keeps the database)
                _flush()
            call_command("seed_demo", stdout=StringIO())
            carol = Contact.objects.get(email=northwind.CONTACT)
            demo = Demo(
                slug=northwind.SLUG,
                consultant_session=_session_cookie(User.objects.get(email=northwind.OWNER)),
                contact_session=_session_cookie(carol.user),
            )
        try:
            yield demo
        finally:
            with tenancy.cross_tenant("e2e: emptying the module's demo"):
                _flush()


def open_as(browser_context, app_server, session: str) -> Page:
    context = browser_context()
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": app_server.url}])
    return context.new_page()


def test_the_dashboard_screenshot_shows_the_demo(demo, browser_context, app_server, watch):
    page = open_as(browser_context, app_server, demo.consultant_session)
    response = page.goto(reverse("dashboard", args=[demo.slug]))
    assert response.status == 200
    main = page.get_by_role("main")
    expect(main.get_by_role("heading", level=1)).to_have_text("Dashboard")
    expect(main).to_contain_text("Acme Corp")
    expect(main.locator("#attention")).to_contain_text("1 overdue invoice")  # Globex's, in the demo
    assert page.locator("main").evaluate(MARKERS) == []
    assert ONE_PLURAL.findall(main.inner_text()) == []
    screenshot(page, "readme-dashboard")
    watch.assert_clean()


def test_the_portal_screenshot_shows_the_demo(demo, browser_context, app_server, watch):
    page = open_as(browser_context, app_server, demo.contact_session)
    response = page.goto(reverse("portal:overview", args=[demo.slug]))
    assert response.status == 200
    main = page.get_by_role("main")
    expect(main).to_contain_text("Operations advisory")
    text = main.inner_text()
    assert "**" not in text and ONE_PLURAL.findall(text) == []
    screenshot(page, "readme-portal-overview")
    watch.assert_clean()


# --- The client page: its summary against the one-home figures, its tabs with and without JavaScript ---


def _summary_expected(client: Client) -> dict[tuple[str, int | None], str]:
    """What the summary must say, from the functions that own each figure (never from the page's
    own code): the retainer's cached balance and utilisation (retainers.units), billing.preview's
    next invoice, billing.selectors' outstanding and overdue money, the open tasks."""
    workspace = client.workspace
    today, locale = workspace.today(), workspace.locale or "en_US"
    expected: dict[tuple[str, int | None], str] = {}
    for retainer in Retainer.objects.for_workspace(workspace).filter(client=client).in_force(on=today):
        if retainer.model != "deliverables":
            word = "over" if retainer.balance < 0 else "left"
            expected["remaining", retainer.pk] = f"{format_units(abs(retainer.balance), retainer.unit)}"
            expected["remaining-word", retainer.pk] = word
            if retainer.utilisation_percent is not None:
                expected["utilization", retainer.pk] = f"{retainer.utilisation_percent}%"
        preview = next_invoice(retainer, today=today)
        if preview is not None:
            expected["next-invoice", retainer.pk] = format_money(preview.total_minor, preview.currency, locale)
            expected["next-invoice-on", retainer.pk] = f"{preview.issue_on.day} {preview.issue_on:%b %Y}"
    for totals in outstanding_totals(Invoice.objects.for_workspace(workspace).filter(client=client), today=today):
        expected["outstanding", None] = format_money(int(totals["outstanding"]), str(totals["currency"]), locale)
        if totals["overdue_count"]:
            expected["overdue", None] = format_money(int(totals["overdue"]), str(totals["currency"]), locale)
    expected["open-tasks", None] = str(
        Task.objects.for_workspace(workspace).filter(client=client, status=Task.Status.OPEN).count()
    )
    return expected


def _summary_shown(page: Page) -> dict[tuple[str, int | None], str]:
    return {
        (item["name"], int(item["retainer"]) if item["retainer"] else None): item["text"]
        for item in page.locator("#client-summary").evaluate(
            """(root) => [...root.querySelectorAll("[data-figure]")].map((e) => ({
                 name: e.dataset.figure,
                 retainer: e.closest("[data-retainer]")?.dataset.retainer || "",
                 text: e.innerText.trim().replace(/\\s+/g, " "),
               }))"""
        )
    }


@pytest.mark.parametrize("name", ["Acme Corp", "Globex Ltd"])
def test_the_client_page_summary_states_the_one_home_figures(demo, browser_context, app_server, watch, name):
    client = Client.objects.get(workspace__slug=demo.slug, name=name)
    expected = _summary_expected(client)
    page = open_as(browser_context, app_server, demo.consultant_session)
    assert page.goto(reverse("dashboard:client_detail", args=[demo.slug, client.pk])).status == 200
    shown = _summary_shown(page)
    assert any(key[0] == "remaining" for key in expected), "the demo client has a retainer with units"
    for (figure, retainer), value in expected.items():
        if figure == "remaining-word":
            assert shown["remaining", retainer].endswith(value), (figure, retainer, shown)
        elif figure in ("remaining", "next-invoice", "outstanding", "overdue"):
            assert shown[figure, retainer].startswith(value), (figure, retainer, shown[figure, retainer], value)
        else:
            assert shown[figure, retainer] == value, (figure, retainer, shown[figure, retainer], value)
    if ("overdue", None) not in expected:
        assert ("overdue", None) not in shown
    watch.assert_clean()


def _tabs(page: Page, client_name: str):
    return page.get_by_role("navigation", name=f"Sections of {client_name}")


def test_the_client_page_tabs_swap_with_htmx_and_keep_their_url(demo, browser_context, app_server, watch):
    client = Client.objects.get(workspace__slug=demo.slug, name="Acme Corp")
    base = reverse("dashboard:client_detail", args=[demo.slug, client.pk])
    page = open_as(browser_context, app_server, demo.consultant_session)
    page.goto(base)
    tabs = _tabs(page, client.name)
    expect(tabs.get_by_role("link", name="Work")).to_have_attribute("aria-current", "page")
    expect(page.locator("#client-retainers")).to_be_visible()
    assert_accessible(page, "client-work")
    page.evaluate("window.__e2eNoReload = true")  # gone if the page navigates
    for label, path, shows in (
        ("Billing", "billing/", "#client-billing"),
        ("Communication", "communication/", "#client-communication"),
        ("Renewals", "renewals/", "#client-renewals"),
        ("Timeline", "timeline/", "#timeline-events"),
    ):
        tabs.get_by_role("link", name=label).click()
        expect(page).to_have_url(app_server.url + base + path)
        expect(tabs.get_by_role("link", name=label)).to_have_attribute("aria-current", "page")
        expect(page.locator(shows)).to_be_visible()
        expect(page.locator("#client-summary")).to_be_visible()
        expect(page).to_have_title(re.compile(rf"^{label} · {client.name} · "))
        expect(tabs.get_by_role("link", name=label)).to_be_focused()  # kept on the tab just chosen
        assert tabs.locator("[aria-current]").count() == 1
        assert_accessible(page, f"client-{label.lower()}")
    assert page.evaluate("window.__e2eNoReload") is True, "a tab reloaded the page"

    page.go_back()  # back to Renewals, then Communication: the browser's history holds each tab
    expect(page).to_have_url(app_server.url + base + "renewals/")
    expect(page.locator("#client-renewals")).to_be_visible()
    expect(_tabs(page, client.name).get_by_role("link", name="Renewals")).to_have_attribute("aria-current", "page")
    page.go_back()
    expect(page).to_have_url(app_server.url + base + "communication/")
    expect(page.locator("#client-communication")).to_be_visible()
    page.go_forward()
    expect(page.locator("#client-renewals")).to_be_visible()

    # The README's screenshot: the summary and the Work tab, on a desktop and on a phone.
    page.goto(base)
    expect(page.locator("#client-summary")).to_be_visible()
    screenshot(page, "readme-client")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(base + "billing/")
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the client page scrolls sideways by {overflow}px at 390 px"
    screenshot(page, "client-phone")
    watch.assert_clean()


def test_the_client_page_tabs_work_without_javascript(demo, browser_context, app_server, watch):
    client = Client.objects.get(workspace__slug=demo.slug, name="Acme Corp")
    base = reverse("dashboard:client_detail", args=[demo.slug, client.pk])
    context = browser_context(java_script_enabled=False)
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": demo.consultant_session, "url": app_server.url}]
    )
    page = context.new_page()
    page.goto(base)
    for label, path, shows in (
        ("Billing", "billing/", "#client-billing"),
        ("Communication", "communication/", "#client-communication"),
        ("Renewals", "renewals/", "#client-renewals"),
        ("Timeline", "timeline/", "#timeline-events"),
        ("Work", "work/", "#client-retainers"),
    ):
        _tabs(page, client.name).get_by_role("link", name=label).click()
        expect(page).to_have_url(app_server.url + base + path)
        expect(_tabs(page, client.name).get_by_role("link", name=label)).to_have_attribute("aria-current", "page")
        expect(page.locator(shows)).to_be_visible()
        expect(page.locator("#client-summary")).to_be_visible()

    # A form in a tab, without JavaScript: the note is saved and the page comes back on its tab.
    _tabs(page, client.name).get_by_role("link", name="Communication").click()
    communication = page.locator("#client-communication")
    communication.get_by_text("Add a note").click()
    communication.get_by_label(re.compile(r"^Note:?$")).fill("Written without JavaScript")
    communication.get_by_role("button", name="Save note").click()
    expect(page).to_have_url(re.compile(re.escape(base + "communication/")))
    expect(page.locator("#client-communication")).to_contain_text("Written without JavaScript")
    watch.assert_clean()
