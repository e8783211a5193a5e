"""The README's screenshots, taken from the demo workspace (`manage.py seed_demo`, as `make run`
shows it), and what a person sees on those two pages: counts in the right number, no stray list
bullets, no raw Markdown.

The screenshots land in artifacts/screenshots/readme-dashboard.png and readme-portal-overview.png;
docs/screenshots/dashboard.png and portal-overview.png are copies of them.
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

from clients.models import Contact
from demo import northwind
from retainers.models import User
from tests.e2e.support import screenshot

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
        if User.objects.exists():  # left by an interrupted run (--reuse-db keeps the database)
            _flush()
        try:
            call_command("seed_demo", stdout=StringIO())
            carol = Contact.objects.get(email=northwind.CONTACT)
            yield Demo(
                slug=northwind.SLUG,
                consultant_session=_session_cookie(User.objects.get(email=northwind.OWNER)),
                contact_session=_session_cookie(carol.user),
            )
        finally:
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
