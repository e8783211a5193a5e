"""Sign-up preselects the browser's time zone and its locale's currency (static JS, CSP-safe);
both stay editable, and a form sent back with errors keeps what the person chose."""

from __future__ import annotations

import json
import re

import pytest

from retainers.choices import CURRENCIES, currency_by_region

pytestmark = pytest.mark.django_db


def test_each_region_maps_to_the_currency_it_uses_when_we_bill_in_it():
    regions = currency_by_region()
    assert (regions["GB"], regions["DE"], regions["AT"], regions["US"], regions["CH"], regions["JP"]) == (
        "GBP", "EUR", "EUR", "USD", "CHF", "JPY",
    )  # fmt: skip
    assert "CN" not in regions  # CNY is not a currency we bill in: the default stays
    assert set(regions.values()) <= {code for code, _ in CURRENCIES}


def test_a_fresh_signup_form_marks_both_selects_and_loads_the_script_with_the_nonce(client):
    response = client.get("/accounts/signup/")
    page = response.content.decode()
    zone = re.search(r'<select name="timezone"[^>]*>', page)
    currency = re.search(r'<select name="currency"[^>]*>', page)
    assert zone and 'data-detect="timezone"' in zone[0]
    assert currency and 'data-detect="currency"' in currency[0]
    mapping = re.search(r'data-currency-by-region="([^"]*)"', currency[0])
    assert mapping and json.loads(mapping[1].replace("&quot;", '"'))["GB"] == "GBP"
    script = re.search(r'<script src="/static/js/detect\.js" nonce="([^"]+)" defer>', page)
    assert script and script[1] in response.headers["Content-Security-Policy"]


def test_a_form_sent_back_with_errors_is_not_overwritten_by_detection(client):
    response = client.post("/accounts/signup/", {"timezone": "Asia/Tokyo", "currency": "JPY", "workspace_name": ""})
    assert response.status_code == 200
    assert "data-detect" not in response.content.decode()
