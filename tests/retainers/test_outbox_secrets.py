"""Hole 12: emails holding a working link or code (invitations, password resets, sign-in codes) are
redacted once sent, and sent rows are pruned after OUTBOX_RETENTION_DAYS, keeping the minimal
record a job's idempotency key and the renewal history need."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from retainers import outbox, services, tasks
from retainers.models import Email, Membership

pytestmark = pytest.mark.django_db


def test_an_invitation_is_sent_with_its_link_then_redacted(workspace, alice, django_capture_on_commit_callbacks):
    owner = Membership.objects.get(workspace=workspace, user=alice)
    with django_capture_on_commit_callbacks(execute=True):
        services.invite_member(actor=owner, email="dana@example.com", role="member")
    [sent] = mail.outbox
    assert re.search(r"/invite/[^/\s]+/", sent.body)  # the reader got the working link
    row = Email.objects.get(to="dana@example.com")
    assert row.status == Email.Status.SENT and row.secret
    assert "/invite/" not in row.body_text and "/invite/" not in row.body_html
    assert "Redacted" in row.body_text and "Redacted" in row.body_html
    assert row.subject == sent.subject  # what was sent to whom is still known


def test_a_secret_email_that_failed_keeps_its_body_for_the_retry(workspace, alice, settings):
    settings.MAILERS = {"default": {"BACKEND": "tests.retainers.test_outbox_secrets.FailingBackend"}}
    owner = Membership.objects.get(workspace=workspace, user=alice)
    services.invite_member(actor=owner, email="dana@example.com", role="member")
    email = Email.objects.get(to="dana@example.com")
    assert outbox.send_email(email.pk) is False
    email.refresh_from_db()
    assert email.status == Email.Status.QUEUED and "/invite/" in email.body_text


class FailingBackend:
    def __init__(self, *args, **kwargs) -> None:
        pass

    def send_messages(self, messages) -> int:
        raise OSError("connection refused")


def test_a_password_reset_email_is_redacted_once_sent(client, alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/accounts/password/reset/", {"email": alice.email})
    [sent] = [m for m in mail.outbox if m.to == [alice.email]]
    assert "/accounts/password/reset/key/" in sent.body
    row = Email.objects.get(to=alice.email)
    assert row.secret and "/reset/key/" not in row.body_text and "/reset/key/" not in row.body_html


def test_an_ordinary_email_keeps_its_body(workspace, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        row = outbox.queue_email(
            to="carol@acme.example",
            template="portal_invitation",
            context={"contact": {"name": "Carol"}, "workspace": workspace, "client_name": "Acme", "path": "/portal/"},
            workspace=workspace,
        )
    row.refresh_from_db()
    assert row.status == Email.Status.SENT and not row.secret and "Hello Carol" in row.body_text


def _sent(*, key: str | None, days_ago: int) -> Email:
    now = timezone.now()
    return Email.objects.create(
        key=key,
        to="carol@acme.example",
        from_name="Northwind",
        subject="Your invoice",
        body_text="Pay here: https://example.com/pay/secret",
        body_html="<p>Pay here</p>",
        attachments=[{"path": "invoices/1.pdf", "filename": "1.pdf", "mimetype": "application/pdf"}],
        message_id="<x@example.com>",
        status=Email.Status.SENT,
        sent_at=now - timedelta(days=days_ago),
        created_at=now - timedelta(days=days_ago),
    )


def test_pruning_forgets_old_sent_emails_and_keeps_keyed_ones_as_a_minimal_record(settings):
    settings.OUTBOX_RETENTION_DAYS = 30
    old_plain, old_keyed = _sent(key=None, days_ago=31), _sent(key="invoice-1-issued", days_ago=31)
    recent = _sent(key=None, days_ago=29)
    queued = Email.objects.create(
        to="x@example.com", from_name="N", subject="S", body_text="t", body_html="h", message_id="<y@example.com>"
    )
    Email.objects.filter(pk=queued.pk).update(created_at=timezone.now() - timedelta(days=400))
    assert outbox.prune_outbox() == (1, 1)
    assert not Email.objects.filter(pk=old_plain.pk).exists()
    kept = Email.objects.get(pk=old_keyed.pk)
    assert (kept.key, kept.to, kept.subject, kept.status) == (
        "invoice-1-issued",
        "carol@acme.example",
        "Your invoice",
        "sent",
    )
    assert kept.body_text == outbox.PRUNED_TEXT and kept.body_html == "" and kept.attachments == []
    assert Email.objects.get(pk=recent.pk).body_text.startswith("Pay here")
    assert Email.objects.get(pk=queued.pk).body_text == "t"  # never sent: never pruned
    assert outbox.prune_outbox() == (0, 0)  # idempotent
    # A job asking "was this sent?" by key still finds it, so nothing is sent twice.
    assert Email.objects.filter(key="invoice-1-issued").exists()


def test_pruning_runs_daily_from_beat(settings):
    entry = next(e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "retainers.tasks.prune_outbox")
    assert entry["schedule"].hour == {3}
    settings.OUTBOX_RETENTION_DAYS = 1
    old = _sent(key=None, days_ago=2)
    tasks.prune_outbox.delay()
    assert not Email.objects.filter(pk=old.pk).exists()


def test_retention_defaults_to_ninety_days():
    from retainers import settings as project_settings

    assert project_settings.OUTBOX_RETENTION_DAYS == 90
