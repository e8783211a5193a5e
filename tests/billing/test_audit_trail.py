"""Hole 7: every money movement and invoice state change leaves an audit row naming who did it
(actor, IP for web actions), written in the same transaction; shown on the invoice page and the
client's timeline."""

from __future__ import annotations

from datetime import date

import pytest
from django.test import RequestFactory
from django.urls import reverse

from billing import charges, refunds, services
from billing.models import Invoice, Payment
from dashboard import timeline
from retainers.models import AuditEvent, Membership
from tests import factories
from tests.billing.conftest import open_invoice, save_card

pytestmark = pytest.mark.django_db


def trail(invoice: Invoice) -> list[tuple[str, int | None, str]]:
    """(action, amount, actor email) of the invoice's audit rows, oldest first."""
    return list(
        AuditEvent.objects.filter(object_type="billing.invoice", object_id=invoice.pk)
        .order_by("pk")
        .values_list("action", "amount_minor", "actor_label")
    )


def test_issuing_and_paying_by_hand_are_audited_with_the_actor(acme, alice):
    invoice = services.create_invoice(client=acme, lines=[("Advisory", 1, 50000)])
    services.issue_invoice(invoice=invoice, actor=alice)
    services.record_payment(invoice=invoice, amount_minor=20000, method="bank_transfer", actor=alice)
    services.record_payment(invoice=invoice, amount_minor=30000, method="bank_transfer", actor=alice)
    assert trail(invoice) == [
        ("invoice.issued", 50000, "alice@example.com"),
        ("payment.received", 20000, "alice@example.com"),
        ("payment.received", 30000, "alice@example.com"),
        ("invoice.paid", None, "alice@example.com"),
    ]
    row = AuditEvent.objects.filter(action="payment.received").first()
    assert (row.currency, row.client_id, row.workspace_id) == ("GBP", acme.pk, acme.workspace_id)


def test_a_refused_payment_leaves_no_audit_row(acme, alice):
    invoice = open_invoice(acme, amount_minor=10000)
    before = AuditEvent.objects.count()
    with pytest.raises(services.BillingError):
        services.record_payment(invoice=invoice, amount_minor=99999, method="bank_transfer", actor=alice)
    assert AuditEvent.objects.count() == before


def test_void_uncollectible_and_credit_notes_are_audited(acme, alice):
    voided, written_off, credited = (open_invoice(acme, amount_minor=10000) for _ in range(3))
    services.void_invoice(invoice=voided, actor=alice)
    services.mark_uncollectible(invoice=written_off, actor=alice)
    services.create_credit_note(invoice=credited, amount_minor=4000, reason="Billed twice", actor=alice)
    assert trail(voided)[-1] == ("invoice.voided", None, "alice@example.com")
    assert trail(written_off)[-1] == ("invoice.uncollectible", 10000, "alice@example.com")
    assert trail(credited)[-1] == ("credit_note.issued", 4000, "alice@example.com")
    note = Invoice.objects.get(credit_for=credited)
    assert trail(note) == [("credit_note.issued", 4000, "alice@example.com")]  # its own page's history
    assert AuditEvent.objects.filter(action="credit_note.issued").first().changes["reason"] == "Billed twice"


def test_refunds_credit_moves_and_asking_back_are_audited(acme, alice):
    paid = open_invoice(acme, amount_minor=10000)
    services.record_payment(invoice=paid, amount_minor=10000, method="bank_transfer", actor=alice)
    refunds.refund_payment(payment=paid.payments.get(), amount_minor=2500, actor=alice)
    services.ask_refund_back(invoice=paid, actor=alice)
    assert trail(paid)[2:] == [
        ("invoice.paid", None, "alice@example.com"),
        ("refund.recorded", 2500, "alice@example.com"),  # a refund is not owed again: still paid
        ("refund.asked_back", 2500, "alice@example.com"),
        ("invoice.reopened", None, "alice@example.com"),
    ]

    bolt = factories.ClientFactory(workspace=acme.workspace)
    overpaid, nxt = open_invoice(bolt, amount_minor=10000), open_invoice(bolt, amount_minor=8000)
    services.record_payment(invoice=overpaid, amount_minor=10000, method="bank_transfer", actor=alice)
    services.record_payment(invoice=overpaid, amount_minor=3000, method="card", stripe_id="pi_twice")
    services.apply_credit_balance(invoice=overpaid, actor=alice)
    assert ("credit.moved", 3000, "alice@example.com") in trail(overpaid)
    assert ("credit.applied", 3000, "alice@example.com") in trail(nxt)
    assert ("payment.received", 3000, "") in trail(overpaid)  # Stripe's payment: the system


def test_card_charges_are_audited_attempt_failure_and_success(fake_stripe, use_stripe, acme, alice):
    use_stripe(fake_stripe.url)
    card = fake_stripe.add_card()
    save_card(acme, customer_id="cus_acme", payment_method_id=card)
    fake_stripe.declining.add(card)
    invoice = open_invoice(acme, amount_minor=50000, auto_charge=True)
    charges.charge_invoice(invoice)
    fake_stripe.declining.discard(card)
    invoice.refresh_from_db()
    charges.charge_now(invoice, attempts=invoice.charge_attempts, actor=alice)
    assert trail(invoice)[1:] == [
        ("charge.attempted", 50000, ""),
        ("charge.failed", 50000, ""),
        ("charge.attempted", 50000, "alice@example.com"),
        ("payment.received", 50000, ""),
        ("invoice.paid", None, ""),
    ]


def test_the_billing_run_audits_each_invoice_it_issues(workspace):
    factories.make_retainer(workspace=workspace, price_minor=150000, currency="GBP")
    [invoice_id] = services.bill_workspace(workspace_id=workspace.pk, as_of=date(2026, 1, 1)).invoices
    assert trail(Invoice.objects.get(pk=invoice_id)) == [("invoice.issued", 150000, "")]


def test_a_web_action_on_an_invoice_records_its_ip_and_shows_on_the_invoice_page(owner_client, acme, workspace):
    invoice = open_invoice(acme, amount_minor=10000)
    response = owner_client.post(
        reverse("billing:invoice_void", args=[workspace.slug, invoice.pk]), REMOTE_ADDR="198.51.100.7"
    )
    assert response.status_code == 302
    voided = AuditEvent.objects.get(action="invoice.voided")
    assert voided.ip == "198.51.100.7"
    page = owner_client.get(reverse("billing:invoice_detail", args=[workspace.slug, invoice.pk])).content.decode()
    history = page[page.index('id="invoice-audit-heading"') :]
    assert "Voided" in history and "alice@example.com" in history and "198.51.100.7" in history
    assert "Issued" in history and "Retainers (automatic)" in history


def test_the_client_timeline_shows_the_audit_trail(acme, workspace, alice, owner_client):
    invoice = open_invoice(acme, amount_minor=10000)
    services.record_payment(invoice=invoice, amount_minor=10000, method="bank_transfer", actor=alice)
    other = factories.ClientFactory(workspace=workspace)
    open_invoice(other, amount_minor=777)
    request = RequestFactory().get("/")
    request.workspace, request.user = workspace, alice
    request.membership = Membership.objects.get(workspace=workspace, user=alice)
    events = timeline.page(request, acme, kinds=["audit"]).events
    assert [e.title.split(":")[0] for e in events] == ["Paid in full", "Payment recorded", "Issued"]
    assert events[1].detail == "£100.00 · by alice@example.com"
    assert events[1].url == reverse("billing:invoice_detail", args=[workspace.slug, invoice.pk])
    body = owner_client.get(f"/w/{workspace.slug}/clients/{acme.pk}/timeline/?kind=audit").content.decode()
    assert "Payment recorded" in body and "£7.77" not in body


def test_other_workspaces_audit_rows_never_show(acme, workspace, other_workspace, outsider_client):
    invoice = open_invoice(acme, amount_minor=10000)
    response = outsider_client.get(reverse("billing:invoice_detail", args=[workspace.slug, invoice.pk]))
    assert response.status_code == 404
    assert not AuditEvent.objects.for_workspace(other_workspace).exists()
    assert Payment.objects.count() == 0


def test_billing_settings_changes_are_audited(owner_client, workspace, alice):
    from tests.billing.test_views import _settings_data

    response = owner_client.post(reverse("billing:billing_settings", args=[workspace.slug]), _settings_data())
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="settings.billing_changed")
    assert (event.actor, event.ip) == (alice, "127.0.0.1")
    assert event.changes["tax_rate_bp"][1] == 2000 and event.changes["legal_name"][1] == "Northwind Advisory Ltd"
    owner_client.post(reverse("billing:billing_settings", args=[workspace.slug]), _settings_data())
    assert AuditEvent.objects.filter(action="settings.billing_changed").count() == 1  # nothing changed
