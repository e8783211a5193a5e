"""Invoice PDFs: rendered once after commit, stored, and they say what the invoice says."""

from __future__ import annotations

import shutil
import subprocess
from datetime import date

import pytest
from django.core import mail
from pypdf import PdfReader

from billing import services
from billing.models import Invoice
from billing.pdf import store_invoice_pdf
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
