"""Error pages in Chromium: no console error of their own (a missing favicon was one on each), no CSP
violation, and the CSRF failure page is ours, with a way back to the form."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def own_problems(watch, page_url: str) -> list[str]:
    """What went wrong besides the page's own status (Chromium logs a 404 or 405 document as a
    failed resource, which is the point of the page, not a fault in it)."""
    document = re.compile(rf"^{re.escape(page_url)}: Failed to load resource: the server responded with a status of")
    return [problem for problem in watch.problems() if not document.search(problem.removeprefix("console error on "))]


@pytest.mark.parametrize(
    ("path", "heading"),
    [("/no-such-page/", "Page not found"), ("/portal/logout/", "Not available this way")],
)
def test_error_page_has_no_console_error(transactional_db, browser_context, app_server, watch, path, heading):
    page = browser_context().new_page()
    with page.expect_response(lambda response: response.url.endswith("/static/img/favicon.svg")) as icon:
        page.goto(path)
    assert icon.value.status == 200
    expect(page.get_by_role("heading", level=1)).to_have_text(heading)
    page.wait_for_load_state("networkidle")
    assert own_problems(watch, page.url) == []
    watch.console_errors.clear()  # what own_problems() let pass is the page's own status


def test_a_form_sent_without_its_csrf_cookie_gets_our_page(transactional_db, browser_context, app_server, watch):
    context = browser_context()
    page = context.new_page()
    page.goto("/accounts/login/")
    context.clear_cookies()  # as when the session expired while the form was open
    page.get_by_label(re.compile(r"^Email")).fill("alice@example.com")
    page.get_by_label(re.compile(r"^Password")).fill("plum-Orchard-7-lantern")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("This form has expired")
    expect(page.get_by_text("allow them for it in your browser")).to_be_visible()
    page.get_by_role("link", name="Go back to the form").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    watch.console_errors[:] = [e for e in watch.console_errors if "status of 403" not in e]
