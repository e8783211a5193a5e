"""Signing out with a mouse, as a person does: point at the middle of the Sign out button, let the
hover styles apply, click there. A hover rule once shrank the account menu's button from 40 to
18 px under the pointer, so the click landed on the menu's panel and nobody was signed out.
"""

from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress
from django.conf import settings
from django.test import Client as DjangoClient
from playwright.sync_api import Locator, Page, expect

from clients import services as clients
from retainers import services as workspaces
from retainers.models import User

pytestmark = pytest.mark.e2e

HOVER_SETTLED_MS = 400  # longer than any transition of app.css (--dur)


def _signed_in_page(browser_context, app_server, user: User) -> Page:
    browser = DjangoClient()
    browser.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    context = browser_context()
    cookie = browser.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": app_server.url}])
    return context.new_page()


def click_like_a_person(page: Page, button: Locator) -> None:
    """Aim at the button's centre, hover there, then press and release where the pointer is.

    Playwright's own click() would scroll, wait and re-aim at the element's box after hovering; a
    person does not, which is how the shrinking button went unnoticed.
    """
    box = button.bounding_box()
    assert box is not None, "the button is not on screen"
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.wait_for_timeout(HOVER_SETTLED_MS)
    hovered = button.bounding_box()
    assert hovered is not None and hovered["height"] == pytest.approx(box["height"]), (box, hovered)
    page.mouse.down()
    page.mouse.up()


def test_consultant_signs_out_from_the_account_menu_by_mouse(transactional_db, browser_context, app_server):
    alice = User.objects.create_user(email="alice@northwind.example", password="plum-Orchard-7-lantern", name="Alice")
    EmailAddress.objects.create(user=alice, email=alice.email, verified=True, primary=True)
    workspace = workspaces.create_workspace(owner=alice, name="Northwind", timezone_name="UTC", currency="GBP")
    page = _signed_in_page(browser_context, app_server, alice)
    page.goto(f"/w/{workspace.slug}/")

    menu = page.locator("details.menu", has=page.get_by_text("Account:"))
    summary = menu.locator("summary")
    box = summary.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    sign_out = menu.get_by_role("button", name="Sign out")
    expect(sign_out).to_be_visible()
    assert round(sign_out.bounding_box()["height"]) >= 40  # a comfortable target at rest (sub-pixel layout)

    click_like_a_person(page, sign_out)
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    page.goto(f"/w/{workspace.slug}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next="))  # really signed out


def test_client_signs_out_of_the_portal_by_mouse(transactional_db, browser_context, app_server):
    owner = User.objects.create_user(email="alice@northwind.example", password="plum-Orchard-7-lantern", name="Alice")
    workspace = workspaces.create_workspace(owner=owner, name="Northwind", timezone_name="UTC", currency="GBP")
    acme = clients.create_client(workspace=workspace, name="Acme Corp", billing_email="billing@acme.example")
    carol = clients.add_contact(client=acme, name="Carol Chen", email="carol@acme.example", portal_access=True)
    page = _signed_in_page(browser_context, app_server, carol.user)
    page.goto(f"/portal/w/{workspace.slug}/")
    expect(page.get_by_role("heading", level=1)).to_be_visible()

    click_like_a_person(page, page.get_by_role("button", name="Sign out"))
    expect(page).to_have_url(re.compile(r"/portal/login/$"))
    page.goto(f"/portal/w/{workspace.slug}/")
    expect(page).to_have_url(re.compile(r"/portal/login/"))
