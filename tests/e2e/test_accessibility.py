"""Accessibility of the main pages, in Chromium: axe-core finds no serious or critical violation
(labels, heading order, contrast in the light and the dark scheme, ARIA), and the keyboard
reaches what matters (the skip link first, the quick-add usable without a mouse).

The data is written once for the module through the services (a workspace with a rollover
retainer that has a closed period, invoices, a payment, messages, a shared note and a
renewal proposal), and people are signed in by session cookie: the sign-in pages have tests of
their own here and in the flow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time, timedelta
from decimal import Decimal

import pytest
from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.management import call_command
from django.test import Client as DjangoClient
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from billing.models import Invoice, Payment
from billing.services import record_payment, run_billing
from clients import services as clients
from communication import services as communication
from communication.models import Note
from delivery import approvals, booking, booking_setup
from delivery import services as delivery
from renewals import services as renewals
from retainers import services as workspaces
from retainers import tenancy
from retainers.models import Membership, User
from tests.e2e.support import assert_accessible, screenshot

# `django_db` makes pytest-django set up the test database (a test without it or a `db` fixture
# does not count); the tests only read through the live server, which sees the module's data.
pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

PASSWORD = "plum-Orchard-7-lantern"


@dataclass(frozen=True)
class Seeded:
    slug: str
    client_id: int
    retainer_id: int
    invoice_id: int
    renewal_id: int
    booking_id: int
    overage_approval_id: int
    overage_token: str
    consultant_session: str
    contact_session: str


def _flush() -> None:
    # What pytest-django does after a transactional test: empty every table.
    call_command("flush", verbosity=0, interactive=False, inhibit_post_migrate=False)


def _session_cookie(user: User) -> str:
    client = DjangoClient()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def _user(email: str, name: str) -> User:
    user = User.objects.create_user(email=email, password=PASSWORD, name=name)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


def _seed() -> Seeded:
    alice = _user("alice@northwind.example", "Alice Archer")
    bob = _user("bob@northwind.example", "Bob Baker")
    workspace = workspaces.create_workspace(
        owner=alice, name="Northwind Advisory", timezone_name="Europe/London", currency="GBP"
    )
    Membership.objects.create(workspace=workspace, user=bob, role=Membership.Role.MEMBER)
    today = workspace.today()
    terms = {
        "model": "rollover",
        "unit": "hours",
        "units_per_period": Decimal(10),
        "price_minor": 150000,
        "currency": "GBP",
        "cadence": "monthly",
        "billing_timing": "advance",
        "overage_policy": "bill",
        "overage_rate_minor": 15000,
        "rollover_cap": Decimal(5),
        "rollover_expiry_periods": 2,
        "term_periods": 12,
        "renewal_notice_days": 30,
    }
    clients.create_plan(workspace=workspace, name="Advisory, 10 hours", description="Monthly advice.", terms=terms)
    acme = clients.create_client(workspace=workspace, name="Acme Corp", billing_email="billing@acme.example")
    clients.create_client(workspace=workspace, name="Globex Ltd", billing_email="ap@globex.example")
    carol = clients.add_contact(client=acme, name="Carol Chen", email="carol@acme.example", portal_access=True)

    # Started 40 days ago: one closed period (hours rolled over) and the open one.
    retainer = delivery.create_retainer(
        client=acme, name="Advisory retainer", starts_on=today - timedelta(days=40), terms=terms
    )
    for days_ago, hours, what in ((38, "2.5", "Kick-off workshop"), (30, "3", "Pricing review")):
        delivery.record_delivery(
            retainer=retainer,
            delivered_on=today - timedelta(days=days_ago),
            quantity=Decimal(hours),
            description=what,
            actor=alice,
        )
    run_billing(inline=True)
    for hours, what in (("1.5", "Board pack edits"), ("2", "Supplier negotiation call")):
        delivery.record_delivery(
            retainer=retainer, delivered_on=today, quantity=Decimal(hours), description=what, actor=alice
        )
    first, latest = Invoice.objects.for_workspace(workspace).filter(client=acme).order_by("issued_on", "pk")
    record_payment(invoice=first, amount_minor=first.total_minor, method=Payment.Method.BANK_TRANSFER, actor=alice)

    communication.send_contact_message(contact=carol, body="Could we move Thursday's call to Friday?")
    communication.send_team_message(client=acme, author=alice, body="Friday at 10:00 works. **See you then.**")
    communication.create_note(
        client=acme, author=alice, body="Agreed: supplier shortlist by the 5th.", visibility=Note.Visibility.SHARED
    )
    communication.create_task(
        client=acme,
        title="Send the supplier shortlist",
        due_at=timezone.now() + timedelta(days=3),
        actor=alice,
        assignee=alice,  # the task list opens on "Mine"
    )
    renewal = renewals.open_renewal(retainer=retainer, today=today)
    renewals.send_proposal(renewal=renewal, actor=alice)

    # Bookings: Alice takes them every day, Carol (in New York) has booked one.
    booking_setup.save_schedule(
        workspace=workspace,
        member=alice,
        settings={"timezone": "", "buffer_before_minutes": 0, "buffer_after_minutes": 0, "min_notice_minutes": 60,
                  "horizon_days": 30, "daily_cap": None, "step_minutes": 60},
        weekly={day: [(time(9), time(12)), (time(13), time(17))] for day in range(7)},
    )  # fmt: skip
    session_type = booking_setup.save_session_type(
        workspace=workspace, session_type=None, member=alice, name="Coaching call", duration_minutes=60,
        hours=Decimal("1"), sessions=1, location="https://meet.example.com/alice", reminder_minutes=[1440],
        all_retainers=True, retainers=[],
    )  # fmt: skip
    carol = clients.set_contact_timezone(contact=carol, timezone_name="America/New_York")
    start = booking.available_starts(
        session_type=session_type, first=today + timedelta(days=2), last=today + timedelta(days=8)
    )[0]
    made = booking.book(session_type=session_type, retainer=retainer, starts_at=start, actor=carol.user, contact=carol)
    approval = approvals.request_overage(
        retainer=retainer, offered=Decimal(5), message="The supplier talks need another afternoon.", actor=alice
    )
    return Seeded(
        slug=workspace.slug,
        client_id=acme.pk,
        retainer_id=retainer.pk,
        invoice_id=latest.pk,
        renewal_id=renewal.pk,
        booking_id=made.pk,
        overage_approval_id=approval.pk,
        overage_token=approvals.approval_token(approval, carol),
        consultant_session=_session_cookie(alice),
        contact_session=_session_cookie(carol.user),
    )


@pytest.fixture(scope="module")
def seeded(django_db_setup, django_db_blocker, app_server, media_root) -> Seeded:
    """Written once (committed, so the live server sees it), emptied after the module. The
    database stays open for the module: the live server's threads use it."""
    test_settings = override_settings(
        CELERY_TASK_ALWAYS_EAGER=True,  # invoice PDFs and emails in-process: no worker needed here
        MAILERS={"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}},
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        SITE_URL=app_server.url,
        MEDIA_ROOT=str(media_root),
    )
    with django_db_blocker.unblock(), test_settings:
        # Written and emptied by the test, not the app: across the wall (the module outlives the
        # per-test bypass of tests/conftest.py); the live server's requests keep theirs up.
        with tenancy.cross_tenant("e2e: the module's seed"):
            if User.objects.exists():  # left by an interrupted run (--reuse-db keeps the database)
                _flush()
            data = _seed()
        try:
            yield data
        finally:
            with tenancy.cross_tenant("e2e: emptying the module's seed"):
                _flush()


def open_as(browser_context, app_server, session: str | None) -> Page:
    context = browser_context()
    if session:
        context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": app_server.url}])
    return context.new_page()


ANONYMOUS = {
    "login": lambda s: reverse("account_login"),
    "signup": lambda s: reverse("account_signup"),
    "portal-login": lambda s: reverse("portal:login"),
    "overage-link": lambda s: reverse("delivery_public:overage_answer", args=[s.overage_token]),
}
CONSULTANT = {
    "dashboard": lambda s: reverse("dashboard", args=[s.slug]),
    "clients": lambda s: reverse("clients:client_list", args=[s.slug]),
    "client": lambda s: reverse("dashboard:client_detail", args=[s.slug, s.client_id]),
    "client-billing": lambda s: reverse("dashboard:client_billing", args=[s.slug, s.client_id]),
    "client-communication": lambda s: reverse("dashboard:client_communication", args=[s.slug, s.client_id]),
    "client-renewals": lambda s: reverse("dashboard:client_renewals", args=[s.slug, s.client_id]),
    "client-timeline": lambda s: reverse("dashboard:client_timeline", args=[s.slug, s.client_id]),
    "retainer": lambda s: reverse("delivery:retainer_detail", args=[s.slug, s.retainer_id]),
    "invoices": lambda s: reverse("billing:invoice_list", args=[s.slug]),
    "invoice": lambda s: reverse("billing:invoice_detail", args=[s.slug, s.invoice_id]),
    "plans": lambda s: reverse("clients:plan_list", args=[s.slug]),
    "tasks": lambda s: reverse("communication:task_list", args=[s.slug]),
    "renewals": lambda s: reverse("renewals:renewal_list", args=[s.slug]),
    "ledger": lambda s: reverse("delivery:retainer_ledger", args=[s.slug, s.retainer_id]),
    "periods": lambda s: reverse("delivery:retainer_periods", args=[s.slug, s.retainer_id]),
    "new-invoice": lambda s: reverse("billing:invoice_create", args=[s.slug]),
    "session-type-list": lambda s: reverse("delivery:session_type_list", args=[s.slug]),
    "team": lambda s: reverse("team", args=[s.slug]),
    "renewal": lambda s: reverse("renewals:renewal_detail", args=[s.slug, s.renewal_id]),
    "session-types": lambda s: reverse("delivery:session_type_create", args=[s.slug]),
    "availability": lambda s: reverse("delivery:booking_availability", args=[s.slug]),
    "calendar": lambda s: reverse("delivery:booking_calendar", args=[s.slug]),
    "bookings": lambda s: reverse("delivery:booking_list", args=[s.slug]),
    "book-for-client": lambda s: reverse("delivery:booking_new", args=[s.slug]) + f"?client={s.client_id}",
}
CONTACT = {
    "portal-overview": lambda s: reverse("portal:overview", args=[s.slug]),
    "portal-invoices": lambda s: reverse("portal:invoice_list", args=[s.slug]),
    "portal-messages": lambda s: reverse("portal:message_list", args=[s.slug]),
    "portal-renewal": lambda s: reverse("portal:renewal_detail", args=[s.slug, s.renewal_id]),
    "portal-renewals": lambda s: reverse("portal:renewal_list", args=[s.slug]),
    "portal-booking": lambda s: reverse("portal:book", args=[s.slug]),
    "portal-booking-cancel": lambda s: reverse("portal:booking_cancel", args=[s.slug, s.booking_id]),
    "portal-overage": lambda s: reverse("portal:overage_answer", args=[s.slug, s.overage_approval_id]),
    "portal-overage-list": lambda s: reverse("portal:overage_list", args=[s.slug]),
}
PAGES = [(name, None, url) for name, url in ANONYMOUS.items()]
PAGES += [(name, "consultant", url) for name, url in CONSULTANT.items()]
PAGES += [(name, "contact", url) for name, url in CONTACT.items()]


@pytest.mark.parametrize(("name", "who", "url"), PAGES, ids=[name for name, _, _ in PAGES])
def test_page_has_no_serious_accessibility_violations(seeded, browser_context, app_server, watch, name, who, url):
    session = {"consultant": seeded.consultant_session, "contact": seeded.contact_session}.get(who)
    page = open_as(browser_context, app_server, session)
    failures = []
    # The stylesheet has a dark scheme: its contrast counts too. Loaded in that scheme rather than
    # switched after loading, so no colour transition is caught halfway.
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        response = page.goto(url(seeded))
        assert response.status == 200, f"{name}: {response.status} at {page.url}"
        assert page.url == app_server.url + url(seeded), f"{name} redirected to {page.url}"
        if scheme == "light":
            screenshot(page, f"a11y-{name}")
        try:
            assert_accessible(page, f"{name}-{scheme}")
        except AssertionError as exc:
            failures.append(f"[{scheme} scheme] {exc}")
    assert not failures, "\n".join(failures)
    watch.assert_clean()


# --- The keyboard ------------------------------------------------------------------------


def focused(page: Page) -> dict:
    return page.evaluate(
        """() => { const e = document.activeElement;
        return {tag: e.tagName.toLowerCase(), id: e.id, text: (e.innerText || '').trim(),
                label: e.labels && e.labels[0] ? e.labels[0].innerText.trim() : ''}; }"""
    )


@pytest.mark.parametrize(
    ("name", "who", "url"),
    [
        ("dashboard", "consultant", CONSULTANT["dashboard"]),
        ("portal-overview", "contact", CONTACT["portal-overview"]),
        ("login", None, ANONYMOUS["login"]),
    ],
)
def test_skip_link_is_the_first_tab_stop_and_moves_focus_to_main(
    seeded, browser_context, app_server, watch, name, who, url
):
    session = {"consultant": seeded.consultant_session, "contact": seeded.contact_session}.get(who)
    page = open_as(browser_context, app_server, session)
    page.goto(url(seeded))
    page.keyboard.press("Tab")
    first = focused(page)
    assert (first["tag"], first["text"]) == ("a", "Skip to content"), f"first Tab stop on {name}: {first}"
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_in_viewport()  # shown when focused, not left off-screen
    page.keyboard.press("Enter")
    assert focused(page)["id"] == "main", f"after the skip link on {name}, focus is on {focused(page)}"
    watch.assert_clean()


def tab_to(page: Page, matches, *, limit: int = 80) -> dict:
    """Press Tab until the focused element matches; fails if it is not reached in `limit` stops."""
    seen = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        now = focused(page)
        if matches(now):
            return now
        seen.append(now["label"] or now["text"][:30] or now["tag"])
    raise AssertionError(f"not reached by Tab in {limit} stops; went through: {seen}")


def has_visible_focus(page: Page) -> bool:
    return page.evaluate(
        """() => { const s = getComputedStyle(document.activeElement);
        return (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0) || s.boxShadow !== 'none'; }"""
    )


def test_quick_add_on_the_retainer_page_works_by_keyboard(seeded, browser_context, app_server, watch):
    page = open_as(browser_context, app_server, seeded.consultant_session)
    page.goto(CONSULTANT["retainer"](seeded))
    before = page.locator("#stat-remaining").inner_text()
    page.evaluate("window.__e2eNoReload = true")

    tab_to(page, lambda f: f["label"].startswith("Quantity"))
    assert has_visible_focus(page), "the focused Quantity field shows no focus indicator"
    page.keyboard.type("45m")
    page.keyboard.press("Tab")
    assert focused(page)["label"].startswith("What was done")
    page.keyboard.type("Call notes by keyboard")
    page.keyboard.press("Enter")

    expect(page.locator("#quick-add").get_by_role("status")).to_contain_text("Call notes by keyboard")
    expect(page.locator("#stat-remaining")).not_to_have_text(before)
    assert page.evaluate("window.__e2eNoReload") is True, "the quick-add reloaded the page"
    watch.assert_clean()


def test_quick_add_on_the_dashboard_works_by_keyboard(seeded, browser_context, app_server, watch):
    page = open_as(browser_context, app_server, seeded.consultant_session)
    page.goto(CONSULTANT["dashboard"](seeded))
    page.evaluate("window.__e2eNoReload = true")

    tab_to(page, lambda f: f["label"].startswith("Retainer"))
    page.keyboard.type("Acme")  # a select picks the option whose text starts with what is typed
    assert re.search("Acme", page.evaluate("document.activeElement.selectedOptions[0].text"))
    tab_to(page, lambda f: f["label"].startswith("Quantity"), limit=5)
    page.keyboard.type("1:15")
    page.keyboard.press("Tab")
    assert focused(page)["label"].startswith("What was done")
    page.keyboard.type("Dashboard quick-add by keyboard")
    page.keyboard.press("Enter")

    expect(page.locator("#quick-add").get_by_role("status")).to_contain_text("Dashboard quick-add by keyboard")
    assert page.evaluate("window.__e2eNoReload") is True, "the quick-add reloaded the page"
    watch.assert_clean()


# --- A phone ----------------------------------------------------------------------------------

PHONE = {"width": 390, "height": 844}  # a common phone's CSS pixels

# What the page shows wider than the screen. Tables and, on a phone, the navigation scroll
# sideways inside a box of their own: only what pushes the page itself sideways counts.
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const scrollsInside = (e) => {
    for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
      if (getComputedStyle(a).overflowX !== "visible") return true;
    }
    return false;
  };
  const wide = [...document.querySelectorAll("body *")].filter((e) => {
    if (e.closest(".visually-hidden") || scrollsInside(e)) return false;
    const box = e.getBoundingClientRect();
    return box.width > 0 && box.right > width + 1;
  });
  return {scroll: document.documentElement.scrollWidth, width,
          wide: wide.slice(0, 5).map((e) => e.outerHTML.slice(0, 120))};
}"""


@pytest.mark.parametrize(("name", "url"), list(CONTACT.items()), ids=list(CONTACT))
def test_portal_pages_fit_a_phone_screen(seeded, browser_context, app_server, watch, name, url):
    context = browser_context(viewport=PHONE, is_mobile=True, has_touch=True)
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": seeded.contact_session, "url": app_server.url}]
    )
    page = context.new_page()
    assert page.goto(url(seeded)).status == 200
    found = page.evaluate(OVERFLOW)
    assert found["scroll"] <= found["width"] and not found["wide"], f"{name} is wider than a phone: {found}"
    screenshot(page, f"phone-{name}")
    # The navigation stays reachable: every portal section is a visible link.
    for section in ("Overview", "Invoices", "Messages"):
        expect(page.get_by_role("navigation", name="Portal").get_by_role("link", name=section)).to_be_visible()
    watch.assert_clean()


# --- Phones ------------------------------------------------------------------------------

PHONE = {"width": 390, "height": 844}


# The tables on a phone are stacked, not merely wrapped: none is wider than the screen, no
# .table-wrap scrolls sideways, and in a stacked table every cell that shows a figure (a digit) says
# which one (its data-label). Exempt: a row's first cell (its title), a cell across the whole row,
# an action cell (a form or button), and the one cell of a row that has a header cell (the header
# names it). Tables not drawn (a
# chart's figures for screen readers, a closed <details>) do not count.
STACKED_TABLES = """() => {
  const screen = document.documentElement.clientWidth;
  const drawn = (e) => e.getClientRects().length > 0 && !e.closest(".visually-hidden");
  const where = (e) => {
    const heading = e.closest("section, .card, main")?.querySelector("h1, h2, h3, caption");
    return (e.id ? "#" + e.id : "a table") + (heading ? ` under "${heading.innerText.trim().slice(0, 40)}"` : "");
  };
  const problems = [];
  for (const table of document.querySelectorAll("table")) {
    if (!drawn(table)) continue;
    const width = table.getBoundingClientRect().width;
    if (width > screen + 1) problems.push(`${where(table)} is ${Math.round(width)}px wide`);
    if (!table.classList.contains("stack-on-phone")) continue;
    for (const row of table.rows) {
      const cells = [...row.cells];
      const headed = cells.length === 2 && cells[0].tagName === "TH";
      cells.forEach((cell, index) => {
        if (cell.tagName !== "TD" || cell.hasAttribute("data-label") || index === 0 || headed) return;
        if (cells.length === 1 || cell.colSpan > 1 || !drawn(cell)) return;
        if (cell.querySelector("form, button")) return;  // an action cell
        const shown = cell.cloneNode(true);
        shown.querySelectorAll(".visually-hidden").forEach((e) => e.remove());
        if (/\\d/.test(shown.textContent)) {
          problems.push(`${where(table)}: "${shown.textContent.trim().slice(0, 40)}" has no data-label`);
        }
      });
    }
  }
  for (const wrap of document.querySelectorAll(".table-wrap")) {
    if (drawn(wrap) && wrap.scrollWidth > wrap.clientWidth + 1) {
      problems.push(`${where(wrap.querySelector("table") || wrap)} scrolls sideways (${wrap.scrollWidth}px in ${wrap.clientWidth}px)`);
    }
  }
  return problems;
}"""


@pytest.mark.parametrize(("name", "who", "url"), PAGES, ids=[name for name, _, _ in PAGES])
def test_page_fits_a_phone_without_scrolling_sideways(seeded, browser, app_server, name, who, url):
    context = browser.new_context(viewport=PHONE, base_url=app_server.url)
    session = {"consultant": seeded.consultant_session, "contact": seeded.contact_session}.get(who)
    if session:
        context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": app_server.url}])
    try:
        page = context.new_page()
        assert page.goto(url(seeded)).status == 200
        assert page.url == app_server.url + url(seeded), f"{name} redirected to {page.url}"  # not a sign-in page
        # The page itself must not scroll sideways; a table may, inside its own .table-wrap.
        width = page.evaluate("() => document.documentElement.scrollWidth")
        wide = page.evaluate(
            """() => [...document.querySelectorAll('body *')]
                .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1
                             && !e.parentElement.closest('.table-wrap, nav')
                             && getComputedStyle(e).position !== 'fixed')
                .slice(0, 5).map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
                                    + (e.className && typeof e.className === 'string' ? '.' + e.className.split(' ')[0] : ''))"""
        )
        assert width <= PHONE["width"], f"{name}: {width}px wide at {PHONE['width']}px; too wide: {wide}"
        screenshot(page, f"phone-390-{name}")
        problems = page.evaluate(STACKED_TABLES)
        assert not problems, f"{name} at {PHONE['width']}px:\n  " + "\n  ".join(problems)
    finally:
        context.close()


def test_on_a_phone_the_main_navigation_opens_from_a_menu_without_javascript(seeded, browser, app_server):
    for viewport, folded in ((PHONE, True), ({"width": 1280, "height": 900}, False)):
        context = browser.new_context(viewport=viewport, base_url=app_server.url, java_script_enabled=False)
        context.add_cookies(
            [{"name": settings.SESSION_COOKIE_NAME, "value": seeded.consultant_session, "url": app_server.url}]
        )
        try:
            page = context.new_page()
            page.goto(CONSULTANT["dashboard"](seeded))
            nav = page.get_by_role("navigation", name="Main")
            menu = page.locator(".nav-menu > summary")
            if folded:
                expect(nav.get_by_role("link", name="Invoices")).to_be_hidden()
                menu.click()
            else:
                expect(menu).to_be_hidden()
            for link in nav.get_by_role("link").all():
                expect(link).to_be_visible()
                box = link.bounding_box()
                assert box and box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"], link.inner_text()
        finally:
            context.close()


def test_on_a_phone_the_portal_navigation_shows_every_item(seeded, browser, app_server):
    context = browser.new_context(viewport=PHONE, base_url=app_server.url)
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": seeded.contact_session, "url": app_server.url}]
    )
    try:
        page = context.new_page()
        page.goto(CONTACT["portal-overview"](seeded))
        links = page.get_by_role("navigation", name="Portal").get_by_role("link").all()
        assert {"Card", "Renewal", "Invoices"} <= {link.inner_text() for link in links}
        for link in links:
            box = link.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], link.inner_text()
    finally:
        context.close()


def test_on_a_phone_the_dashboard_rows_show_every_figure_stacked(seeded, browser, app_server):
    context = browser.new_context(viewport=PHONE, base_url=app_server.url)
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": seeded.consultant_session, "url": app_server.url}]
    )
    try:
        page = context.new_page()
        page.goto(CONSULTANT["dashboard"](seeded))
        row = page.locator("#retainer-rows tbody tr").first
        cells = row.locator("th, td").all()
        assert len(cells) == 6  # client, used, remaining, days left, next invoice, renewal
        for cell in cells:
            expect(cell).to_be_visible()
            box = cell.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], cell.inner_text()
        labels = [cell.get_attribute("data-label") for cell in cells[1:]]
        assert labels == ["Used", "Remaining", "Days left", "Next invoice", "Renewal"]
    finally:
        context.close()
