"""Development emails (`EMAIL_URL=console://`) print as a short block: who, subject, text, attachment names."""

from __future__ import annotations

import io
import re
from email.message import MIMEPart

import pytest
from django.core.mail import EmailMultiAlternatives

from clients.services import add_contact
from retainers.console_email import RULE, EmailBackend
from retainers.models import Email
from retainers.settings import mailer_from_url
from tests import factories

CODE = re.compile(r"^\s*([A-Z0-9]{4}-[A-Z0-9]{4})\s*$", re.MULTILINE)  # allauth's login code


def test_console_email_url_selects_the_short_backend():
    assert mailer_from_url("console://") == {"BACKEND": "retainers.console_email.EmailBackend"}


def test_an_email_prints_its_people_subject_text_and_attachments_by_name_and_size():
    message = EmailMultiAlternatives(
        subject="Invoice 2026-0001 from Northwind Advisory",
        body="Hello Carol,\n\nYour invoice is attached.\n",
        from_email="Northwind Advisory <noreply@retainers.localhost>",
        to=["carol@acme.example"],
        cc=["billing@acme.example"],
        reply_to=["reply+abc123@in.retainers.localhost"],
    )
    message.attach_alternative("<p>Hello Carol,</p><p>Your invoice is attached.</p>", "text/html")
    message.attach("invoice-2026-0001.pdf", b"%PDF-1.7" + bytes(3000), "application/pdf")
    message.attach("notes.txt", "é" * 10, "text/plain")  # 20 bytes in UTF-8
    logo = MIMEPart()
    logo.set_content(bytes(100), maintype="image", subtype="png", filename="logo.png")
    message.attach(logo)
    stream = io.StringIO()

    assert EmailBackend(stream=stream).send_messages([message]) == 1

    assert stream.getvalue() == "\n".join(
        [
            RULE,
            "To:       carol@acme.example",
            "Cc:       billing@acme.example",
            "From:     Northwind Advisory <noreply@retainers.localhost>",
            "Reply-To: reply+abc123@in.retainers.localhost",
            "Subject:  Invoice 2026-0001 from Northwind Advisory",
            "",
            "Hello Carol,",
            "",
            "Your invoice is attached.",
            "",
            "Attachments:",
            "  invoice-2026-0001.pdf (application/pdf, 2.9 KB)",
            "  notes.txt (text/plain, 20 bytes)",
            "  logo.png (image/png, 100 bytes)",
            RULE,
            "",
        ]
    )


def test_several_emails_print_one_block_each():
    messages = [EmailMultiAlternatives(subject=f"Number {n}", body="Hi", to=[f"{n}@example.com"]) for n in (1, 2)]
    stream = io.StringIO()
    assert EmailBackend(stream=stream).send_messages(messages) == 2
    out = stream.getvalue()
    assert out.count(RULE) == 4
    assert out.index("Subject:  Number 1") < out.index("Subject:  Number 2")
    assert "Reply-To" not in out and "Attachments" not in out  # empty fields are left out


@pytest.mark.django_db
def test_the_portal_sign_in_code_is_easy_to_find_in_the_development_output(
    workspace, client, settings, capsys, django_capture_on_commit_callbacks
):
    settings.MAILERS = {"default": mailer_from_url("console://")}
    acme = factories.ClientFactory(workspace=workspace, name="Acme Corp")
    with django_capture_on_commit_callbacks(execute=True):
        add_contact(client=acme, name="Carol Chen", email="carol@acme.example", portal_access=True)
    capsys.readouterr()  # the invitation

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/portal/login/", {"email": "carol@acme.example"})

    assert response.status_code == 302
    assert Email.objects.filter(to="carol@acme.example").latest("created_at").secret  # redacted once sent
    out = capsys.readouterr().out
    code = CODE.search(out)
    assert code
    lines = out.splitlines()
    assert (lines[0], lines[-1]) == (RULE, RULE)
    assert lines[1] == "To:       carol@acme.example"
    assert any(line.startswith("Subject:  ") for line in lines)
    assert code.group(1) in lines[lines.index("") :]  # in the text body, on a line of its own
    assert len(lines) < 30
    for mime in ("Content-Type", "Content-Transfer-Encoding", "MIME-Version", "base64", "<html", "<p>"):
        assert mime not in out
