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
