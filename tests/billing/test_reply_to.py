"""Hole 11: every billing email to a client can be answered (its Reply-To is the client's thread
address, or the owner's address without inbound email), and every email of the workspace, to
clients and to its own team, comes from the workspace's name."""

from __future__ import annotations

from datetime import date, timedelta
from email.utils import parseaddr

import pytest
from django.core import mail

from billing import charges, dunning, paylinks, sending, services
from communication.inbound import reply_address
from tests.billing.conftest import open_invoice, save_card

pytestmark = pytest.mark.django_db

CLIENT = "ap@acme.example"


def sent_to(to: str) -> list:
    return [m for m in mail.outbox if m.to == [to]]


def assert_answerable(messages: list, acme) -> None:
    assert messages, "no email to the client"
    thread = reply_address(acme)
    assert thread.startswith("reply+")
    for message in messages:
        assert message.reply_to == [thread], message.subject
        assert parseaddr(message.from_email)[0] == "Northwind Advisory", message.subject


def test_invoice_credit_note_receipt_and_pay_link_can_be_answered(acme, alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        invoice = open_invoice(acme, amount_minor=50000)
        sending.send_invoice_email(invoice)
        note = services.create_credit_note(invoice=invoice, amount_minor=1000, reason="Discount", actor=alice)
        sending.send_invoice_email(note)
        paylinks.send_pay_link(invoice)
        services.record_payment(invoice=invoice, amount_minor=49000, method="bank_transfer", actor=alice, receipt=True)
    with django_capture_on_commit_callbacks(execute=True):
        sending.deliver_due(older_than=timedelta(0), inline=True)  # the receipt, once the PDF says PAID
    kinds = sorted(m.subject.split(" ")[0] for m in sent_to(CLIENT))
    assert kinds == ["A", "Credit", "Invoice", "Receipt:"]  # pay link, credit note, invoice, receipt
    assert_answerable(sent_to(CLIENT), acme)


def test_overdue_notices_and_reminders_can_be_answered(acme, alice, django_capture_on_commit_callbacks):
    open_invoice(acme, due_on=date(2026, 3, 1))
    for day in (1, 3, 10):
        with django_capture_on_commit_callbacks(execute=True):
            dunning.run_dunning(as_of=date(2026, 3, 1) + timedelta(days=day), inline=True)
    assert len(sent_to(CLIENT)) == 3
    assert_answerable(sent_to(CLIENT), acme)
    # The consultant's copy comes from the workspace too, not from "Retainers".
    [alert] = sent_to(alice.email)
    assert parseaddr(alert.from_email)[0] == "Northwind Advisory"


def test_the_final_payment_failed_email_can_be_answered_and_its_html_has_the_portal_link(
    fake_stripe, use_stripe, acme, alice, settings, django_capture_on_commit_callbacks
):
    use_stripe(fake_stripe.url)
    card = fake_stripe.add_card()
    fake_stripe.declining.add(card)
    save_card(acme, customer_id="cus_acme", payment_method_id=card)
    services.profile_for(acme.workspace).__class__.objects.filter(workspace=acme.workspace).update(retry_days=[])
    invoice = open_invoice(acme, auto_charge=True)
    with django_capture_on_commit_callbacks(execute=True):
        charges.charge_invoice(invoice)
    failed = [m for m in sent_to(CLIENT) if "could not" in m.body or "charge" in m.subject.lower()]
    assert failed, [m.subject for m in sent_to(CLIENT)]
    assert_answerable(failed, acme)
    final = failed[0]
    assert "We will not try the card again" in final.body
    portal = f"{settings.SITE_URL}/portal/"
    html = final.alternatives[0][0]
    assert portal in final.body and portal in html
    # Every money alert to the consultant names the workspace as its sender.
    alerts = sent_to(alice.email)
    assert alerts and {parseaddr(m.from_email)[0] for m in alerts} == {"Northwind Advisory"}


def test_without_inbound_email_a_client_reply_reaches_the_owner(
    acme, alice, settings, django_capture_on_commit_callbacks
):
    settings.INBOUND_EMAIL_DOMAIN = ""
    with django_capture_on_commit_callbacks(execute=True):
        sending.send_invoice_email(open_invoice(acme))
    [message] = sent_to(CLIENT)
    assert message.reply_to == [alice.email]
