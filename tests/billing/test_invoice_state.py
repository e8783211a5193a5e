"""One vocabulary of invoice status for both sides (Invoice.state): the consultant's list, the
invoice page, the client page, the portal, the CSV, the PDF and the receipt all say the same word,
and the list's SQL filter (InvoiceQuerySet.in_state) agrees with it for every state."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core import mail
from django.core.files.storage import default_storage
from django.urls import reverse
from pypdf import PdfReader

from billing import charges, pdf, refunds, sending, services
from billing.models import Invoice, InvoiceState
from clients.services import add_contact
from tests.billing.conftest import open_invoice, save_card

pytestmark = pytest.mark.django_db


@pytest.fixture
def book(acme, workspace):
    """One invoice in each state, as of the workspace's today."""
    today = workspace.today()
    drafts = services.create_invoice(client=acme, lines=[("Draft work", 1, 1000)])
    open_ = open_invoice(acme, amount_minor=10000)
    part = open_invoice(acme, amount_minor=10000)
    services.record_payment(invoice=part, amount_minor=4000, method="bank_transfer")
    overdue = open_invoice(acme, amount_minor=10000, due_on=today - timedelta(days=3))
    late_part = open_invoice(acme, amount_minor=10000, due_on=today - timedelta(days=3))
    services.record_payment(invoice=late_part, amount_minor=1000, method="bank_transfer")
    paid = open_invoice(acme, amount_minor=10000)
    services.record_payment(invoice=paid, amount_minor=10000, method="bank_transfer")
    overpaid = open_invoice(acme, amount_minor=10000)
    services.record_payment(invoice=overpaid, amount_minor=10000, method="bank_transfer")
    services.record_payment(invoice=overpaid, amount_minor=10000, method="card", stripe_id="pi_again")
    refunded = open_invoice(acme, amount_minor=10000)
    payment = services.record_payment(invoice=refunded, amount_minor=10000, method="bank_transfer")
    refunds.refund_payment(payment=payment, amount_minor=2500, actor=None)
    void = open_invoice(acme, amount_minor=10000)
    services.void_invoice(invoice=void, actor=None)
    written_off = open_invoice(acme, amount_minor=10000)
    services.mark_uncollectible(invoice=written_off, actor=None)
    note = services.create_credit_note(invoice=open_, amount_minor=1000, reason="Goodwill", actor=None)
    return {
        "draft": drafts,
        "open": open_,
        "part_paid": part,
        "overdue": overdue,
        "late_part": late_part,
        "paid": paid,
        "overpaid": overpaid,
        "refunded": refunded,
        "void": void,
        "uncollectible": written_off,
        "credit_note": note,
    }


EXPECTED = {
    "draft": "draft",
    "open": "open",
    "part_paid": "part_paid",
    "overdue": "overdue",
    "late_part": "overdue",  # overdue says more than part paid
    "paid": "paid",
    "overpaid": "overpaid",
    "refunded": "refunded",
    "void": "void",
    "uncollectible": "uncollectible",
    "credit_note": "credit_note",
}


@pytest.mark.parametrize("for_client", [False, True])
def test_the_state_and_its_sql_filter_agree_for_every_invoice(book, workspace, for_client):
    today = workspace.today()
    invoices = {key: Invoice.objects.get(pk=invoice.pk) for key, invoice in book.items()}
    for key, invoice in invoices.items():
        expected = EXPECTED[key]
        if for_client and expected == "uncollectible":
            expected = "overdue"  # the client still sees what is due
        assert invoice.state(on=today, for_client=for_client) == expected, key
    for state in InvoiceState:
        in_sql = set(Invoice.objects.in_state(state, today=today, for_client=for_client).values_list("pk", flat=True))
        in_python = {i.pk for i in invoices.values() if i.state(on=today, for_client=for_client) == state}
        assert in_sql == in_python, state
    assert not Invoice.objects.in_state("nonsense", today=today).exists()


def test_a_part_paid_invoice_reads_part_paid_on_every_surface(
    acme, workspace, owner_client, login, django_capture_on_commit_callbacks, fake_stripe, use_stripe
):
    """Invoice 2026-0042 was "Open" for the consultant and "Part paid" in the portal."""
    use_stripe(fake_stripe.url)
    invoice = open_invoice(acme, amount_minor=108000)
    with django_capture_on_commit_callbacks(execute=True):
        services.record_payment(invoice=invoice, amount_minor=50000, method="bank_transfer")
    invoice.refresh_from_db()
    badge = '<span class="badge badge-warning">Part paid</span>'
    slug = workspace.slug

    listing = owner_client.get(reverse("billing:invoice_list", args=[slug])).content.decode()
    assert badge in listing
    assert badge in owner_client.get(reverse("billing:invoice_detail", args=[slug, invoice.pk])).content.decode()
    assert badge in owner_client.get(reverse("dashboard:client_billing", args=[slug, acme.pk])).content.decode()
    filtered = owner_client.get(reverse("billing:invoice_list", args=[slug]), {"status": "part_paid"})
    assert invoice.number in filtered.content.decode()
    csv = b"".join(owner_client.get(reverse("billing:invoice_export", args=[slug])).streaming_content).decode()
    assert f"{invoice.number},Acme Corp,part_paid," in csv

    contact = add_contact(client=acme, name="Carol Chen", email="carol@acme.example", portal_access=True)
    page = login(contact.user).get(f"/portal/w/{slug}/invoices/")
    portal_badge = (
        '<span class="badge badge-warning" data-figure="status">Part paid</span>'  # read by tests/consistency
    )
    assert page.status_code == 200 and portal_badge in page.content.decode()

    text = pdf_text(pdf.current_pdf(invoice))
    assert "Part paid" in text and "Pay online by card" in text


def pdf_text(name: str) -> str:
    with default_storage.open(name, "rb") as handle:
        return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(handle.read())).pages)


def test_the_receipt_attaches_a_pdf_that_says_paid_and_asks_for_nothing(
    acme, fake_stripe, use_stripe, django_capture_on_commit_callbacks
):
    use_stripe(fake_stripe.url)
    save_card(acme, customer_id="cus_acme", payment_method_id=fake_stripe.add_card())
    invoice = open_invoice(acme, amount_minor=108000, auto_charge=True)
    with django_capture_on_commit_callbacks(execute=True):
        sending.deliver_invoice(invoice.pk)
    [receipt] = [m for m in mail.outbox if m.to == ["ap@acme.example"]]
    assert receipt.subject.startswith("Receipt: £1,080.00 received")
    [(filename, content, _)] = receipt.attachments
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)
    invoice.refresh_from_db()
    assert (
        "PAID" in text
        and "by card" in text
        and f"{invoice.paid_at.astimezone(acme.workspace.tzinfo):%-d %B %Y}" in text
    )
    assert "/pay/" not in text and "HOW TO PAY" not in text.upper() and "Please quote" not in text


def test_a_payment_by_hand_renders_the_pdf_again_and_the_old_file_goes(acme, django_capture_on_commit_callbacks):
    invoice = open_invoice(acme, amount_minor=20000)
    old = pdf.current_pdf(invoice)
    assert "Please quote" in pdf_text(old)  # the "How to pay" box
    with django_capture_on_commit_callbacks(execute=True):
        services.record_payment(invoice=invoice, amount_minor=20000, method="bank_transfer")
    invoice.refresh_from_db()
    assert invoice.pdf.name != old and invoice.pdf_stale_at is None
    text = pdf_text(invoice.pdf.name)
    assert "PAID" in text and "by bank transfer" in text and "Please quote" not in text
    assert not default_storage.exists(old)


def test_an_unsent_email_keeps_the_pdf_it_attaches(acme, django_capture_on_commit_callbacks):
    invoice = open_invoice(acme, amount_minor=20000)
    sending.send_invoice_email(invoice)  # queued, not sent (no commit in this test)
    invoice.refresh_from_db()
    old = invoice.pdf.name
    with django_capture_on_commit_callbacks(execute=True):
        services.record_payment(invoice=invoice, amount_minor=20000, method="bank_transfer")
    assert default_storage.exists(old)  # the outbox still has to read it


def test_charges_are_for_what_is_owed(acme, fake_stripe, use_stripe):
    """A refunded amount is not charged again: the card is asked for what is owed."""
    use_stripe(fake_stripe.url)
    save_card(acme, customer_id="cus_acme", payment_method_id=fake_stripe.add_card())
    invoice = open_invoice(acme, amount_minor=100000, auto_charge=True)
    payment = services.record_payment(invoice=invoice, amount_minor=40000, method="bank_transfer")
    refunds.refund_payment(payment=payment, amount_minor=10000, actor=None)
    charges.charge_invoice(invoice)
    [request] = fake_stripe.requests_to("POST", "/v1/payment_intents")
    assert request.params["amount"] == "60000"  # 100,000 less the 40,000 paid; the 10,000 refund is not asked


def test_a_client_reads_a_write_off_as_overdue(acme, workspace):
    invoice = open_invoice(acme)
    services.mark_uncollectible(invoice=invoice, actor=None)
    invoice.refresh_from_db()
    assert invoice.state(on=workspace.today()) == "uncollectible"
    assert invoice.state(on=workspace.today(), for_client=True) == "overdue"


def test_the_client_timeline_says_the_state(acme, workspace, owner_client):
    invoice = open_invoice(acme)
    services.record_payment(invoice=invoice, amount_minor=1000, method="bank_transfer")
    page = owner_client.get(reverse("dashboard:client_timeline", args=[workspace.slug, acme.pk])).content.decode()
    assert "Part paid" in page
