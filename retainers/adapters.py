"""allauth hooks: its emails go through our outbox like every other email, in our words, with
the product's name and the site's public address (SITE_URL), never the host a request came in on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.models import EmailConfirmation
from allauth.core import context as allauth_context
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.http import HttpRequest
from django.urls import reverse

from retainers.outbox import platform_sender, queue_rendered_email


@dataclass(frozen=True)
class PublicSite:
    """What allauth's templates call `current_site`: the product and its public address, not the request's host."""

    name: str
    domain: str


def public_url(path: str) -> str:
    """An absolute link for an email: SITE_URL, whatever host the request that caused it came in on."""
    return f"{settings.SITE_URL}{path}"


def public_site() -> PublicSite:
    return PublicSite(name=platform_sender(), domain=urlsplit(settings.SITE_URL).netloc)


class AccountAdapter(DefaultAccountAdapter):
    def get_email_confirmation_url(self, request: HttpRequest, emailconfirmation: EmailConfirmation) -> str:
        return public_url(reverse("account_confirm_email", args=[emailconfirmation.key]))

    def get_reset_password_from_key_url(self, key: str) -> str:
        path = reverse("account_reset_password_from_key", kwargs={"uidb36": "UID", "key": "KEY"})
        return public_url(path.replace("UID-KEY", quote(key)))

    def email_context(self, email: str, context: dict[str, Any]) -> dict[str, Any]:
        """What every account email's template sees: ours over allauth's (its links and site are the request's host)."""
        request = allauth_context.request
        ours: dict[str, Any] = {
            "request": request,
            "email": email,
            "current_site": public_site(),
            "product_name": platform_sender(),
            "site_url": settings.SITE_URL,
            "login_url": public_url(reverse("account_login")),
            # A portal contact asked for the code on the portal's sign-in page: the email says so.
            "portal": bool(request and request.path.startswith(reverse("portal:login"))),
            "portal_url": public_url(reverse("portal:login")),
        }
        # allauth builds some links on the request's host: the same paths, on SITE_URL.
        for name in ("password_reset_url", "signup_url", "activate_url"):
            if context.get(name):
                ours[name] = public_url(urlsplit(context[name]).path)
        ours.setdefault("password_reset_url", public_url(reverse("account_reset_password")))
        return {**context, **ours}

    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        message = self.render_mail(template_prefix, email, self.email_context(email, context))
        html = None
        if isinstance(message, EmailMultiAlternatives):
            html = next(
                (
                    content
                    for content, mimetype in message.alternatives
                    if mimetype == "text/html" and isinstance(content, str)
                ),
                None,
            )
        # allauth's emails (sign-in codes, password resets, address confirmations) each carry a code or a
        # link that signs someone in: redacted once sent.
        queue_rendered_email(
            to=email,
            subject=message.subject,
            body_text=message.body,
            body_html=html,
            sender_name=platform_sender(),
            secret=True,
        )
