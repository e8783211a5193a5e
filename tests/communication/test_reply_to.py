"""Hole 11: a message from the team and a low-balance alert to a client can be answered by email:
their Reply-To is the client's thread address, and the reply lands in the thread."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.core import mail

from communication import reminders
from communication import services as communication
from communication.inbound import reply_address
from delivery.services import record_delivery
from retainers.models import Email

pytestmark = pytest.mark.django_db


def test_a_message_from_the_team_can_be_answered(acme, carol, alice, django_capture_on_commit_callbacks):
    mail.outbox.clear()  # the portal invitation
    with django_capture_on_commit_callbacks(execute=True):
        communication.send_team_message(client=acme, author=alice, body="The report is ready.")
    [sent] = [m for m in mail.outbox if m.to == [carol.email]]
    assert "The report is ready." in sent.body
    assert sent.reply_to == [reply_address(acme)]
    assert sent.from_email.startswith("Northwind Advisory <")


def test_a_low_balance_alert_to_the_client_can_be_answered(acme, carol, retainer, alice):
    record_delivery(
        retainer=retainer, delivered_on=date(2026, 1, 10), quantity=Decimal("9"), description="Work", actor=alice
    )
    reminders.remind_workspace(workspace=acme.workspace, now=datetime(2026, 1, 10, 12, tzinfo=UTC))
    [to_client] = Email.objects.filter(key__startswith="lowbal-", to=carol.email)
    assert (to_client.reply_to, to_client.from_name) == (reply_address(acme), "Northwind Advisory")
    [to_owner] = Email.objects.filter(key__startswith="lowbal-", to=alice.email)
    assert (to_owner.reply_to, to_owner.from_name) == ("", "Northwind Advisory")
