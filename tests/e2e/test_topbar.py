"""The consultant's top bar at the widths people use: every navigation link stays clear of the
search box and the menus. At 1280 px the links once ran under the search box ("Team" and "Billing"
half hidden and unclickable), because they do not wrap and nothing else made room.
"""

from __future__ import annotations

import pytest
from allauth.account.models import EmailAddress

from retainers import services as workspaces
from retainers.models import User
from tests.e2e.test_sign_out import _signed_in_page

pytestmark = pytest.mark.e2e


def _overlaps(a: dict, b: dict) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


@pytest.mark.parametrize("width", [1440, 1280, 1024, 800])
def test_no_navigation_link_hides_under_the_search_box_or_the_menus(
    transactional_db, browser_context, app_server, width
):
    alice = User.objects.create_user(email="alice@northwind.example", password="plum-Orchard-7-lantern", name="Alice")
    EmailAddress.objects.create(user=alice, email=alice.email, verified=True, primary=True)
    workspace = workspaces.create_workspace(owner=alice, name="Northwind Advisory", timezone_name="UTC", currency="GBP")
    page = _signed_in_page(browser_context, app_server, alice)
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"/w/{workspace.slug}/")

    links = page.locator("header nav[aria-label=Main] a")
    assert links.count() >= 8
    others = [page.locator("header .topbar-search input"), *page.locator("header .topbar-end summary").all()]
    boxes = [box for box in (other.bounding_box() for other in others) if box is not None]
    assert boxes, "the search box and the menus are on screen"
    for i in range(links.count()):
        link = links.nth(i)
        box = link.bounding_box()
        assert box is not None, f"{link.inner_text()} is not on screen"
        assert box["x"] + box["width"] <= width, f"{link.inner_text()} runs off the screen"
        for other in boxes:
            assert not _overlaps(box, other), f"{link.inner_text()} lies under the search box or a menu at {width} px"
