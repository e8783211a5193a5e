"""Hole 11: booking emails to the client (confirmation, reminders, nudges) carry the client's thread
address as Reply-To; without inbound email, the host's address (the person the client meets)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from communication import reminders as reminders_job
from communication.inbound import reply_address
from delivery import booking, booking_setup
from retainers.models import Email
from tests.booking.conftest import NOW, at

pytestmark = pytest.mark.django_db


def book(session_type, retainer, carol):
    return booking.book(
        session_type=session_type, retainer=retainer, starts_at=at(12, 10), actor=carol.user, contact=carol
    )


def test_confirmation_and_reminders_to_the_client_can_be_answered(
    now, workspace, session_type, retainer, carol, bob, acme
):
    book(session_type, retainer, carol)
    reminders_job.remind_workspace(workspace=workspace, now=at(11, 10))
    to_client = list(Email.objects.filter(to=carol.email, key__startswith="booking-"))
    assert {("-remind-" in e.key) for e in to_client} == {True, False}  # the confirmation and a reminder
    for email in to_client:
        assert (email.reply_to, email.from_name) == (reply_address(acme), workspace.name), email.key
    for email in Email.objects.filter(to=bob.email, key__startswith="booking-"):
        assert email.reply_to == ""  # the host's own copy is not client email


def test_without_inbound_email_the_client_reply_reaches_the_host(settings, now, session_type, retainer, carol, bob):
    settings.INBOUND_EMAIL_DOMAIN = ""
    book(session_type, retainer, carol)
    [confirmation] = Email.objects.filter(to=carol.email, key__startswith="booking-")
    assert confirmation.reply_to == bob.email


def test_the_nudge_can_be_answered(now, workspace, session_type, retainer, carol, acme):
    booking_setup.save_policy(
        retainer=retainer, cancel_window_hours=24, late_cancel="keep", no_show="consume", nudge_after_days=14
    )
    retainer.created_at = NOW - timedelta(days=20)
    retainer.save(update_fields=["created_at"])
    assert reminders_job.remind_workspace(workspace=workspace, now=NOW).booking_nudges == 1
    [nudge] = Email.objects.filter(key__startswith="booking-nudge-")
    assert nudge.reply_to == reply_address(acme)
