"""The surfaces part B left with their own status words: the public pay page and the portal's
period statement PDF also say "Part paid" for a part-paid invoice (Invoice.state, one label map)."""

from __future__ import annotations

import io

import pytest
from django.urls import reverse
from pypdf import PdfReader

from billing import paylinks, services
from billing.models import Invoice
from clients.services import add_contact
from tests import factories
from tests.billing.conftest import open_invoice

pytestmark = pytest.mark.django_db
BADGE = '<span class="badge badge-warning">Part paid</span>'


def test_the_pay_page_says_part_paid(acme, client):
    invoice = open_invoice(acme, amount_minor=108000)
    services.record_payment(invoice=invoice, amount_minor=50000, method="bank_transfer")
    path = reverse("billing_public:pay", args=[paylinks.pay_token(invoice)])
    page = client.get(path).content.decode()
    assert BADGE in page and ">Open<" not in page


def test_the_statement_pdf_says_part_paid(acme, workspace, login):
    retainer = factories.make_retainer(client=acme, starts_on=workspace.today().replace(day=1))
    services.bill_workspace(workspace_id=workspace.pk, as_of=workspace.today(), deliver=False)
    [invoice] = Invoice.objects.filter(retainer=retainer)
    services.record_payment(invoice=invoice, amount_minor=1000, method="bank_transfer")
    contact = add_contact(client=acme, name="Carol Chen", email="carol@acme.example", portal_access=True)
    url = f"/portal/w/{workspace.slug}/retainers/{retainer.pk}/statement/{invoice.period_id}/"
    response = login(contact.user).get(url)
    assert response.status_code == 200
    content = b"".join(response.streaming_content) if hasattr(response, "streaming_content") else response.content
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)
    assert invoice.number in text and "Part paid" in text
