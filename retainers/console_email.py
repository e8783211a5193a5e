"""The development email backend (`EMAIL_URL=console://`): each email as a short block to read.

Django's console backend prints the whole MIME message: base64 parts, boundaries and headers, a
hundred lines an email, where the portal sign-in code is hard to find. This one prints who it is
to and from, the subject, the text body, and the attachments by name and size.
"""

from __future__ import annotations

import email.message
from typing import Any

from django.core.mail import EmailMessage
from django.core.mail.backends.console import EmailBackend as DjangoConsoleBackend

RULE = "-" * 72


class EmailBackend(DjangoConsoleBackend):
    def write_message(self, message: EmailMessage) -> None:
        self.stream.write(format_email(message))


def format_email(message: EmailMessage) -> str:
    """The block printed for one email, ending with a newline."""
    headers = [
        ("To", ", ".join(message.to)),
        ("Cc", ", ".join(message.cc)),
        ("Bcc", ", ".join(message.bcc)),
        ("From", message.from_email),
        ("Reply-To", ", ".join(message.reply_to)),
        ("Subject", message.subject),
    ]
    lines = [RULE]
    lines += [f"{name + ':':<10}{value}" for name, value in headers if value]
    lines += ["", str(message.body).rstrip()]
    attachments = [describe_attachment(attachment) for attachment in message.attachments]
    if attachments:
        lines += ["", "Attachments:"] + [f"  {line}" for line in attachments]
    lines.append(RULE)
    return "\n".join(lines) + "\n"


def describe_attachment(attachment: Any) -> str:
    """`name (type, size)` of an attachment: a (filename, content, mimetype) triple or a MIME part."""
    if isinstance(attachment, email.message.Message):  # MIMEPart, or a legacy MIMEBase
        name = attachment.get_filename() or "(unnamed)"
        mimetype = attachment.get_content_type()
        payload = attachment.get_payload(decode=True)
        content: str | bytes = payload if isinstance(payload, bytes) else b""
    else:
        name, content, mimetype = attachment
    size = len(content.encode() if isinstance(content, str) else content)
    return f"{name} ({mimetype}, {format_size(size)})"


def format_size(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"
