"""Hole 13: per-client tax. A client is taxed at the workspace's rate, at its own, not at all, or
under the EU reverse charge (no tax, the legal mention and both VAT numbers on the invoice); an
issued invoice keeps what applied when it was issued; invoices by hand are in the client's
currency."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from billing import services
from billing.models import Invoice, InvoiceSequence
from billing.pdf import rerender_invoice_pdf
from billing.tax import REVERSE_CHARGE_MENTION
from clients.models import Client
from tests import factories
from tests.billing.test_pdf import pdf_text

pytestmark = pytest.mark.django_db

DE_VAT = "DE123456789"


@pytest.fixture
def uk_vat(workspace):
    workspace.currency = "GBP"
    workspace.save(update_fields=["currency"])
    profile = services.profile_for(workspace)
    profile.legal_name, profile.tax_id, profile.tax_label, profile.tax_rate_bp = (
        "Northwind Advisory Ltd",
        "GB123456789",
        "VAT",
        2000,
    )
    profile.save()
    return profile


@pytest.fixture
def muller(workspace, uk_vat):
    """A German business client, billed in EUR, under the reverse charge."""
    return factories.ClientFactory(
        workspace=workspace,
        name="Müller GmbH",
        billing_email="ap@mueller.example",
        tax_id=DE_VAT,
        tax_treatment=Client.TaxTreatment.REVERSE_CHARGE,
    )


def bill(workspace, as_of=date(2026, 1, 1)) -> list[Invoice]:
    ids = services.bill_workspace(workspace_id=workspace.pk, as_of=as_of).invoices
    return list(Invoice.objects.filter(pk__in=ids).order_by("pk"))


def test_a_eur_client_abroad_under_reverse_charge_pays_no_vat_and_the_pdf_says_why(
    workspace, muller, django_capture_on_commit_callbacks
):
    factories.make_retainer(workspace=workspace, client=muller, price_minor=150000, currency="EUR")
    with django_capture_on_commit_callbacks(execute=True):  # renders the PDF and emails it
        [invoice] = bill(workspace)
    invoice.refresh_from_db()
    assert (invoice.currency, invoice.subtotal_minor, invoice.tax_minor, invoice.total_minor) == (
        "EUR",
        150000,
        0,
        150000,
    )
    assert (invoice.tax_treatment, invoice.tax_mention) == ("reverse_charge", REVERSE_CHARGE_MENTION)
    assert (invoice.seller_tax_id, invoice.buyer_tax_id) == ("GB123456789", DE_VAT)
    text = " ".join(pdf_text(invoice.pdf.name).split())
    assert (
        "Reverse charge: VAT to be accounted for by the recipient (Article 196, Council Directive 2006/112/EC)" in text
    )
    assert "VAT number: GB123456789" in text and f"VAT number: {DE_VAT}" in text
    assert "€1,500.00" in text and "VAT (0%)" in text and "€300.00" not in text


def test_each_treatment_sets_the_rate(workspace, uk_vat):
    standard = factories.ClientFactory(workspace=workspace)
    own = factories.ClientFactory(workspace=workspace, tax_treatment="own_rate", tax_rate_bp=550)
    exempt = factories.ClientFactory(workspace=workspace, tax_treatment="exempt")
    for client in (standard, own, exempt):
        factories.make_retainer(workspace=workspace, client=client, price_minor=100000)
    invoices = {invoice.client_id: invoice for invoice in bill(workspace)}
    assert (invoices[standard.pk].tax_rate_bp, invoices[standard.pk].tax_minor) == (2000, 20000)
    assert (invoices[own.pk].tax_rate_bp, invoices[own.pk].tax_minor) == (550, 5500)
    assert (invoices[exempt.pk].tax_rate_bp, invoices[exempt.pk].tax_minor) == (0, 0)
    assert invoices[exempt.pk].tax_mention and not invoices[standard.pk].tax_mention


def test_an_issued_invoice_keeps_its_treatment_when_the_client_changes(
    workspace, uk_vat, muller, owner_client, django_capture_on_commit_callbacks
):
    factories.make_retainer(workspace=workspace, client=muller, price_minor=150000, currency="EUR")
    with django_capture_on_commit_callbacks(execute=True):
        [invoice] = bill(workspace)
    invoice.refresh_from_db()
    response = owner_client.post(
        reverse("clients:client_edit", args=[workspace.slug, muller.pk]),
        {"name": muller.name, "billing_email": muller.billing_email, "tax_id": "", "tax_treatment": "workspace"},
    )
    assert response.status_code == 302
    uk_vat.tax_id = "GB000000000"
    uk_vat.save()
    rerender_invoice_pdf(invoice)
    invoice.refresh_from_db()
    assert (invoice.tax_minor, invoice.buyer_tax_id, invoice.seller_tax_id) == (0, DE_VAT, "GB123456789")
    assert REVERSE_CHARGE_MENTION in " ".join(pdf_text(invoice.pdf.name).split())
    page = owner_client.get(reverse("billing:invoice_detail", args=[workspace.slug, invoice.pk])).content.decode()
    assert REVERSE_CHARGE_MENTION in page and DE_VAT in page


def test_a_draft_is_taxed_as_the_client_is_when_it_is_issued(workspace, uk_vat):
    client = factories.ClientFactory(workspace=workspace, tax_id=DE_VAT)
    draft = services.create_invoice(client=client, lines=[("Workshop", Decimal("1"), 100000)])
    assert draft.tax_minor == 20000
    Client.objects.filter(pk=client.pk).update(tax_treatment="reverse_charge")
    invoice = services.issue_invoice(invoice=draft, actor=None)
    invoice.refresh_from_db()
    assert (invoice.tax_minor, invoice.total_minor, invoice.tax_treatment) == (0, 100000, "reverse_charge")


def test_reverse_charge_without_the_clients_vat_number_is_a_field_error(workspace, uk_vat, owner_client):
    client = factories.ClientFactory(workspace=workspace, name="Dupont SA")
    url = reverse("clients:client_edit", args=[workspace.slug, client.pk])
    response = owner_client.post(url, {"name": "Dupont SA", "tax_id": " ", "tax_treatment": "reverse_charge"})
    assert response.status_code == 200
    assert "needs the client" in str(response.context["form"].errors["tax_id"])
    response = owner_client.post(url, {"name": "Dupont SA", "tax_treatment": "own_rate", "tax_rate": "120"})
    assert response.context["form"].errors["tax_rate"] == ["Enter a percentage from 0 to 100."]
    response = owner_client.post(url, {"name": "Dupont SA", "tax_treatment": "own_rate", "tax_rate": ""})
    assert "tax_rate" in response.context["form"].errors
    client.refresh_from_db()
    assert (client.tax_treatment, client.tax_rate_bp) == ("workspace", None)  # nothing half-saved
    response = owner_client.post(url, {"name": "Dupont SA", "tax_treatment": "own_rate", "tax_rate": "5.5"})
    assert response.status_code == 302
    client.refresh_from_db()
    assert (client.tax_treatment, client.tax_rate_bp) == ("own_rate", 550)
    page = owner_client.get(reverse("dashboard:client_billing", args=[workspace.slug, client.pk])).content.decode()
    assert "A rate of their own: 5.5%" in page


def test_the_database_refuses_a_reverse_charge_without_a_vat_number(workspace):
    client = factories.ClientFactory(workspace=workspace)
    with pytest.raises(IntegrityError), transaction.atomic():
        Client.objects.filter(pk=client.pk).update(tax_treatment="reverse_charge")
    with pytest.raises(IntegrityError), transaction.atomic():
        Client.objects.filter(pk=client.pk).update(tax_rate_bp=500)  # a rate without the own-rate treatment


def test_an_invoice_by_hand_is_in_the_clients_currency(workspace, muller, owner_client):
    factories.make_retainer(workspace=workspace, client=muller, price_minor=150000, currency="EUR")
    url = reverse("billing:invoice_create", args=[workspace.slug])
    page = owner_client.get(url, {"client": muller.pk}).content.decode()
    assert "Unit price (EUR)" in page
    data = {
        "client": muller.pk,
        "currency": "EUR",
        "lines-TOTAL_FORMS": "1",
        "lines-INITIAL_FORMS": "0",
        "lines-0-description": "Workshop",
        "lines-0-quantity": "1",
        "lines-0-unit_price": "1234.50",
        "action": "issue",
    }
    response = owner_client.post(url, data)
    assert response.status_code == 302
    invoice = Invoice.objects.get(client=muller)
    assert (invoice.currency, invoice.subtotal_minor, invoice.tax_minor, invoice.tax_mention) == (
        "EUR",
        123450,
        0,
        REVERSE_CHARGE_MENTION,
    )


def test_amounts_typed_under_another_currency_are_shown_again_not_saved(workspace, muller, owner_client):
    factories.make_retainer(workspace=workspace, client=muller, price_minor=150000, currency="EUR")
    url = reverse("billing:invoice_create", args=[workspace.slug])
    data = {
        "client": muller.pk,
        "currency": "GBP",  # the page was shown for another client
        "lines-TOTAL_FORMS": "1",
        "lines-INITIAL_FORMS": "0",
        "lines-0-description": "Workshop",
        "lines-0-unit_price": "100",
        "action": "draft",
    }
    response = owner_client.post(url, data)
    assert response.status_code == 200
    assert "is billed in EUR" in str(response.context["form"].errors["client"])
    assert not Invoice.objects.filter(client=muller).exists()


def test_the_portal_shows_the_mention_and_the_next_invoice_without_tax(
    workspace, muller, login, django_capture_on_commit_callbacks
):
    factories.make_retainer(workspace=workspace, client=muller, price_minor=150000, currency="EUR")
    with django_capture_on_commit_callbacks(execute=True):
        bill(workspace)
    user = factories.UserFactory(email="hans@mueller.example")
    factories.ContactFactory(client=muller, email=user.email, user=user, portal_access=True)
    browser = login(user)
    page = browser.get(f"/portal/w/{workspace.slug}/invoices/").content.decode()
    assert REVERSE_CHARGE_MENTION in page and DE_VAT in page


def test_a_draft_whose_tax_rose_past_the_largest_amount_is_not_issued(workspace, uk_vat):
    client = factories.ClientFactory(workspace=workspace, tax_treatment="exempt")
    draft = services.create_invoice(client=client, lines=[("Project", Decimal("1"), 60_000_000)])
    Client.objects.filter(pk=client.pk).update(tax_treatment="own_rate", tax_rate_bp=10000)
    with pytest.raises(services.BillingError, match="Split it into two invoices"):
        services.issue_invoice(invoice=draft, actor=None)
    draft.refresh_from_db()
    assert (draft.status, draft.number, draft.tax_minor) == ("draft", "", 0)
    assert not InvoiceSequence.objects.filter(workspace=workspace, last_number__gt=0).exists()  # the number given back
