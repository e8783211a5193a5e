"""The currencies a workspace or a retainer may bill in, and the time zones a workspace may use."""

from __future__ import annotations

import zoneinfo
from functools import cache

CURRENCIES = [
    ("USD", "USD – US dollar"),
    ("EUR", "EUR – Euro"),
    ("GBP", "GBP – Pound sterling"),
    ("CAD", "CAD – Canadian dollar"),
    ("AUD", "AUD – Australian dollar"),
    ("NZD", "NZD – New Zealand dollar"),
    ("CHF", "CHF – Swiss franc"),
    ("SEK", "SEK – Swedish krona"),
    ("NOK", "NOK – Norwegian krone"),
    ("DKK", "DKK – Danish krone"),
    ("PLN", "PLN – Polish złoty"),
    ("JPY", "JPY – Japanese yen"),
    ("SGD", "SGD – Singapore dollar"),
    ("HKD", "HKD – Hong Kong dollar"),
    ("INR", "INR – Indian rupee"),
    ("ZAR", "ZAR – South African rand"),
    ("BRL", "BRL – Brazilian real"),
    ("MXN", "MXN – Mexican peso"),
    ("AED", "AED – UAE dirham"),
    ("KWD", "KWD – Kuwaiti dinar"),
]


@cache
def timezone_choices() -> list[tuple[str, str]]:
    names = sorted(n for n in zoneinfo.available_timezones() if "/" in n and not n.startswith(("Etc/", "SystemV/")))
    return [("UTC", "UTC"), *((n, n.replace("_", " ")) for n in names)]


@cache
def currency_by_region() -> dict[str, str]:
    """The currency each region (ISO 3166 code, as in a browser's "de-AT") uses today, where it is
    one we bill in: what sign-up preselects from the browser's locale ("en-GB" → GBP)."""
    import datetime

    from babel.core import get_global
    from babel.numbers import get_territory_currencies

    offered = {code for code, _ in CURRENCIES}
    found: dict[str, str] = {}
    for region in sorted(get_global("territory_currencies")):
        if not (len(region) == 2 and region.isalpha()):
            continue
        current = [c for c in get_territory_currencies(region, datetime.date(2026, 1, 1)) if c in offered]
        if current:
            found[region] = current[0]
    return found
