"""Invoice PDFs: rendered once after commit, stored, and they say what the invoice says."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.core import mail
from pypdf import PdfReader

from billing import connect, paylinks, refunds, services
from billing import pdf as pdf_module
from billing.models import Invoice, Payment
from billing.pdf import render_invoice_pdf, rerender_invoice_pdf, store_invoice_pdf
from billing.selectors import PaymentOptions, payment_options
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def invoice(workspace, django_capture_on_commit_callbacks):
    profile = services.profile_for(workspace)
    profile.legal_name, profile.address, profile.tax_id = "Northwind Advisory Ltd", "1 High St\nLondon", "GB123456789"
    profile.tax_rate_bp, profile.tax_label, profile.payment_instructions = 2000, "VAT", "Sort code 00-00-00"
    profile.save()
    client = factories.ClientFactory(workspace=workspace, name="Acme Corp", billing_email="ap@acme.example")
    factories.make_retainer(workspace=workspace, client=client, price_minor=150000, currency="GBP")
    with django_capture_on_commit_callbacks(execute=True):
        [invoice_id] = services.bill_workspace(workspace_id=workspace.pk, as_of=date(2026, 1, 1)).invoices
    return Invoice.objects.get(pk=invoice_id)


def pdf_text(path: str) -> str:
    from django.core.files.storage import default_storage

    with default_storage.open(path, "rb") as handle:
        data = handle.read()
    assert data.startswith(b"%PDF")
    if shutil.which("pdftotext"):
        return subprocess.run(
            ["pdftotext", "-layout", "-", "-"], input=data, capture_output=True, check=True
        ).stdout.decode()
    import io

    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_rendered_invoice_shows_number_client_and_totals(invoice):
    text = pdf_text(invoice.pdf.name)
    for expected in (
        "Invoice",
        "2026-0001",
        "Acme Corp",
        "Northwind Advisory Ltd",
        "GB123456789",
        "£1,500.00",
        "£300.00",
        "£1,800.00",
        "VAT (20%)",
        "Sort code 00-00-00",
    ):
        assert expected in text, expected


def test_pdf_is_rendered_once_and_reused(invoice):
    name = invoice.pdf.name
    assert store_invoice_pdf(invoice) == name
    invoice.refresh_from_db()
    assert invoice.pdf.name == name


def test_invoice_email_carries_the_pdf_once(invoice, django_capture_on_commit_callbacks):
    [message] = mail.outbox
    assert message.to == ["ap@acme.example"]
    assert message.from_email.startswith("Northwind Advisory <")
    assert "2026-0001" in message.subject and "£1,800.00" in message.subject
    [(filename, content, mimetype)] = message.attachments
    assert (filename, mimetype) == ("2026-0001.pdf", "application/pdf") and content.startswith(b"%PDF")
    assert "/pay/" in message.body and "/portal/" in message.body
    from billing.sending import send_invoice_email

    with django_capture_on_commit_callbacks(execute=True):
        send_invoice_email(invoice)
    assert len(mail.outbox) == 1


def test_invoice_email_offers_a_card_only_when_the_workspace_takes_cards(invoice, settings):
    # Without Stripe the pay page shows bank details: the email must not promise a card payment.
    [message] = mail.outbox
    [(html_body, _)] = message.alternatives
    for body in (message.body, html_body):
        assert "How to pay" in body and "by card" not in body
    from billing.notices import invoice_context

    settings.STRIPE_SECRET_KEY = "sk_test_cards"
    connect.use_test_account(workspace=invoice.workspace, account_id="acct_cards")
    context = invoice_context(invoice)
    assert context["card_payments"] and context["pay_label"] == "Pay"


# --- What the PDF says depends on the invoice's state at render time (issue 11, item 8) ---------

PAID_AT = datetime(2026, 1, 20, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@dataclass(frozen=True)
class Word:
    text: str
    x0: float
    y0: float
    x1: float


def pdf_words(path: str) -> list[Word]:
    """Each word of the PDF with its box (in points), as poppler's pdftotext -bbox reads it."""
    from django.core.files.storage import default_storage

    assert shutil.which("pdftotext"), "pdftotext (poppler-utils) is a test dependency: see scripts/bootstrap.sh"
    with default_storage.open(path, "rb") as handle:
        data = handle.read()
    out = subprocess.run(["pdftotext", "-bbox", "-", "-"], input=data, capture_output=True, check=True).stdout
    found = re.findall(
        r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="[\d.]+">(.*?)</word>', out.decode()
    )
    return [Word(html.unescape(text), float(x0), float(y0), float(x1)) for x0, y0, x1, text in found]


def stored(path: str) -> bool:
    from django.core.files.storage import default_storage

    return default_storage.exists(path)


def test_open_invoice_asks_for_payment_and_shows_no_stamp(invoice):
    text = pdf_text(invoice.pdf.name)
    assert "HOW TO PAY" in text and "Sort code 00-00-00" in text and "Please quote 2026-0001" in text
    assert "PAID" not in text and "Balance" not in text


def test_paid_invoice_says_paid_with_date_and_method_and_no_way_to_pay(
    invoice, time_machine, django_capture_on_commit_callbacks
):
    time_machine.move_to(PAID_AT, tick=False)
    services.record_payment(invoice=invoice, amount_minor=180000, method=Payment.Method.BANK_TRANSFER, actor=None)
    with django_capture_on_commit_callbacks(execute=True):
        rerender_invoice_pdf(invoice)
    text = pdf_text(invoice.pdf.name)
    assert "PAID" in text
    assert "Paid in full on 20 January 2026 by bank transfer." in text
    assert re.search(r"Paid 20 Jan 2026 · bank transfer\s+£1,800\.00", text)
    assert re.search(r"Balance\s+£0\.00", text)
    for asking in ("HOW TO PAY", "Sort code", "Pay online", "/pay/", "Please quote", "Balance due"):
        assert asking not in text, asking


def test_part_paid_invoice_shows_what_was_paid_and_the_balance_due(
    invoice, time_machine, django_capture_on_commit_callbacks
):
    time_machine.move_to(PAID_AT, tick=False)
    services.record_payment(invoice=invoice, amount_minor=50000, method=Payment.Method.BANK_TRANSFER, actor=None)
    with django_capture_on_commit_callbacks(execute=True):
        rerender_invoice_pdf(invoice)
    text = pdf_text(invoice.pdf.name)
    assert re.search(r"Paid 20 Jan 2026 · bank transfer\s+£500\.00", text)
    assert re.search(r"Balance due\s+£1,300\.00", text)
    assert "HOW TO PAY" in text and "Sort code 00-00-00" in text
    assert "PAID" not in text and "Paid in full" not in text


def test_a_refund_is_listed_and_not_asked_for_until_the_consultant_asks_it_back(
    invoice, time_machine, django_capture_on_commit_callbacks
):
    # A refund is money the consultant chose to give back (billing.refunds): it is not owed again,
    # so the PDF lists it and asks for nothing, and says Refunded rather than PAID; once the
    # consultant asks for it back (services.ask_refund_back), the PDF asks for it.
    time_machine.move_to(PAID_AT, tick=False)
    payment = services.record_payment(
        invoice=invoice, amount_minor=180000, method=Payment.Method.BANK_TRANSFER, actor=None
    )
    refunds.refund_payment(payment=payment, amount_minor=30000, actor=None, reason="Goodwill")
    with django_capture_on_commit_callbacks(execute=True):
        rerender_invoice_pdf(invoice)
    text = pdf_text(invoice.pdf.name)
    assert re.search(r"Paid 20 Jan 2026 · bank transfer\s+£1,800\.00", text)
    assert re.search(r"Refunded 20 Jan 2026 · bank transfer\s+-£300\.00", text)
    assert "Refunded" in re.sub(r"\s+", " ", text.split("Bill to")[0])  # the status row
    assert "HOW TO PAY" not in text and "Balance due" not in text and "PAID" not in text

    invoice.refresh_from_db()
    services.ask_refund_back(invoice=invoice, actor=None)
    with django_capture_on_commit_callbacks(execute=True):
        rerender_invoice_pdf(invoice)
    text = pdf_text(invoice.pdf.name)
    assert re.search(r"Balance due\s+£300\.00", text) and "HOW TO PAY" in text
    assert "PAID" not in text


def test_credit_note_settling_an_invoice_is_listed_and_the_invoice_shows_paid(
    invoice, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        note = services.create_credit_note(invoice=invoice, amount_minor=180000, reason="Sent twice", actor=None)
        rerender_invoice_pdf(invoice)
    text = pdf_text(invoice.pdf.name)
    assert re.search(rf"Credit note {note.number}\s+£1,800\.00", text)
    assert "PAID" in text and "Settled on" in text and "HOW TO PAY" not in text


def test_rerender_swaps_in_a_new_file_and_deletes_the_old_one_after_commit(invoice, django_capture_on_commit_callbacks):
    old = invoice.pdf.name
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        new = rerender_invoice_pdf(invoice)
    assert new != old and invoice.pdf.name == new
    assert Invoice.objects.get(pk=invoice.pk).pdf.name == new
    assert stored(old) and stored(new)  # the old file stays until the swap is committed
    for callback in callbacks:
        callback()
    assert not stored(old) and stored(new)
    assert pdf_text(new).count("2026-0001") >= 2


def test_rerender_that_loses_the_swap_drops_its_file_and_renders_again(
    invoice, monkeypatch, django_capture_on_commit_callbacks
):
    """Another worker swaps the field between this run's read and its update: this run's first
    file is deleted, and it renders again from the other's file, which it then replaces."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    original, first = invoice.pdf.name, []
    render = pdf_module.render_invoice_pdf

    def render_while_another_worker_swaps(current, **kwargs):
        data = render(current, **kwargs)
        if not first:
            theirs = default_storage.save(f"invoices/{invoice.workspace_id}/theirs.pdf", ContentFile(data))
            Invoice.objects.filter(pk=invoice.pk).update(pdf=theirs)
            first.append(theirs)
        return data

    monkeypatch.setattr(pdf_module, "render_invoice_pdf", render_while_another_worker_swaps)
    with django_capture_on_commit_callbacks(execute=True):
        name = rerender_invoice_pdf(invoice)
    [theirs] = first
    assert name == Invoice.objects.get(pk=invoice.pk).pdf.name and name not in (original, theirs)
    # Left in storage: the new file, and the original (the other worker's to delete, not this run's).
    # Gone: the file of the lost swap, and the other worker's file that the new one replaced.
    _, files = default_storage.listdir(f"invoices/{invoice.workspace_id}")
    assert sorted(f"invoices/{invoice.workspace_id}/{file}" for file in files) == sorted([original, name])


def test_rerender_leaves_drafts_without_a_pdf(workspace):
    client = factories.ClientFactory(workspace=workspace)
    draft = services.create_invoice(client=client, lines=[("Workshop", Decimal("1"), 10000)])
    assert rerender_invoice_pdf(draft) == ""
    assert not Invoice.objects.get(pk=draft.pk).pdf


# --- Columns that never run together (issue 10) ------------------------------------------------


def test_credit_note_quantity_price_and_amount_columns_stand_apart(invoice, django_capture_on_commit_callbacks):
    # A reason long enough to wrap: the description then takes all the room it can, and the
    # figures' columns shrank to their content and ran together ("1-£1,500.00-£1,500.00").
    reason = "Duplicate: the December workshop was billed twice, once on this invoice and once on the next one"
    with django_capture_on_commit_callbacks(execute=True):
        note = services.create_credit_note(invoice=invoice, amount_minor=180000, reason=reason, actor=None)
    note.refresh_from_db()
    words = pdf_words(note.pdf.name)
    row_y = min(w.y0 for w in words if w.text == "Duplicate:")  # the line (the memo repeats it below)
    row = sorted((w for w in words if abs(w.y0 - row_y) < 2), key=lambda w: w.x0)
    quantity, price, amount = row[-3:]
    assert (quantity.text, price.text, amount.text) == ("1", "-£1,500.00", "-£1,500.00")
    assert price.x0 - quantity.x1 >= 8 and amount.x0 - price.x1 >= 8  # points: ~3 mm of white at least
    header_y = next(w.y0 for w in words if w.text == "AMOUNT")
    headers = {w.text: w for w in words if abs(w.y0 - header_y) < 2}
    for figure, header in ((quantity, "QUANTITY"), (price, "PRICE"), (amount, "AMOUNT")):
        assert abs(figure.x1 - headers[header].x1) < 1.5, header  # right-aligned under its header


# --- Payment wording that matches what the workspace accepts (issue 17) -------------------------


def connect_stripe(settings, workspace, *, bank_details: str | None = None) -> None:
    settings.STRIPE_SECRET_KEY = "sk_test_pdf"  # nothing is sent to Stripe: the PDF only asks is_configured
    connect.use_test_account(workspace=workspace, account_id="acct_1Pdf")
    profile = services.profile_for(workspace)
    if bank_details is not None:
        profile.payment_instructions = bank_details
    profile.save()


def render_text(invoice: Invoice) -> str:
    invoice = Invoice.objects.select_related("workspace", "client").get(pk=invoice.pk)
    # As the delivery task renders it: with the invoice's pay link.
    data = render_invoice_pdf(invoice, pay_url=paylinks.pay_url(invoice))
    return subprocess.run(
        ["pdftotext", "-layout", "-", "-"], input=data, capture_output=True, check=True
    ).stdout.decode()


def test_without_stripe_the_pdf_offers_no_card_payment(invoice):
    text = render_text(invoice)
    assert "card" not in text.lower() and "/pay/" not in text
    assert "Sort code 00-00-00" in text


def test_with_stripe_the_pdf_offers_the_card_link_and_the_bank_transfer(invoice, settings):
    connect_stripe(settings, invoice.workspace)
    text = render_text(invoice)
    assert "Pay online by card:" in text and paylinks.pay_url(invoice) in re.sub(r"\s+", "", text)  # it wraps
    assert "Or by bank transfer:" in text and "Sort code 00-00-00" in text


def test_with_stripe_and_no_bank_details_the_pdf_offers_only_the_card(invoice, settings):
    connect_stripe(settings, invoice.workspace, bank_details="")
    text = render_text(invoice)
    assert "Pay online by card:" in text and "bank transfer" not in text.lower()


def test_with_no_way_to_pay_set_up_the_pdf_says_whom_to_ask(invoice):
    profile = services.profile_for(invoice.workspace)
    profile.payment_instructions = "  "
    profile.save()
    text = render_text(invoice)
    assert "Please contact Northwind Advisory Ltd to arrange payment." in text
    assert "card" not in text.lower()


def test_payment_options_follow_stripe_and_bank_details(workspace, settings):
    assert payment_options(workspace) == PaymentOptions(card=False, bank_transfer=False, instructions="")
    connect_stripe(settings, workspace, bank_details=" IBAN GB00 \n")
    assert payment_options(workspace) == PaymentOptions(card=True, bank_transfer=True, instructions="IBAN GB00")
    settings.STRIPE_SECRET_KEY = ""  # the platform has no Stripe: no workspace takes cards
    assert payment_options(workspace).card is False


def test_documents_fetch_nothing_but_the_files_embedded_for_them():
    fetcher = pdf_module._embedded_fetcher()
    fetcher.files = {"logo": (b"PNG bytes", "image/png")}
    assert fetcher.fetch("embedded:logo").read() == b"PNG bytes"
    for url in ("embedded:other", "file:///etc/passwd", "http://169.254.169.254/latest/meta-data/"):
        with pytest.raises(ValueError):
            fetcher(url)
