"""Replies by email: real reply emails piped into `manage.py receive_email` (and posted to the webhook)
land in the client's thread, or are dropped or quarantined with a logged reason.

The emails under emails/ are written as the named mail clients send them, addressed to Acme's reply
address with the token below; the others are built here with the `email` package.
"""

from __future__ import annotations

import base64
import io
import os
import re
import subprocess
import sys
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

import pytest
from django.core import mail
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection

from clients.services import add_contact
from communication import inbound
from communication.models import Attachment, InboundEmail, Message, ReplyAddress
from communication.services import MAX_MESSAGE_LENGTH
from retainers.settings import inbound_domain
from tests import factories
from tests.communication.conftest import HTMX, assert_neutralised, portal_url, team_url

pytestmark = pytest.mark.django_db

EMAILS = Path(__file__).parent / "emails"
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "6zcds5xfjp3nqwgwsywxyrdl6zi7vmfj"  # the token the files under emails/ are addressed to
DOMAIN = "reply.northwind.example"
ADDRESS = f"reply+{TOKEN}@{DOMAIN}"
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)
SECRET = "s3cret-inbound-token-for-tests"


@pytest.fixture(autouse=True)
def inbound_settings(settings):
    settings.INBOUND_EMAIL_DOMAIN = DOMAIN
    settings.INBOUND_EMAIL_SECRET = SECRET


@pytest.fixture
def address(acme, carol) -> ReplyAddress:
    """Acme's reply address, with the token of the files under emails/; Carol is Acme's contact.
    (Her portal invitation, the first email to Acme, made the address: its token is replaced.)"""
    made = inbound.current_reply_address(acme)
    made.token = TOKEN
    made.save(update_fields=["token"])
    return made


def eml(name: str) -> bytes:
    return (EMAILS / name).read_bytes()


def reply(
    *,
    text: str | None = "Thanks, that works.",
    html: str | None = None,
    sender: str = "Carol Chen <carol@acme.example>",
    to: str = ADDRESS,
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
    files: tuple[tuple[str, bytes, str], ...] = (),
) -> bytes:
    """A reply as a mail client sends it: text, HTML or both (multipart/alternative), files attached."""
    email = EmailMessage()
    email["From"] = sender
    email["To"] = to
    email["Subject"] = "Re: New message from Northwind Advisory"
    email["Date"] = formatdate()
    email["Message-ID"] = message_id or make_msgid(domain="acme.example")
    for name, value in (headers or {}).items():
        email[name] = value
    if text is not None:
        email.set_content(text)
        if html is not None:
            email.add_alternative(html, subtype="html")
    elif html is not None:
        email.set_content(html, subtype="html")
    for filename, content, content_type in files:
        maintype, subtype = content_type.split("/")
        email.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    return email.as_bytes()


def pipe(raw: bytes, *args: str) -> str:
    """`manage.py receive_email [args]` with `raw` on standard input; what it prints."""
    out = io.StringIO()
    call_command("receive_email", *args, stdin=io.BytesIO(raw), stdout=out)
    return out.getvalue().strip()


def thread(client) -> list[Message]:
    return list(Message.objects.filter(client=client).order_by("pk"))


def logged(**filters) -> InboundEmail:
    return InboundEmail.objects.get(**filters)


# --- Reply addresses ------------------------------------------------------------------------------


def test_each_client_gets_one_unguessable_lower_case_reply_address(acme, globex):
    first = inbound.reply_address(acme)
    assert re.fullmatch(rf"reply\+[a-z2-7]{{32}}@{re.escape(DOMAIN)}", first)  # 32 base32 characters: 160 bits
    assert inbound.reply_address(acme) == first  # made once, then reused
    assert inbound.reply_address(globex) != first
    assert ReplyAddress.objects.filter(client=acme).count() == 1


def test_reply_address_domain_defaults_to_the_site_host_or_localhost():
    assert inbound_domain("retainers.example.com") == "retainers.example.com"
    assert inbound_domain("Retainers.Example.com") == "retainers.example.com"
    assert inbound_domain("127.0.0.1") == "localhost"
    assert inbound_domain("::1") == "localhost"
    assert inbound_domain("localhost") == "localhost"
    assert inbound_domain(None) == "localhost"


def test_the_client_page_shows_the_reply_address_and_makes_a_new_one(workspace, acme, owner_client):
    page = team_url(workspace, "dashboard:client_communication", client_id=acme.pk)
    assert "an address is made with the first email" in owner_client.get(page).content.decode()
    old = inbound.reply_address(acme)
    assert old in owner_client.get(page).content.decode()

    url = team_url(workspace, "reply_address_regenerate", client_id=acme.pk)
    response = owner_client.post(url, {"origin": "client"}, **HTMX)
    assert response.status_code == 200
    new = inbound.reply_address(acme)
    html = response.content.decode()
    assert new != old and new in html and old not in html
    assert "replies to the old one are no longer accepted" in html
    assert ReplyAddress.objects.get(token=inbound.token_of(old)).revoked_at is not None

    response = owner_client.post(url, {"next": page})  # without JavaScript: back to the client page
    assert response.status_code == 302 and response.url == page


def test_another_workspace_cannot_regenerate_the_address(workspace, acme, outsider_client, other_workspace):
    old = inbound.reply_address(acme)
    for slug in (workspace.slug, other_workspace.slug):
        response = outsider_client.post(f"/w/{slug}/clients/{acme.pk}/reply-address/")
        assert response.status_code == 404
    assert inbound.reply_address(acme) == old


# --- Replies that land in the thread -------------------------------------------------------------


def test_a_plain_reply_lands_in_the_thread_and_the_team_is_told(
    workspace, acme, carol, address, django_capture_on_commit_callbacks
):
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        out = pipe(reply(text="Tuesday works for us.\n\nCarol"))
    assert out == "posted"
    [message] = thread(acme)
    assert message.body == "Tuesday works for us.\n\nCarol"
    assert message.sent_by_contact == carol and message.sent_by_user is None
    assert message.read_by_team_at is None  # new for the team, like a portal message
    entry = logged(posted_message=message)
    assert (entry.outcome, entry.sender, entry.recipient) == ("posted", "carol@acme.example", ADDRESS)
    assert entry.body == ""  # a posted email's text lives in the thread only
    [notice] = mail.outbox  # Alice owns the workspace; Bob is a member who has not written
    assert notice.to == ["alice@example.com"]
    assert "Carol Chen of Acme Corp replied by email:" in notice.body
    assert "Tuesday works for us." in notice.body


def test_gmail_reply_keeps_only_the_new_text(acme, address):
    assert pipe(eml("gmail_reply.eml")) == "posted"
    [message] = thread(acme)
    assert message.body == (
        "Thanks Alice — Tuesday works for us. I'll bring the Q1 figures so we can go through them together.\n\nCarol"
    )


def test_outlook_reply_drops_the_from_sent_block_and_the_signature_logo(acme, carol, address):
    assert pipe(eml("outlook_reply.eml")) == "posted"  # From: Carol@ACME.example: addresses match in any case
    [message] = thread(acme)
    assert message.sent_by_contact == carol
    assert message.body == (
        "Hi Alice,\n\nOur finance team has approved it; payment goes out on Friday.\n\n"
        "Kind regards,\nCarol Chen\nHead of Operations, Acme Corp"
    )
    assert not message.attachments.exists()  # the 48-byte logo the HTML draws is not a file she sent


def test_apple_mail_reply_drops_the_quote_and_sent_from_my_iphone(acme, address):
    assert pipe(eml("apple_mail_reply.eml")) == "posted"
    [message] = thread(acme)
    assert (
        message.body == "Perfect, see you then. Could we make it 30 minutes longer this time? There is a lot to cover."
    )


def test_html_only_reply_is_stored_as_text_without_markup_or_quote(workspace, acme, address, owner_client):
    assert pipe(eml("html_only_reply.eml")) == "posted"
    [message] = thread(acme)
    assert message.body == (
        "Hello Alice,\n\nWe would like the larger plan from April & a call about it. "
        "Details are on our plan page <https://acme.example/plan>.\n\nBest,\nCarol"
    )
    assert "<" not in message.body.replace("<https://acme.example/plan>", "")
    assert "alert" not in message.body and "Arial" not in message.body


def test_multipart_alternative_reply_uses_the_plain_part(acme, address):
    pipe(reply(text="The plain words.", html="<p>The <b>HTML</b> words.</p>"))
    assert [m.body for m in thread(acme)] == ["The plain words."]


def test_markup_in_a_plain_reply_is_shown_as_text_on_both_sides(
    workspace, acme, carol, address, owner_client, carol_browser
):
    payload = '<script>alert("x")</script><img src=x onerror="alert(1)"> [link](javascript:alert(1))'
    pipe(reply(text=payload))
    assert thread(acme)[0].body == payload  # kept as the client wrote it, and escaped wherever it is shown
    for html in (
        owner_client.get(team_url(workspace, "message_thread", client_id=acme.pk)).content.decode(),
        carol_browser.get(portal_url(workspace, "message_list")).content.decode(),
        owner_client.get(team_url(workspace, "dashboard:client_communication", client_id=acme.pk)).content.decode(),
    ):
        assert "&lt;script&gt;" in html
        assert_neutralised(html)


def test_reply_with_an_attachment_keeps_the_file(workspace, acme, address, owner_client):
    assert pipe(eml("with_attachment.eml")) == "posted"
    [message] = thread(acme)
    assert message.body == "Here are the signed minutes."
    [attachment] = message.attachments.all()
    assert (attachment.filename, attachment.content_type) == ("Board minutes March.pdf", "application/pdf")
    with default_storage.open(attachment.file.name, "rb") as handle:
        assert handle.read().startswith(b"%PDF-1.4")
    download = owner_client.get(team_url(workspace, "attachment_download", attachment_id=attachment.pk))
    assert download.status_code == 200


def test_files_the_thread_refuses_are_left_out_with_a_note(acme, address):
    big = b"%PDF-" + b"0" * (5 * 1024 * 1024)
    out = pipe(
        reply(
            text="Three files.",
            files=(
                ("setup.exe", b"MZ\x90\x00", "application/octet-stream"),
                ("huge.pdf", big, "application/pdf"),
                ("chart.png", PNG, "image/png"),
                ("fake.pdf", b"MZ\x90\x00", "application/pdf"),
            ),
        )
    )
    assert out == "posted"
    [message] = thread(acme)
    assert [a.filename for a in message.attachments.all()] == ["chart.png"]
    assert message.body.startswith("Three files.\n\nNot kept from the email:\n")
    assert "“setup.exe” is not a file type we accept" in message.body
    assert "“huge.pdf” is larger than 5 MB" in message.body
    assert "“fake.pdf” does not look like a PDF file" in message.body


def test_files_beyond_the_total_limit_are_left_out_with_a_note(acme, address):
    part = b"%PDF-" + b"0" * (4 * 1024 * 1024)
    pipe(reply(text="Reports.", files=tuple((f"r{n}.pdf", part, "application/pdf") for n in range(3))))
    [message] = thread(acme)
    assert [a.filename for a in message.attachments.order_by("pk")] == ["r0.pdf", "r1.pdf"]
    assert "“r2.pdf”: a message keeps at most 10 MB of files in all." in message.body


def test_an_email_with_only_files_is_posted(acme, address):
    pipe(reply(text=None, html=None, files=(("scan.pdf", PDF, "application/pdf"),)))
    [message] = thread(acme)
    assert message.body == "" and message.attachments.count() == 1


def test_a_text_too_long_for_one_message_is_cut_and_attached_whole(acme, address):
    text = "\n\n".join([" ".join(["A long paragraph of thoughts."] * 20)] * 30)
    assert len(text) > MAX_MESSAGE_LENGTH
    pipe(reply(text=text))
    [message] = thread(acme)
    assert len(message.body) <= MAX_MESSAGE_LENGTH
    assert message.body.endswith("The email goes on: its whole text is attached as message.txt.")
    [attachment] = message.attachments.all()
    with default_storage.open(attachment.file.name, "rb") as handle:
        assert handle.read().decode() == text


def test_the_envelope_recipient_routes_an_email_its_headers_do_not(acme, address):
    # Sent Bcc, or through a list: only the MTA's envelope names the reply address.
    raw = reply(text="Bcc'd you.", to="Board <board@acme.example>")
    assert pipe(raw, "--sender=carol@acme.example", "--", ADDRESS) == "posted"
    assert [m.body for m in thread(acme)] == ["Bcc'd you."]


def test_an_mta_that_upper_cases_the_address_still_reaches_the_thread(acme, address):
    assert pipe(reply(text="Shouting.", to=f"REPLY+{TOKEN.upper()}@{DOMAIN.upper()}")) == "posted"


def test_an_archived_clients_contact_still_reaches_the_team(acme, address):
    acme.status = acme.Status.ARCHIVED
    acme.save()
    assert pipe(reply(text="Are you still there?")) == "posted"


# --- What is never posted --------------------------------------------------------------------------


def test_an_email_from_a_stranger_is_quarantined(acme, address):
    out = pipe(reply(text="Please wire the money to my new account.", sender="Mallory <mallory@evil.example>"))
    assert out == "quarantined: the sender is not a contact of Acme Corp"
    assert thread(acme) == []
    entry = logged(client=acme)
    assert (entry.outcome, entry.sender) == ("quarantined", "mallory@evil.example")
    assert entry.body == "Please wire the money to my new account."  # the start of it, for the operator to judge


def test_a_contact_of_another_client_is_a_stranger_to_this_one(acme, globex, gil, address):
    out = pipe(reply(text="Wrong thread.", sender="Gil Green <gil@globex.example>"))
    assert out.startswith("quarantined: the sender is not a contact of Acme Corp")
    assert thread(acme) == [] and thread(globex) == []


def test_a_long_quarantined_email_keeps_only_its_start(acme, address):
    pipe(reply(text="x" * 50_000, sender="someone@elsewhere.example"))
    assert len(logged(client=acme).body) == 2_000


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto-Submitted": "auto-generated"},
        {"X-Autoreply": "yes"},
        {"X-Autorespond": "Out of office"},
        {"Precedence": "bulk"},
        {"Precedence": "junk"},
        {"Precedence": "list"},
    ],
)
def test_automatic_replies_are_dropped(acme, address, headers):
    out = pipe(reply(text="I am away.", headers=headers))
    assert out.startswith("dropped: an automatic reply")
    assert thread(acme) == []
    assert logged(client=acme).outcome == "dropped"


def test_an_out_of_office_from_a_contact_is_dropped(acme, address):
    assert pipe(eml("out_of_office.eml")) == "dropped: an automatic reply (Auto-Submitted: auto-replied)"
    entry = logged(client=acme)
    assert entry.sender == "carol@acme.example" and entry.body == ""  # no body kept for a drop
    assert thread(acme) == []


def test_auto_submitted_no_is_a_person_writing(acme, address):
    assert pipe(reply(text="Typed by hand.", headers={"Auto-Submitted": "no"})) == "posted"


def test_a_bounce_is_dropped(acme, address):
    assert pipe(eml("bounce.eml")) == "dropped: a bounce: the Return-Path is empty"
    assert thread(acme) == []


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--sender="], "a bounce: the envelope sender is empty"),
        (["--sender=MAILER-DAEMON"], "a bounce: the envelope sender is empty"),  # Postfix's ${sender} for <>
        ([], "a bounce: sent by MAILER-DAEMON"),
    ],
)
def test_bounces_are_known_by_their_envelope_or_sender(acme, address, args, reason):
    sender = "MAILER-DAEMON@mx.acme.example" if not args else "Carol Chen <carol@acme.example>"
    assert pipe(reply(text="Undeliverable.", sender=sender), *args) == f"dropped: {reason}"
    assert thread(acme) == []


def test_a_delivery_report_is_dropped_whoever_sends_it(acme, address):
    email = EmailMessage()
    email["From"] = "carol@acme.example"
    email["To"] = ADDRESS
    email["Message-ID"] = make_msgid()
    email.set_content("Your message was delivered.")
    email.make_mixed()
    email.set_type("multipart/report")
    assert pipe(email.as_bytes()) == "dropped: a bounce: a delivery report (multipart/report)"


def test_the_same_message_id_twice_is_posted_once(acme, address, django_capture_on_commit_callbacks):
    raw = eml("gmail_reply.eml")
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert pipe(raw) == "posted"
        assert pipe(raw) == "dropped: a duplicate: this Message-ID was posted already"
    assert len(thread(acme)) == 1
    assert len(mail.outbox) == 1  # the team is told once
    assert list(InboundEmail.objects.order_by("pk").values_list("outcome", flat=True)) == ["posted", "dropped"]


def test_an_email_without_a_message_id_is_still_posted_once(acme, address):
    email = EmailMessage()
    email["From"] = "carol@acme.example"
    email["To"] = ADDRESS
    email.set_content("No id on this one.")
    raw = email.as_bytes()
    assert pipe(raw) == "posted"
    assert pipe(raw).startswith("dropped: a duplicate")
    assert len(thread(acme)) == 1


def test_the_database_refuses_a_second_posted_row_for_one_message_id(acme, address):
    """The duplicate check is the database's: two deliveries racing past the check still post once."""
    pipe(reply(text="First.", message_id="<race@acme.example>"))
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        InboundEmail.objects.create(
            workspace=acme.workspace, client=acme, message_id="<race@acme.example>", recipient=ADDRESS, outcome="posted"
        )


def test_an_unknown_token_is_dropped_and_reaches_no_workspace(acme, address):
    other = inbound.new_token()
    assert pipe(reply(text="Hello?", to=f"reply+{other}@{DOMAIN}")) == "dropped: an unknown reply address"
    assert pipe(reply(text="Hello?", to=f"sales@{DOMAIN}")) == "dropped: not sent to a reply address"
    assert thread(acme) == [] and not InboundEmail.objects.exists()


def test_a_revoked_token_is_dropped_and_the_new_one_works(acme, address, alice):
    new = inbound.regenerate_reply_address(client=acme, actor=alice)
    assert pipe(reply(text="To the old address.")) == "dropped: the reply address was revoked"
    assert logged(client=acme).recipient == ADDRESS
    assert pipe(reply(text="To the new address.", to=new)) == "posted"
    assert [m.body for m in thread(acme)] == ["To the new address."]


def test_an_email_with_nothing_new_is_quarantined(acme, address):
    out = pipe(reply(text="On Tue, 3 Mar 2026 at 10:00, Alice <alice@example.com> wrote:\n> Hello\n> Carol"))
    assert out == "quarantined: nothing new in it: no text above the quoted email, and no files"
    assert thread(acme) == []
    assert "> Hello" in logged(client=acme).body  # kept, in case the quote-cutting was wrong


def test_a_broken_email_is_handled_not_crashed_on(acme, address):
    raw = (
        b"From: =?utf-8?q?Carol?= <carol@acme.example>\r\nTo: " + ADDRESS.encode() + b"\r\n"
        b"Content-Type: text/plain; charset=x-no-such-charset\r\nMessage-ID: <broken@acme.example>\r\n\r\n"
        b"Caf\xe9 \x00at nine?\r\n"
    )
    assert pipe(raw) == "posted"
    assert thread(acme)[0].body == "Caf\ufffd at nine?"  # undecodable bytes replaced, NUL removed


# --- The command's exit status (sysexits, as an MTA reads it) ------------------------------------


@pytest.mark.parametrize("raw", [b"", b"   \n", b"just some text\n", b'{"json": true}'])
def test_input_that_is_not_an_email_exits_65(raw):
    with pytest.raises(CommandError) as caught:
        pipe(raw)
    assert caught.value.returncode == 65
    assert "RFC 822" in str(caught.value)


def test_an_email_over_25_mb_exits_65(monkeypatch):
    monkeypatch.setattr(inbound, "MAX_EMAIL_BYTES", 1000)
    with pytest.raises(CommandError) as caught:
        pipe(reply(text="x" * 2000))
    assert caught.value.returncode == 65 and "larger than" in str(caught.value)


def test_an_unexpected_failure_exits_75_so_the_mta_keeps_the_email(acme, address, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("storage is misconfigured")

    monkeypatch.setattr(inbound.services, "send_contact_message", broken)
    with pytest.raises(CommandError) as caught:
        pipe(reply(text="Hello"))
    assert caught.value.returncode == 75
    assert "deliver it again later" in str(caught.value)
    assert thread(acme) == [] and not InboundEmail.objects.exists()  # the log row went with the transaction


def _manage(*args: str, stdin: bytes, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        timeout=120,
        env={**os.environ, **env},
    )


@pytest.mark.slow
def test_database_down_exits_75_in_one_line():
    result = _manage(
        "receive_email", stdin=eml("gmail_reply.eml"), DATABASE_URL="postgres://nobody@127.0.0.1:1/retainers"
    )
    assert result.returncode == 75, result.stderr
    assert result.stderr.decode().strip().splitlines() == [
        "CommandError: The database cannot be reached; deliver the email again later."
    ]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_email_piped_into_the_command_lands_in_the_thread(tmp_path):
    """The real pipe: a separate process reads the email on stdin and writes to the database."""
    workspace = factories.WorkspaceFactory(name="Northwind Advisory")
    acme = factories.ClientFactory(workspace=workspace, name="Acme Corp")
    add_contact(client=acme, name="Carol Chen", email="carol@acme.example")
    ReplyAddress.objects.create(workspace=workspace, client=acme, token=TOKEN)
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"

    result = _manage(
        "receive_email",
        "--sender=carol@acme.example",
        "--",
        ADDRESS,
        stdin=eml("with_attachment.eml"),
        DATABASE_URL=url,
        MEDIA_ROOT=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().strip() == "posted"
    [message] = thread(acme)
    assert message.body == "Here are the signed minutes."
    assert Attachment.objects.get(message=message).filename == "Board minutes March.pdf"


# --- The webhook -----------------------------------------------------------------------------------


WEBHOOK = "/inbound/email/"


def post(client, raw: bytes, *, content_type: str = "message/rfc822", **headers: str):
    return client.post(WEBHOOK, raw, content_type=content_type, headers=headers)


def test_webhook_with_the_secret_posts_the_email(client, acme, address):
    response = post(client, eml("gmail_reply.eml"), Authorization=f"Bearer {SECRET}")
    assert response.status_code == 202
    assert response.content.decode().strip() == "posted"
    assert len(thread(acme)) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Inbound-Secret": SECRET},
        {"Authorization": "Basic " + base64.b64encode(f"inbound:{SECRET}".encode()).decode()},
    ],
)
def test_webhook_takes_the_secret_in_a_header_or_basic_auth(client, acme, address, headers):
    assert post(client, reply(text="Hi"), **headers).status_code == 202
    assert len(thread(acme)) == 1


def test_webhook_answers_202_for_what_it_drops_so_the_provider_does_not_retry(client, acme, address):
    response = post(client, eml("out_of_office.eml"), Authorization=f"Bearer {SECRET}")
    assert response.status_code == 202
    assert response.content.decode().strip() == "dropped: an automatic reply (Auto-Submitted: auto-replied)"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"X-Inbound-Secret": SECRET[:-1]}, {"Authorization": "Basic !!!"}],
)
def test_webhook_with_a_wrong_or_missing_secret_is_refused(client, acme, address, headers):
    response = post(client, reply(text="Hi"), **headers)
    assert response.status_code == 401
    assert response.content.decode().strip() == "Wrong or missing secret."
    assert thread(acme) == [] and not InboundEmail.objects.exists()


def test_webhook_is_off_without_a_secret(client, acme, address, settings):
    settings.INBOUND_EMAIL_SECRET = ""
    response = post(client, reply(text="Hi"), Authorization="Bearer ")
    assert response.status_code == 404
    assert thread(acme) == []


def test_webhook_refuses_an_email_that_is_too_big(client, acme, address, monkeypatch):
    monkeypatch.setattr(inbound, "MAX_EMAIL_BYTES", 2000)
    response = post(client, reply(text="x" * 3000), Authorization=f"Bearer {SECRET}")
    assert response.status_code == 413
    assert "larger than" in response.content.decode()
    assert thread(acme) == []


def test_webhook_refuses_a_declared_size_over_the_limit_before_reading(client, acme, address):
    response = client.generic(
        "POST",
        WEBHOOK,
        b"From: carol@acme.example\r\n\r\nhi",
        content_type="message/rfc822",
        headers={"Authorization": f"Bearer {SECRET}"},
        CONTENT_LENGTH=str(26 * 1024 * 1024),
    )
    assert response.status_code == 413
    assert response.content.decode().strip() == "The email is larger than 25 MB."


def test_webhook_refuses_what_is_not_mime(client, acme, address):
    as_json = post(
        client, b'{"from": "carol@acme.example"}', content_type="application/json", Authorization=f"Bearer {SECRET}"
    )
    assert as_json.status_code == 415
    assert "message/rfc822" in as_json.content.decode()
    not_an_email = post(client, b"hello there", Authorization=f"Bearer {SECRET}")
    assert not_an_email.status_code == 400
    assert not_an_email.content.decode().strip() == "The input is not an RFC 822 email: it has no From header."
    assert thread(acme) == []


def test_webhook_accepts_only_post(client):
    assert client.get(WEBHOOK).status_code == 405


def test_webhook_is_rate_limited_per_ip_address(client, acme, address):
    statuses = [post(client, b"x", Authorization="Bearer wrong").status_code for _ in range(121)]
    assert statuses[:120] == [401] * 120
    assert statuses[120] == 429
    limited = post(client, reply(text="Hi"), Authorization=f"Bearer {SECRET}")
    assert limited.status_code == 429 and limited["Retry-After"] == "60"
    other_ip = client.post(
        WEBHOOK, reply(text="Hi"), content_type="message/rfc822", headers={"Authorization": f"Bearer {SECRET}"},
        REMOTE_ADDR="192.0.2.7",
    )  # fmt: skip
    assert other_ip.status_code == 202


def test_webhook_asks_to_retry_when_the_database_is_down(client, acme, address, monkeypatch):
    def down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(inbound, "_receive", down)
    response = post(client, reply(text="Hi"), Authorization=f"Bearer {SECRET}")
    assert response.status_code == 503 and response["Retry-After"] == "300"
