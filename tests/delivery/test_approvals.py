"""Overage the client approves first (issue 14 part 1): asking, answering once, what an approval
allows under "refuse" and "needs approval", what it bills and what lapses at the period's close."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest
import time_machine
from django.core import signing
from django.db import IntegrityError, transaction

from billing import services as billing
from billing.models import Invoice
from delivery import approvals, services
from delivery.models import OverageApproval, Period
from retainers import outbox
from retainers.models import AuditEvent, Email
from tests import factories
from tests.sent import sent_html, sent_message, sent_text

pytestmark = pytest.mark.django_db


def log(retainer, hours, day=date(2026, 1, 5)):
    return services.record_delivery(
        retainer=retainer, delivered_on=day, quantity=D(hours), description="Work", actor=None
    )


def needing_approval(workspace, *, policy="bill", units="2", block="3", **terms):
    retainer = factories.make_retainer(
        workspace=workspace, model="fixed", overage_policy=policy, units_per_period=D(units), **terms
    )
    services.set_collection(
        retainer=retainer,
        auto_charge=False,
        pause_after_unpaid_days=None,
        overage_needs_approval=True,
        overage_block=D(block),
    )
    retainer.refresh_from_db()
    contact = factories.ContactFactory(client=retainer.client, workspace=workspace, portal_access=True)
    return retainer, contact


def test_needing_approval_refuses_work_beyond_the_balance_even_under_bill_with_a_way_to_ask(workspace):
    retainer, _ = needing_approval(workspace)
    log(retainer, "2")
    with pytest.raises(services.DeliveryError) as refused:
        log(retainer, "0.5")
    assert "ask them to approve more from the retainer page" in str(refused.value)
    assert refused.value.field == "quantity"


def test_an_approval_allows_exactly_its_units_beyond_the_balance(workspace):
    retainer, contact = needing_approval(workspace)
    approval = approvals.offer_overage(retainer=retainer)
    assert (approval.offered, approval.rate_minor, approval.status) == (D("3"), 15000, "requested")
    approvals.answer_overage(
        approval=approval, approve=True, quantity=D("2"), contact=contact, via="portal", ip="203.0.113.9"
    )
    log(retainer, "3.5")
    with pytest.raises(services.DeliveryError, match="counting the 2.00 hours the client approved"):
        log(retainer, "0.75")
    log(retainer, "0.5")
    retainer.refresh_from_db()
    assert retainer.balance == D("-2")
    approval.refresh_from_db()
    assert (approval.answered_by, approval.answered_via, approval.answered_ip) == (contact, "portal", "203.0.113.9")
    assert approval.answered_name == f"{contact.name} <{contact.email}>"


def test_an_approval_answers_once_and_the_team_is_told(workspace, alice):
    retainer, contact = needing_approval(workspace)
    approval = approvals.offer_overage(retainer=retainer)
    approvals.answer_overage(approval=approval, approve=True, quantity=D("1"), contact=contact, via="link")
    with pytest.raises(services.DeliveryError, match="already answered"):
        approvals.answer_overage(approval=approval, approve=True, quantity=D("3"), contact=contact, via="link")
    with pytest.raises(services.DeliveryError, match="already answered"):
        approvals.answer_overage(approval=approval, approve=False, contact=contact, via="portal")
    approval.refresh_from_db()
    assert (approval.status, approval.quantity) == ("approved", D("1"))
    told = Email.objects.filter(to=alice.email, key__startswith=f"overage-answer-{approval.pk}-")
    assert told.count() == 1
    assert "approved 1.00 extra hours" in told.get().subject


def test_declining_is_recorded_and_the_team_is_told(workspace, alice):
    retainer, contact = needing_approval(workspace)
    approval = approvals.offer_overage(retainer=retainer)
    approvals.answer_overage(approval=approval, approve=False, reason="Not this month", contact=contact, via="portal")
    approval.refresh_from_db()
    assert (approval.status, approval.quantity, approval.decline_reason) == ("declined", D("0"), "Not this month")
    email = Email.objects.get(to=alice.email, key__startswith=f"overage-answer-{approval.pk}-")
    assert "declined" in email.subject and "Not this month" in email.body_text
    log(retainer, "2")
    with pytest.raises(services.DeliveryError):
        log(retainer, "1")


def test_a_client_cannot_approve_more_than_offered_nor_for_another_client(workspace):
    retainer, contact = needing_approval(workspace)
    stranger = factories.ContactFactory(workspace=workspace)
    approval = approvals.offer_overage(retainer=retainer)
    with pytest.raises(services.DeliveryError, match="up to 3"):
        approvals.answer_overage(approval=approval, approve=True, quantity=D("3.5"), contact=contact, via="portal")
    with pytest.raises(services.DeliveryError, match="another client"):
        approvals.answer_overage(approval=approval, approve=True, quantity=D("1"), contact=stranger, via="portal")
    assert OverageApproval.objects.get(pk=approval.pk).status == "requested"


def test_the_database_holds_one_waiting_request_per_period(workspace):
    retainer, _ = needing_approval(workspace)
    first = approvals.offer_overage(retainer=retainer)
    assert approvals.offer_overage(retainer=retainer) == first
    with pytest.raises(IntegrityError), transaction.atomic():
        OverageApproval.objects.create(
            workspace=workspace, retainer=retainer, period=first.period, offered=D("1"), rate_minor=1, currency="USD"
        )


def test_a_consultant_asks_with_a_message_and_the_contacts_get_a_signed_link(workspace, alice):
    retainer, contact = needing_approval(workspace)
    approval = approvals.request_overage(
        retainer=retainer, offered=D("4"), message="The migration ran long.", actor=alice
    )
    email = Email.objects.get(to=contact.email, key__startswith=f"overage-ask-{approval.pk}-")
    assert "The migration ran long." in email.body_text
    assert "£600.00 for all of them" in email.body_text  # 4 hours at £150.00
    link = next(line for line in email.body_text.splitlines() if "/overage/" in line)
    check = approvals.check_token(link.rsplit("/overage/", 1)[1].strip("/"))
    assert check.ok and check.approval == approval and check.contact == contact
    again = approvals.request_overage(retainer=retainer, offered=D("2"), message="Less, then.", actor=alice)
    assert again.pk == approval.pk and again.offered == D("2")


def test_the_ask_is_sent_with_its_signed_link_then_redacted(workspace, alice):
    """The link approves or declines without signing in: once sent, the outbox row no longer holds it."""
    retainer, contact = needing_approval(workspace)
    approval = approvals.request_overage(retainer=retainer, offered=D("4"), message="", actor=alice)
    row = Email.objects.get(to=contact.email, key__startswith=f"overage-ask-{approval.pk}-")
    link = next(line for line in row.body_text.splitlines() if "/overage/" in line)
    token = link.rsplit("/overage/", 1)[1].strip("/")
    assert outbox.send_email(row.pk) is True
    assert token in sent_text(row) and token in sent_html(row)  # the client got the working link
    row.refresh_from_db()
    assert row.status == Email.Status.SENT and row.secret
    assert token not in row.body_text and token not in row.body_html and "/overage/" not in row.body_text
    assert row.subject == sent_message(row).subject  # what was sent to whom is still known
    assert approvals.check_token(token).ok  # the link itself still works for its reader


def test_asking_needs_a_contact_who_can_answer(workspace, alice):
    retainer = factories.make_retainer(workspace=workspace)
    with pytest.raises(services.DeliveryError, match="portal access"):
        approvals.request_overage(retainer=retainer, offered=D("4"), message="", actor=alice)
    assert not OverageApproval.objects.exists()


def test_tampered_expired_and_used_links_are_told_apart(workspace, settings):
    retainer, contact = needing_approval(workspace)
    approval = approvals.offer_overage(retainer=retainer)
    token = approvals.approval_token(approval, contact)
    assert approvals.check_token(token[:-2] + "xx").state == "invalid"
    assert approvals.check_token(signing.dumps({"a": approval.pk, "c": contact.pk}, salt="other")).state == "invalid"
    with time_machine.travel("2099-01-01"):
        assert approvals.check_token(token).state == "expired"
    approvals.answer_overage(approval=approval, approve=False, contact=contact, via="link")
    assert approvals.check_token(token).state == "used"


def test_approved_overage_used_is_billed_as_its_own_line_and_the_rest_lapses(workspace):
    """Under "refuse", in advance: 2 of 3 approved hours used in January are billed on February's
    invoice at the approved rate, naming the approval; the hour not used lapses with January."""
    retainer, contact = needing_approval(workspace, policy="refuse", overage_rate_minor=12000)
    approval = approvals.offer_overage(retainer=retainer)
    approvals.answer_overage(approval=approval, approve=True, quantity=D("3"), contact=contact, via="portal")
    log(retainer, "4")
    billing.bill_workspace(workspace_id=workspace.pk, as_of=date(2026, 2, 1), deliver=False)
    january = Period.objects.get(retainer=retainer, seq=1)
    assert (january.approved_overage, january.overage, january.status) == (D("2"), D("0"), "closed")
    approval.refresh_from_db()
    assert (approval.used, approval.unused, approval.closed_at is not None) == (D("2"), D("1"), True)
    invoice = Invoice.objects.get(retainer=retainer, period__seq=2)
    [line] = [line for line in invoice.lines.all() if line.kind == "overage"]
    assert (line.quantity, line.unit_price_minor, line.amount_minor) == (D("2"), 12000, 24000)
    assert f"approval #{approval.pk}" in line.description and contact.name in line.description
    # February starts clean: January's approval no longer counts.
    log(retainer, "2", day=date(2026, 2, 3))
    with pytest.raises(services.DeliveryError):
        log(retainer, "0.25", day=date(2026, 2, 3))


def test_a_request_left_unanswered_lapses_at_period_end(workspace):
    retainer, contact = needing_approval(workspace)
    approval = approvals.offer_overage(retainer=retainer)
    token = approvals.approval_token(approval, contact)
    services.close_and_open_period(retainer=retainer, as_of=date(2026, 2, 1))
    approval.refresh_from_db()
    assert approval.status == "lapsed"
    assert approvals.check_token(token).state == "lapsed"


def test_in_arrears_the_periods_own_invoice_carries_the_approval_once(workspace):
    retainer, contact = needing_approval(workspace, billing_timing="arrears")
    approval = approvals.offer_overage(retainer=retainer)
    approvals.answer_overage(approval=approval, approve=True, quantity=D("3"), contact=contact, via="link")
    log(retainer, "3")
    for _ in range(2):  # run twice: billed once
        billing.bill_workspace(workspace_id=workspace.pk, as_of=date(2026, 2, 1), deliver=False)
    invoice = Invoice.objects.get(retainer=retainer, period__seq=1)
    [line] = [line for line in invoice.lines.all() if line.kind == "overage"]
    assert (line.quantity, line.amount_minor) == (D("1"), 15000)
    assert f"approval #{approval.pk}" in line.description


def test_an_ending_retainer_bills_its_approved_overage_on_a_closing_invoice(workspace):
    retainer, contact = needing_approval(workspace, term_periods=1)
    approval = approvals.offer_overage(retainer=retainer)
    approvals.answer_overage(approval=approval, approve=True, quantity=D("2"), contact=contact, via="portal")
    log(retainer, "4")
    billing.bill_workspace(workspace_id=workspace.pk, as_of=date(2026, 2, 1), deliver=False)
    closing = Invoice.objects.get(retainer=retainer, kind="closing")
    [line] = closing.lines.all()
    assert (line.quantity, line.unit_price_minor, line.amount_minor) == (D("2"), 15000, 30000)
    assert line.description.startswith("Approved overage: 2.00 hours")


def test_asking_and_answering_are_on_the_audit_trail(workspace, alice):
    retainer, contact = needing_approval(workspace)
    approval = approvals.request_overage(retainer=retainer, offered=D("4"), message="", actor=alice)
    approvals.answer_overage(approval=approval, approve=True, quantity=D("3"), contact=contact, via="link")
    trail = list(
        AuditEvent.objects.filter(workspace=workspace, object_type="delivery.overageapproval", object_id=approval.pk)
        .order_by("pk")
        .values_list("action", "actor_id", "client_id", "summary")
    )
    assert trail == [
        ("overage.requested", alice.pk, retainer.client_id, f"{retainer.name}: up to 4.00"),
        ("overage.approved", None, retainer.client_id, f"{retainer.name}: 3.00 by {contact.name} (link)"),
    ]
    declined = approvals.request_overage(retainer=retainer, offered=D("2"), message="", actor=alice)
    approvals.answer_overage(approval=declined, approve=False, contact=contact, via="portal")
    assert AuditEvent.objects.filter(object_id=declined.pk, action="overage.declined").exists()
