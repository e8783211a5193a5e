"""The email outbox: written with the transaction, sent after commit, retried, never sent twice."""

from __future__ import annotations

import email as email_parser
import socket
from datetime import timedelta

import pytest
import time_machine
from aiosmtpd.controller import Controller
from django.core import mail
from django.db import transaction
from django.utils import timezone

from retainers import outbox, tasks
from retainers.models import Email, Workspace

pytestmark = pytest.mark.django_db


def queue(**overrides) -> Email:
    fields = {
        "to": "client@example.com",
        "template": "portal_invitation",
        "context": {
            "contact": {"name": "Carol"},
            "workspace": {"name": "Northwind"},
            "client_name": "Acme",
            "path": "/portal/",
        },
        "workspace": Workspace(name="Northwind Advisory"),
    }
    return outbox.queue_email(**{**fields, **overrides})


class Boom(Exception):
    pass


def test_rolled_back_transaction_sends_nothing(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(Boom), transaction.atomic():
            queue()
            raise Boom
    assert callbacks == []
    assert Email.objects.count() == 0
    assert mail.outbox == []


def test_committed_email_is_sent_once_with_text_and_html_parts(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        row = queue()
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.from_email.startswith("Northwind Advisory <")
    assert message.to == ["client@example.com"]
    assert "Hello Carol" in message.body
    assert [mimetype for _, mimetype in message.alternatives] == ["text/html"]
    assert "<strong>Northwind</strong>" in message.alternatives[0][0]
    row.refresh_from_db()
    assert row.status == Email.Status.SENT and row.attempts == 1 and row.sent_at is not None


def test_running_the_sender_again_sends_nothing_more(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        row = queue()
    assert outbox.send_email(row.pk) is False
    tasks.send_email.delay(row.pk)
    assert outbox.send_due_emails() == 0
    assert len(mail.outbox) == 1


def test_same_key_queues_one_email(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = queue(key="invoice-1-issued")
        second = queue(key="invoice-1-issued")
    assert first.pk == second.pk
    assert Email.objects.count() == 1
    assert len(mail.outbox) == 1


def test_email_without_html_template_gets_an_escaped_html_part(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        outbox.queue_rendered_email(
            to="a@example.com", subject="Hi", body_text="<script>x</script>\nline", body_html=None, sender_name="X"
        )
    html = mail.outbox[0].alternatives[0][0]
    assert "&lt;script&gt;" in html and "<script>" not in html


def test_sender_name_cannot_inject_headers(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        queue(workspace=Workspace(name="Evil\r\nBcc: victim@example.com"))
    message = mail.outbox[0].message()
    assert message["Bcc"] is None
    assert "Evil Bcc: victim@example.com" in str(
        email_parser.header.make_header(email_parser.header.decode_header(message["From"]))
    )


def test_worker_that_died_mid_send_is_retried_after_its_claim_expires(django_capture_on_commit_callbacks):
    row = queue()  # no commit callbacks: the enqueue was lost
    Email.objects.filter(pk=row.pk).update(
        status=Email.Status.SENDING, claimed_until=timezone.now() + outbox.CLAIM_FOR, attempts=1
    )
    assert outbox.send_due_emails() == 0  # still claimed by the (dead) worker
    with time_machine.travel(timezone.now() + outbox.CLAIM_FOR + timedelta(seconds=1)):
        assert outbox.send_due_emails() == 1
    assert len(mail.outbox) == 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Recorder:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(envelope.content)
        return "250 OK"


@pytest.fixture
def smtp_port(settings) -> int:
    port = free_port()
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": port, "timeout": 2},
        }
    }
    return port


def test_smtp_down_then_up_delivers_exactly_once(smtp_port, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        row = queue()
    row.refresh_from_db()
    assert row.status == Email.Status.QUEUED
    assert row.attempts == 1
    assert "Connection" in row.last_error or "refused" in row.last_error.lower()
    assert row.next_attempt_at > timezone.now()
    assert outbox.send_due_emails() == 0  # backing off: not due yet

    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        with time_machine.travel(row.next_attempt_at + timedelta(seconds=1)):
            assert outbox.send_due_emails() == 1
            assert outbox.send_due_emails() == 0
    finally:
        controller.stop()
    assert len(recorder.messages) == 1
    parsed = email_parser.message_from_bytes(recorder.messages[0])
    assert parsed["Subject"] == "Your client portal with Northwind"
    assert {part.get_content_type() for part in parsed.walk()} >= {"text/plain", "text/html"}
    row.refresh_from_db()
    assert row.status == Email.Status.SENT and row.attempts == 2


def test_backoff_grows_and_gives_up_after_max_attempts(smtp_port, settings):
    settings.OUTBOX_MAX_ATTEMPTS = 3
    row = queue()
    delays = []
    for _ in range(3):
        with time_machine.travel(Email.objects.get(pk=row.pk).next_attempt_at + timedelta(seconds=1)):
            before = timezone.now()
            assert outbox.send_email(row.pk) is False
            delays.append(Email.objects.get(pk=row.pk).next_attempt_at - before)
    row.refresh_from_db()
    assert row.status == Email.Status.FAILED
    assert delays[0] < delays[1] < delays[2]
    assert outbox.send_due_emails() == 0


def test_text_part_and_subject_are_not_html_escaped_but_the_html_part_is(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        queue(
            context={
                "contact": {"name": "Tom & <Jerry>"},
                "workspace": {"name": "Smith & Jones"},
                "client_name": "A&B",
                "path": "/p/",
            }
        )
    message = mail.outbox[0]
    assert message.subject == "Your client portal with Smith & Jones"
    assert "Hello Tom & <Jerry>," in message.body
    html = message.alternatives[0][0]
    assert "Tom &amp; &lt;Jerry&gt;" in html and "<Jerry>" not in html


def test_a_calendar_invitation_travels_as_an_alternative_part_and_a_file(django_capture_on_commit_callbacks):
    ics = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\nMETHOD:CANCEL\r\nEND:VCALENDAR\r\n"
    with django_capture_on_commit_callbacks(execute=True):
        row = queue(attachments=[outbox.calendar_invitation(ics, method="CANCEL")])
    assert row.attachments[0]["content"] == ics  # kept in the row: no file in storage to lose
    message = mail.outbox[0].message()
    (alternative,) = [p for p in message.walk() if p.get_content_type() == "multipart/alternative"]
    kinds = [p.get_content_type() for p in alternative.get_payload()]
    assert kinds == ["text/plain", "text/html", "text/calendar"]
    calendar = alternative.get_payload()[2]
    assert calendar.get_param("method") == "CANCEL" and calendar.get_content_charset() == "utf-8"
    assert calendar.get_content().splitlines() == ics.splitlines()  # text parts travel with the wire's line ends
    (attached,) = [p for p in message.walk() if p.get_filename() == "invite.ics"]
    assert attached.get_content_type() == "application/ics" and attached.get_content() == ics.encode()
