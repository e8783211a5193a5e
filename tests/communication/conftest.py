"""Fixtures of the communication tests: a client with a portal contact, a retainer with sessions.

Alice owns `workspace` (Bob is a member); Acme is its client, Carol Acme's portal contact.
Globex is another client of the same workspace, with its own contact Gil.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.urls import reverse

from clients.services import add_contact
from delivery.services import record_delivery
from tests import factories


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Attachments go to a throw-away folder, never to var/media."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def acme(workspace):
    return factories.ClientFactory(workspace=workspace, name="Acme Corp")


@pytest.fixture
def carol(acme, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return add_contact(client=acme, name="Carol Chen", email="carol@acme.example", portal_access=True)


@pytest.fixture
def globex(workspace):
    return factories.ClientFactory(workspace=workspace, name="Globex")


@pytest.fixture
def gil(globex, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return add_contact(client=globex, name="Gil Green", email="gil@globex.example", portal_access=True)


@pytest.fixture
def carol_browser(carol, login):
    return login(carol.user)


@pytest.fixture
def retainer(acme):
    return factories.make_retainer(client=acme, starts_on=date(2026, 1, 1))


@pytest.fixture
def session(retainer, alice):
    return record_delivery(
        retainer=retainer,
        delivered_on=date(2026, 1, 12),
        quantity=Decimal("2"),
        description="Strategy workshop",
        actor=alice,
    )


def team_url(workspace, name: str, **kwargs: object) -> str:
    """A workspace URL by name: communication's own ("note_list"), or another app's ("dashboard:client_timeline")."""
    return reverse(
        name if ":" in name else f"communication:{name}", kwargs={"workspace_slug": workspace.slug, **kwargs}
    )


def portal_url(workspace, name: str, **kwargs: object) -> str:
    return reverse(f"portal:{name}", kwargs={"workspace_slug": workspace.slug, **kwargs})


HTMX = {"HTTP_HX_REQUEST": "true"}

XSS = [
    "<script>alert('x')</script>",
    '<img src=x onerror="alert(1)">',
    "[click me](javascript:alert(1))",
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">data link</a>',
    '<svg onload="alert(1)">',
]


class Markup(HTMLParser):
    """What a page's markup would execute or load: scripts without our nonce, handlers, unsafe URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script" and not values.get("nonce"):
            self.problems.append("<script> without nonce")
        if tag in {"img", "svg", "iframe", "object", "embed"}:
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}>")
            if name in {"href", "src", "action"} and (value or "").strip().lower().startswith(("javascript:", "data:")):
                self.problems.append(f"<{tag} {name}={value}>")

    handle_startendtag = handle_starttag


def assert_neutralised(html: str) -> None:
    """None of the XSS payloads survive as markup (they may show as text)."""
    markup = Markup()
    markup.feed(html)
    markup.close()
    assert markup.problems == []
