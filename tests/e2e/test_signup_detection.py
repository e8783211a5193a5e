"""In a real browser, sign-up preselects the browser's time zone and its locale's currency."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("locale", "zone", "currency"),
    [("de-AT", "Europe/Vienna", "EUR"), ("en-GB", "Europe/London", "GBP"), ("zh-CN", "Asia/Shanghai", "USD")],
)
def test_signup_preselects_the_browsers_zone_and_currency(transactional_db, browser_context, locale, zone, currency):
    page = browser_context(locale=locale, timezone_id=zone).new_page()
    page.goto("/accounts/signup/")
    assert page.locator("select[name=timezone]").input_value() == zone
    assert page.locator("select[name=currency]").input_value() == currency  # CNY is not offered: USD stays
    page.select_option("select[name=currency]", "CHF")  # editable
    assert page.locator("select[name=currency]").input_value() == "CHF"
