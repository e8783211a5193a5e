"""Hole 11: every renewal email to a client (proposal, answers, reminders) and the portal invitation
carry the client's thread address as Reply-To and the workspace's name as sender."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest
import time_machine

from communication.inbound import reply_address
from renewals import services
from renewals.models import Renewal
from retainers.models import AuditEvent, Email
from tests.renewals.conftest import run

pytestmark = pytest.mark.django_db


def client_emails(to: str, key_part: str) -> list[Email]:
    return list(Email.objects.filter(to=to, key__contains=key_part).order_by("pk"))


@pytest.fixture
def proposed(workspace, six_month_retainer, alice) -> Renewal:
    with time_machine.travel("2026-06-02T09:00:00+00:00", tick=True):
        run(workspace, date(2026, 6, 1))
        renewal = Renewal.objects.get(retainer=six_month_retainer)
        services.save_proposal(
            renewal=renewal, terms={"price_minor": 240000, "units_per_period": D("12")}, proposal_text="", actor=alice
        )
        return services.send_proposal(renewal=renewal, actor=alice)


def test_the_portal_invitation_can_be_answered(acme, carol):
    [invitation] = Email.objects.filter(to="carol@acme.example")
    assert (invitation.reply_to, invitation.from_name) == (reply_address(acme), "Northwind Advisory")


def test_the_proposal_reminders_and_acceptance_can_be_answered(proposed, acme, carol, workspace):
    with time_machine.travel("2026-06-25T09:00:00+00:00", tick=True):
        assert services.send_due_reminders(workspace=workspace, today=date(2026, 6, 25)) >= 1
        services.accept_renewal(renewal=proposed, contact=carol)
    proposal = client_emails("carol@acme.example", "-proposal-")
    reminders = [e for e in client_emails("carol@acme.example", "-client-") if "-accepted-" not in (e.key or "")]
    accepted = client_emails("carol@acme.example", "-accepted-client-")
    assert proposal and reminders and accepted
    emails = [*proposal, *reminders, *accepted]
    for email in emails:
        assert (email.reply_to, email.from_name) == (reply_address(acme), "Northwind Advisory"), email.subject


def test_the_declined_confirmation_can_be_answered(proposed, acme, carol):
    with time_machine.travel("2026-06-03T09:00:00+00:00", tick=True):
        services.decline_renewal(renewal=proposed, contact=carol, reason="Budget")
    [email] = client_emails("carol@acme.example", "-declined-client-")
    # The answer is a change of terms: audited, naming the contact who gave it.
    [answer] = AuditEvent.objects.filter(action="renewal.declined")
    assert answer.actor is None and "Carol Chen <carol@acme.example>" in answer.summary
    assert answer.changes == {"renewal": proposed.pk, "reason": "Budget"}
    assert email.reply_to == reply_address(acme)
    # The consultants' copies are not client email: no thread address, the workspace as sender.
    for consultant in Email.objects.filter(key__contains="-declined-").exclude(to="carol@acme.example"):
        assert (consultant.reply_to, consultant.from_name) == ("", "Northwind Advisory")
