"""Rate limits on what anyone can make the app do in a loop: the public pay page, statement PDFs,
messages and attachments (allauth limits sign-in itself, with its own settings).

Like allauth's: counters in the Django cache (Redis), keyed by the client's IP, the signed-in
user, or an object (an invoice, an attachment). Each rate is a fixed window counted with
`cache.add` + `cache.incr`, which Redis does atomically, so every host and worker counts together.
The rates are `settings.RATE_LIMITS`, written as allauth writes them: "10/m/user,30/m/ip".

Views use `@rate_limit("action")`; code that is not a view (the inbound-mail endpoint) calls
`consume("action", ip=..., key=...)` and answers `too_many_requests(...)` when it returns a wait.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from allauth.account.adapter import get_adapter
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.template.loader import render_to_string

log = logging.getLogger(__name__)

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
RATE = re.compile(r"(?P<amount>\d+)/(?P<count>\d*)(?P<unit>[smhd])/(?P<per>ip|user|key)")


@dataclass(frozen=True)
class Rate:
    amount: int  # uses allowed per window
    seconds: int  # the window
    per: str  # "ip", "user" or "key": what is counted


def parse_rates(text: str) -> list[Rate]:
    """ "10/m/user,30/5m/ip" → two Rates. A malformed rate is a configuration error, raised at once."""
    rates = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        match = RATE.fullmatch(part)
        if not match:
            raise ValueError(f"rate {part!r} is not like 10/m/ip or 30/5m/user")
        seconds = int(match["count"] or 1) * PERIODS[match["unit"]]
        rates.append(Rate(int(match["amount"]), seconds, match["per"]))
    return rates


def consume(
    action: str, *, ip: str | None = None, user: object = None, key: object = None, now: float | None = None
) -> int | None:
    """Count one use of `action` by this IP, user and object (each rate of the action counts the one
    it names; a rate whose subject is not given is skipped). Returns the seconds to wait when a rate
    is exceeded, else None. If the cache is down the limits are off (logged), never the site."""
    if not settings.RATE_LIMITS_ENABLED:
        return None
    now = time.time() if now is None else now
    subjects = {"ip": ip, "user": user, "key": key}
    wait: int | None = None
    for rate in parse_rates(settings.RATE_LIMITS.get(action, "")):
        subject = subjects[rate.per]
        if subject is None or subject == "":
            continue
        digest = hashlib.sha256(str(subject).encode()).hexdigest()[:32]  # no addresses or ids in the cache's keys
        window = int(now // rate.seconds)
        cache_key = f"ratelimit:{action}:{rate.per}:{rate.seconds}:{digest}:{window}"
        try:
            count = _increment(cache_key, rate.seconds)
        except Exception:
            log.warning("rate limit %s not counted: the cache is unavailable", action, exc_info=True)
            return None
        if count > rate.amount:
            left = math.ceil(rate.seconds - now % rate.seconds)
            wait = max(wait or 0, left)
    return wait


def _increment(cache_key: str, seconds: int) -> int:
    cache.add(cache_key, 0, timeout=seconds + 1)
    try:
        return cache.incr(cache_key)
    except ValueError:  # expired between add and incr: this use opens the next window
        cache.set(cache_key, 1, timeout=seconds + 1)
        return 1


def client_ip(request: HttpRequest) -> str:
    """The client's address as allauth sees it (its trusted-proxy settings apply), an IPv6 one cut
    to its /64: one host there has a whole network to rotate through."""
    ip = get_adapter(request).get_client_ip(request)
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False).network_address)
    return ip


def too_many_requests(request: HttpRequest, wait: int) -> HttpResponse:
    """The 429 page, with Retry-After."""
    minutes = max(1, math.ceil(wait / 60))
    html = render_to_string("429.html", {"minutes": minutes}, request=None)  # stands alone, like 404.html
    response = HttpResponse(html, status=429)
    response["Retry-After"] = str(wait)
    return response


def check(request: HttpRequest, action: str, *, key: object = None) -> HttpResponse | None:
    """Count this request against `action`: the 429 page when it is over a limit, else None."""
    user = request.user.pk if getattr(request, "user", None) and request.user.is_authenticated else None
    wait = consume(action, ip=client_ip(request), user=user, key=key)
    return None if wait is None else too_many_requests(request, wait)


def rate_limit(
    action: str, *, key: Callable[..., object] | None = None, methods: tuple[str, ...] | None = None
) -> Callable[[Callable[..., HttpResponseBase]], Callable[..., HttpResponseBase]]:
    """A view decorator: `key(request, **url_kwargs)` names the object counted per key; `methods`
    limits the counting to those (e.g. only the POSTs of a page that also shows a form). Put it
    outermost, so that requests any later check refuses are counted too."""

    def decorator(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if methods is None or request.method in methods:
                limited = check(request, action, key=key(request, **kwargs) if key else None)
                if limited is not None:
                    return limited
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
