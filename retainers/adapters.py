"""allauth hooks: its emails go through our outbox like every other email."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core import context as allauth_context
from django.contrib.sites.shortcuts import get_current_site
from django.core.mail import EmailMultiAlternatives

from retainers.outbox import platform_sender, queue_rendered_email


class AccountAdapter(DefaultAccountAdapter):
    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        request = allauth_context.request
        message = self.render_mail(
            template_prefix,
            email,
            {"request": request, "email": email, "current_site": get_current_site(request), **context},
        )
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
