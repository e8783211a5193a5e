"""Error pages are ours: 400, 403, 404, 405, 500 and the CSRF failure look like the app, carry a
favicon (a browser asks for /favicon.ico otherwise: a console error on every error page), obey the
CSP, give a way back, and say nothing about the server's settings."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.contrib.staticfiles import finders
from django.test import Client as Browser
from django.urls import path

from tests.retainers.test_security import csp_problems

pytestmark = pytest.mark.django_db


def boom(request):
    raise RuntimeError("a bug")


urlpatterns = [path("boom/", boom)]  # for the 500, with @pytest.mark.urls(__name__)


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: dict[str, str] = {}  # rel -> href
        self.anchors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "link":
            self.links[values.get("rel") or ""] = values.get("href") or ""
        if tag == "a":
            self.anchors.append(values.get("href") or "")


def assert_our_page(response, status: int, heading: str) -> Links:
    assert response.status_code == status
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert f"<h1>{heading}</h1>" in html, html
    assert "DEBUG" not in html and "<style" not in html and "style=" not in html
    assert csp_problems(response) == []
    page = Links()
    page.feed(html)
    for rel in ("icon", "stylesheet"):
        href = page.links.get(rel, "")
        assert href.startswith("/static/") and finders.find(href.removeprefix("/static/")), (rel, href)
    assert "/" in page.anchors  # a way back
    return page


def test_404_page(client):
    assert_our_page(client.get("/no-such-page/"), 404, "Page not found")


def test_403_page(member_client, workspace):
    assert_our_page(member_client.post(f"/w/{workspace.slug}/renewals/settings/", {}), 403, "Not allowed")


def test_400_page(client):
    assert_our_page(client.get("/", HTTP_HOST="evil.example"), 400, "Bad request")


def test_405_has_our_page_and_keeps_its_allow_header(owner_client, workspace):
    """A GET on a POST-only address was a blank page."""
    response = owner_client.get(f"/w/{workspace.slug}/team/invitations/1/revoke/")
    assert_our_page(response, 405, "Not available this way")
    assert response["Allow"] == "POST"
    assert "does not answer GET requests" in response.content.decode()


@pytest.mark.urls(__name__)
def test_500_page(client):
    client.raise_request_exception = False
    assert_our_page(client.get("/boom/"), 500, "Something went wrong")


def test_csrf_failure_is_our_page_with_a_way_back_to_the_form():
    browser = Browser(enforce_csrf_checks=True)
    browser.get("/accounts/login/")  # sets the CSRF cookie
    response = browser.post(
        "/accounts/login/",
        {"login": "a@example.com", "password": "x"},
        HTTP_REFERER="http://testserver/accounts/login/",
    )
    page = assert_our_page(response, 403, "This form has expired")
    assert "http://testserver/accounts/login/" in page.anchors
    assert "allow them" not in response.content.decode()  # the cookie was there: only the token was missing


def test_csrf_failure_without_a_cookie_says_so_and_never_links_elsewhere():
    browser = Browser(enforce_csrf_checks=True)
    response = browser.post("/accounts/login/", {}, HTTP_REFERER="https://evil.example/phish")
    page = assert_our_page(response, 403, "This form has expired")
    assert "https://evil.example/phish" not in page.anchors
    assert "allow them for it in your browser" in response.content.decode()
