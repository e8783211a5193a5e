"""The inbound-mail webhook: an inbound-mail provider (or a relay of your own) posts each email it
receives for INBOUND_EMAIL_DOMAIN here as raw MIME, for deployments without an MTA that can pipe to
`manage.py receive_email`. The same processing follows (communication.inbound).

    POST /inbound/email/
    Authorization: Bearer <INBOUND_EMAIL_SECRET>     (or X-Inbound-Secret: <secret>, or Basic auth
    Content-Type: message/rfc822                      with the secret as the password)

    <the email, headers and body, as received>

202 when the email was handled (posted, dropped or quarantined: the body says which); 4xx with a
one-line reason when the request is refused, so the provider does not retry it; 503 when it should
deliver again later (the database is down).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from communication import inbound

log = logging.getLogger(__name__)

RATE_LIMIT = 120  # requests per IP address and minute; a provider posting a busy hour's mail stays well below
RATE_WINDOW_SECONDS = 60


def _answer(text: str, status: int, headers: dict[str, str] | None = None) -> HttpResponse:
    return HttpResponse(text + "\n", status=status, content_type="text/plain; charset=utf-8", headers=headers)


def _rate_limited(request: HttpRequest) -> bool:
    """One more request from this IP address in this minute: over the limit? (A Redis counter.)"""
    key = f"inbound-email-rate:{request.META.get('REMOTE_ADDR', '')}"
    try:
        cache.add(key, 0, timeout=RATE_WINDOW_SECONDS)
        return cache.incr(key) > RATE_LIMIT
    except ValueError:  # the counter expired between add and incr: this request starts a new one
        cache.set(key, 1, timeout=RATE_WINDOW_SECONDS)
        return False
    except Exception:  # Redis down: the limit is a courtesy, the secret is the lock; let the email in
        log.warning("inbound email rate limit unavailable", exc_info=True)
        return False


def _presented_secret(request: HttpRequest) -> str:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return ""
    return request.headers.get("X-Inbound-Secret", "")


@csrf_exempt  # A provider posts here, not a browser: the shared secret stands in for the CSRF token.
@require_POST
def receive_email(request: HttpRequest) -> HttpResponse:
    secret = settings.INBOUND_EMAIL_SECRET
    if not secret:
        return _answer("Inbound email is not set up here: INBOUND_EMAIL_SECRET is empty.", 404)
    if _rate_limited(request):
        return _answer("Too many requests; try again in a minute.", 429, {"Retry-After": str(RATE_WINDOW_SECONDS)})
    if not hmac.compare_digest(_presented_secret(request).encode(), secret.encode()):
        return _answer("Wrong or missing secret.", 401, {"WWW-Authenticate": 'Bearer realm="inbound-email"'})
    if request.content_type != "message/rfc822":
        return _answer("Send the raw email with Content-Type: message/rfc822.", 415)
    limit = inbound.MAX_EMAIL_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return _answer("Bad Content-Length.", 400)
    if declared > limit:
        return _answer(f"The email is larger than {limit // (1024 * 1024)} MB.", 413)
    raw = request.read(limit + 1)  # the stream, not request.body: that stops at DATA_UPLOAD_MAX_MEMORY_SIZE
    if len(raw) > limit:
        return _answer(f"The email is larger than {limit // (1024 * 1024)} MB.", 413)
    try:
        receipt = inbound.receive_email(raw)
    except inbound.NotAnEmail as exc:
        return _answer(str(exc), 400)
    except inbound.TryLater as exc:
        return _answer(str(exc), 503, {"Retry-After": "300"})
    return _answer(str(receipt), 202)
