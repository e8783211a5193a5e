"""What the outbox actually sent for a row (tests' locmem mailbox): the row itself no longer holds
a secret email's link or code once sent (retainers.outbox redacts it)."""

from __future__ import annotations

from django.core import mail

from retainers.models import Email


def sent_message(row: Email):
    [message] = [m for m in mail.outbox if m.extra_headers.get("Message-ID") == row.message_id]
    return message


def sent_text(row: Email) -> str:
    return sent_message(row).body


def sent_html(row: Email) -> str:
    return sent_message(row).alternatives[0][0]
