"""The message thread: emails to the other side, read state, attachments and who may download them."""

from __future__ import annotations

import pytest
from django.core import mail
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from clients.models import Client
from clients.services import add_contact
from communication import services as communication
from communication.models import Attachment, Message
from retainers.models import Email
from tests.communication.conftest import XSS, assert_neutralised, portal_url, team_url

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def upload(name: str, content: bytes, content_type: str = "application/octet-stream") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type=content_type)


def thread_url(workspace, client) -> str:
    return team_url(workspace, "message_thread", client_id=client.pk)


# --- Emails to the other side ---------------------------------------------------------------------


def test_team_message_emails_each_portal_contact_once(
    workspace, acme, alice, carol, gil, django_capture_on_commit_callbacks
):
    dave = add_contact(client=acme, name="Dave", email="dave@acme.example", portal_access=False)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        message = communication.send_team_message(client=acme, author=alice, body="Agenda attached")
    assert [m.to for m in mail.outbox] == [["carol@acme.example"]]  # not Dave (no portal), not Gil (Globex)
    sent = mail.outbox[0]
    assert "Agenda attached" in sent.body
    assert f"/portal/w/{workspace.slug}/messages/" in sent.body
    assert Email.objects.filter(key=f"message-{message.pk}-contact-{carol.pk}").count() == 1
    assert dave.pk


def test_client_message_emails_owners_admins_and_members_in_the_thread(
    workspace, acme, alice, bob, carol, django_capture_on_commit_callbacks
):
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        communication.send_contact_message(contact=carol, body="Question about the invoice")
    assert [m.to for m in mail.outbox] == [["alice@example.com"]]  # Bob is a plain member and has not written
    assert f"/w/{workspace.slug}/clients/{acme.pk}/messages/" in mail.outbox[0].body
    with django_capture_on_commit_callbacks(execute=True):
        communication.send_team_message(client=acme, author=bob, body="I'll take this one")
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        communication.send_contact_message(contact=carol, body="Thanks Bob")
    assert sorted(m.to[0] for m in mail.outbox) == ["alice@example.com", "bob@example.com"]


def test_sending_through_the_views_emails_the_other_side(
    workspace, acme, carol, member_client, carol_browser, django_capture_on_commit_callbacks
):
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = member_client.post(thread_url(workspace, acme), {"body": "Hi Carol"})
    assert response.status_code == 302 and "#message-" in response.url
    assert [m.to for m in mail.outbox] == [["carol@acme.example"]]
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = carol_browser.post(portal_url(workspace, "message_send"), {"body": "Hi back"})
    assert response.status_code == 302
    # Alice owns the workspace; Bob wrote in this thread.
    assert sorted(m.to[0] for m in mail.outbox) == ["alice@example.com", "bob@example.com"]
    assert Message.objects.get(body="Hi back").sent_by_contact == carol


def test_an_empty_message_is_refused(workspace, acme, member_client):
    response = member_client.post(thread_url(workspace, acme), {"body": "  "})
    assert response.status_code == 200
    assert "Write a message or attach a file." in response.content.decode()
    assert not Message.objects.exists()


# --- Read and unread -----------------------------------------------------------------------------


def test_opening_the_thread_marks_the_other_sides_messages_read(
    workspace, acme, alice, carol, owner_client, carol_browser
):
    from_team = communication.send_team_message(client=acme, author=alice, body="From us")
    from_client = communication.send_contact_message(contact=carol, body="From them")
    assert communication.unread_by_team(workspace).count() == 1
    assert communication.unread_by_client(workspace, acme).count() == 1

    page = owner_client.get(f"/w/{workspace.slug}/clients/{acme.pk}/communication/").content.decode()
    assert "1 unread" in page

    html = owner_client.get(thread_url(workspace, acme)).content.decode()
    assert "New" in html  # shown as new on the visit that reads it
    from_team.refresh_from_db()
    from_client.refresh_from_db()
    assert from_client.read_by_team_at is not None
    assert from_team.read_by_client_at is None  # the team reading does not read for the client
    assert communication.unread_by_team(workspace).count() == 0

    carol_browser.get(portal_url(workspace, "message_list"))
    from_team.refresh_from_db()
    assert from_team.read_by_client_at is not None
    assert "1 unread" not in owner_client.get(f"/w/{workspace.slug}/clients/{acme.pk}/communication/").content.decode()


def test_portal_contact_sees_only_their_own_clients_thread(workspace, acme, globex, alice, carol, gil, carol_browser):
    communication.send_team_message(client=acme, author=alice, body="For Acme")
    communication.send_team_message(client=globex, author=alice, body="For Globex")
    html = carol_browser.get(portal_url(workspace, "message_list")).content.decode()
    assert "For Acme" in html and "For Globex" not in html


# --- Attachments -------------------------------------------------------------------------------------


def test_attachment_is_stored_under_a_random_name_and_served_as_a_download(
    workspace, acme, carol, member_client, carol_browser
):
    response = member_client.post(
        thread_url(workspace, acme),
        {"body": "The report", "attachments": [upload("Q1 report.pdf", PDF), upload("chart.png", PNG)]},
    )
    assert response.status_code == 302
    pdf, png = Attachment.objects.order_by("pk")
    assert (pdf.filename, pdf.content_type, pdf.size) == ("Q1 report.pdf", "application/pdf", len(PDF))
    assert png.content_type == "image/png"
    assert "report" not in pdf.file.name and pdf.file.name.startswith(f"attachments/{workspace.pk}/")
    assert default_storage.exists(pdf.file.name)

    for browser, url in [
        (member_client, team_url(workspace, "attachment_download", attachment_id=pdf.pk)),
        (carol_browser, portal_url(workspace, "message_attachment", attachment_id=pdf.pk)),
    ]:
        download = browser.get(url)
        assert download.status_code == 200
        assert download["Content-Type"] == "application/pdf"
        assert download["Content-Disposition"].startswith("attachment;")
        assert "Q1 report.pdf" in download["Content-Disposition"]
        assert b"".join(download.streaming_content) == PDF


def test_attachments_are_404_to_everyone_else(
    workspace, other_workspace, acme, alice, carol, gil, login, outsider_client, carol_browser
):
    message = communication.send_team_message(client=acme, author=alice, body="x", files=[upload("a.pdf", PDF)])
    attachment = message.attachments.get()
    gil_browser = login(gil.user)
    assert (
        outsider_client.get(team_url(other_workspace, "attachment_download", attachment_id=attachment.pk)).status_code
        == 404
    )
    assert (
        outsider_client.get(team_url(workspace, "attachment_download", attachment_id=attachment.pk)).status_code == 404
    )
    assert gil_browser.get(portal_url(workspace, "message_attachment", attachment_id=attachment.pk)).status_code == 404
    # A contact is not a member: the team's download URL is not theirs.
    assert carol_browser.get(team_url(workspace, "attachment_download", attachment_id=attachment.pk)).status_code == 404


@pytest.mark.parametrize(
    ("files", "error"),
    [
        ([upload("big.pdf", b"%PDF-" + b"0" * (5 * 1024 * 1024))], "larger than 5 MB"),
        ([upload(f"part{n}.pdf", b"%PDF-" + b"0" * (4 * 1024 * 1024)) for n in range(3)], "more than 10 MB"),
        ([upload("setup.exe", b"MZ\x90\x00")], "not a file type we accept"),
        ([upload("notes.html", b"<html><script>alert(1)</script>")], "not a file type we accept"),
        ([upload("invoice.pdf", b"MZ\x90\x00\x03\x00")], "does not look like a PDF"),
        ([upload("photo.png", b"\xff\xd8\xff\xe0JFIF")], "does not look like a PNG"),
        ([upload("data.csv", b"a,b\x00\x01\x02")], "does not look like a CSV"),
        ([upload("sheet.xlsx", b"%PDF-1.4")], "does not look like a XLSX"),
    ],
)
def test_bad_attachments_are_refused_with_a_message_next_to_the_field(workspace, acme, member_client, files, error):
    response = member_client.post(thread_url(workspace, acme), {"body": "see attached", "attachments": files})
    assert response.status_code == 200
    html = response.content.decode()
    assert error in html
    assert 'class="field has-error"' in html
    assert not Message.objects.exists() and not Attachment.objects.exists()


def test_refused_attachments_leave_no_files_behind(acme, alice, media_root):
    with pytest.raises(communication.CommunicationError):
        communication.send_team_message(
            client=acme, author=alice, body="x", files=[upload("ok.pdf", PDF), upload("bad.exe", b"MZ")]
        )
    assert not (media_root / "attachments").exists() or not any((media_root / "attachments").rglob("*"))


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("a.txt", "héllo\r\nwörld\t!".encode()),
        ("a.csv", b"name,amount\nAcme,10\n"),
        ("a.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF"),
        ("a.GIF", b"GIF89a\x01\x00"),
        ("a.webp", b"RIFF\x24\x00\x00\x00WEBPVP8 "),
        ("a.docx", b"PK\x03\x04\x14\x00"),
    ],
)
def test_allowed_types_are_accepted(acme, alice, name, content):
    message = communication.send_team_message(client=acme, author=alice, body="", files=[upload(name, content)])
    assert message.attachments.get().filename == name


def test_a_path_in_the_filename_is_not_kept(acme, alice):
    message = communication.send_team_message(
        client=acme, author=alice, body="", files=[upload("../../etc/passwd.txt", b"x")]
    )
    assert message.attachments.get().filename == "passwd.txt"


# --- Script in messages ----------------------------------------------------------------------------


@pytest.mark.parametrize("payload", XSS)
def test_xss_in_messages_is_neutralised_in_pages_and_emails(
    workspace, acme, alice, carol, owner_client, carol_browser, django_capture_on_commit_callbacks, payload
):
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        communication.send_team_message(client=acme, author=alice, body=f"From team {payload}")
        communication.send_contact_message(contact=carol, body=f"From client {payload}")
    pages = {
        "client page": owner_client.get(f"/w/{workspace.slug}/clients/{acme.pk}/communication/"),
        "thread": owner_client.get(thread_url(workspace, acme)),
        "timeline": owner_client.get(team_url(workspace, "dashboard:client_timeline", client_id=acme.pk)),
        "portal thread": carol_browser.get(portal_url(workspace, "message_list")),
    }
    for label, response in pages.items():
        assert response.status_code == 200, label
        assert_neutralised(response.content.decode())
    assert len(mail.outbox) == 2
    for sent in mail.outbox:
        assert payload in sent.body  # the text part is plain text: shown as typed, never HTML-escaped
        html = sent.alternatives[0][0]
        assert_neutralised(html)
        assert "From " in html


def test_an_archived_clients_contacts_are_not_emailed(acme, alice, carol, django_capture_on_commit_callbacks):
    Client.objects.filter(pk=acme.pk).update(status="archived")
    acme.refresh_from_db()
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        communication.send_team_message(client=acme, author=alice, body="Anyone there?")
    assert mail.outbox == []
