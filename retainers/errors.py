"""Our error pages where Django would give its own: the CSRF failure page, and a body for 405s.

Django renders templates/400.html, 403.html, 404.html and 500.html itself. The CSRF failure view
and the empty 405 of `require_POST` & co. are Django's own otherwise: a page whose inline style
our CSP blocks and that suggests DEBUG=True, and a blank page.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.middleware.csrf import REASON_NO_CSRF_COOKIE
from django.template.loader import render_to_string
from django.utils.http import url_has_allowed_host_and_scheme


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: the form is refused with a way back to it, and nothing about settings."""
    back = request.META.get("HTTP_REFERER", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        back = "/"
    html = render_to_string("403_csrf.html", {"back_url": back, "no_cookie": reason == REASON_NO_CSRF_COOKIE})
    return HttpResponse(html, status=403)


class ErrorPagesMiddleware:
    """Gives an empty 405 (a GET on a POST-only URL) our page, keeping its Allow header."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if response.status_code == 405 and isinstance(response, HttpResponse) and not response.content:
            response.content = render_to_string("405.html", {"method": request.method})
            response["Content-Type"] = f"text/html; charset={settings.DEFAULT_CHARSET}"
        return response
