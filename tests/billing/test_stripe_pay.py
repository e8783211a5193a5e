"""The public pay link: a signed token, the invoice summary, Stripe Checkout or bank details."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from billing import paylinks, services
from billing.models import Invoice
from tests.billing.conftest import ACCOUNT, open_invoice

pytestmark = pytest.mark.django_db


def pay_path(invoice: Invoice) -> str:
    return f"/pay/{paylinks.pay_token(invoice)}/"


def test_pay_page_shows_the_invoice_and_a_card_button(fake_stripe, use_stripe, acme, client):
    use_stripe(fake_stripe.url)
    invoice = open_invoice(acme, amount_minor=120000)
    Invoice.objects.filter(pk=invoice.pk).update(
        pdf=default_storage.save("invoices/test.pdf", ContentFile(b"%PDF-1.4"))
    )
    response = client.get(pay_path(invoice))
    page = response.content.decode()
    assert response.status_code == 200
    for text in [
        "Northwind Advisory",
        f"Invoice {invoice.number}",
        "£1,200.00",
        f"{invoice.due_on:%-d %B %Y}",
        "Pay £1,200.00 by card",
        f"{pay_path(invoice)}pdf/",
        "Or pay by bank transfer",
        "IBAN",
    ]:
        assert text in page, text
    # The pay button's redirect goes to Stripe's page: the CSP lets that form go there, and no further.
    policy = response.headers["Content-Security-Policy"]
    assert "form-action 'self' https://checkout.stripe.com" in policy and "script-src 'self' 'nonce-" in policy
    assert client.get(f"{pay_path(invoice)}pdf/").headers["Content-Type"] == "application/pdf"


def test_pay_url_is_absolute_signed_and_stable(acme):
    invoice = open_invoice(acme)
    url = paylinks.pay_url(invoice)
    assert url.startswith("http") and url.endswith(pay_path(invoice))
    assert paylinks.pay_url(invoice) == url  # the same link in the PDF, the emails and Checkout's return
    assert paylinks.invoice_for_token(paylinks.pay_token(invoice)) == invoice


@pytest.mark.parametrize(
    "mangle", [lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"), lambda t: "x" + t, lambda t: "nonsense"]
)
def test_tampered_token_gets_a_clear_404(mangle, acme, client):
    invoice = open_invoice(acme)
    token = mangle(paylinks.pay_token(invoice))
    for path in [f"/pay/{token}/", f"/pay/{token}/pdf/"]:
        response = client.get(path)
        assert response.status_code == 404
        assert "This payment link is not valid" in response.content.decode()
    assert client.post(f"/pay/{token}/checkout/").status_code == 404


def test_token_signed_for_another_purpose_is_refused(acme, other_workspace, client):
    from django.core import signing

    invoice = open_invoice(acme)
    forged = signing.Signer(salt="another.salt").sign_object({"i": invoice.pk, "w": invoice.workspace_id})
    assert client.get(f"/pay/{forged}/").status_code == 404


def test_pay_by_card_creates_one_checkout_session_on_the_connected_account(fake_stripe, use_stripe, acme, client):
    use_stripe(fake_stripe.url)
    invoice = open_invoice(acme, amount_minor=120000)
    first = client.post(f"{pay_path(invoice)}checkout/")
    second = client.post(f"{pay_path(invoice)}checkout/")  # a double click
    [session] = fake_stripe.of_type("checkout.session")
    assert first.status_code == 303 and first["Location"] == second["Location"] == session["url"]
    request = fake_stripe.requests_to("POST", "/v1/checkout/sessions")[0]
    assert request.account == ACCOUNT
    assert request.idempotency_key == f"invoice-{invoice.pk}-checkout-120000"
    params = request.params
    assert params["mode"] == "payment"
    assert params["line_items"]["0"]["price_data"] == {
        "currency": "gbp",
        "unit_amount": "120000",
        "product_data": {"name": f"Invoice {invoice.number} from Northwind Advisory"},
    }
    metadata = {"invoice_id": str(invoice.pk), "workspace_id": str(invoice.workspace_id)}
    assert params["metadata"] == params["payment_intent_data"]["metadata"] == metadata
    assert params["success_url"] == paylinks.pay_url(invoice) + "?paid=1"
    assert params["cancel_url"] == paylinks.pay_url(invoice)
    assert params["customer_email"] == "ap@acme.example"


def test_coming_back_from_checkout_before_the_webhook_says_it_is_being_confirmed(fake_stripe, use_stripe, acme, client):
    use_stripe(fake_stripe.url)
    invoice = open_invoice(acme)
    assert "being confirmed" in client.get(pay_path(invoice) + "?paid=1").content.decode()


def test_checkout_failure_brings_the_client_back_with_a_message(fake_stripe, use_stripe, acme, client):
    use_stripe(fake_stripe.url)
    invoice = open_invoice(acme)
    fake_stripe.script("POST", "/v1/checkout/sessions", "status", status=500)
    response = client.post(f"{pay_path(invoice)}checkout/", follow=True)
    assert response.redirect_chain[-1][0] == pay_path(invoice)
    assert "Card payment is unavailable right now" in response.content.decode()


def test_paid_invoice_says_thank_you(fake_stripe, use_stripe, acme, client):
    use_stripe(fake_stripe.url)
    invoice = open_invoice(acme)
    services.record_payment(invoice=invoice, amount_minor=invoice.total_minor, method="bank_transfer")
    page = client.get(pay_path(invoice)).content.decode()
    assert "This invoice is paid. Thank you!" in page and "by card" not in page
    response = client.post(f"{pay_path(invoice)}checkout/", follow=True)
    assert "nothing left to pay" in response.content.decode()
    assert fake_stripe.requests == []


def test_without_stripe_the_pay_page_shows_the_bank_transfer_instructions(acme, client):
    profile = services.profile_for(acme.workspace)
    profile.payment_instructions = "Sort code 00-00-00, account 12345678"
    profile.save()
    invoice = open_invoice(acme)
    page = client.get(pay_path(invoice)).content.decode()
    assert "Pay by bank transfer" in page and "Sort code 00-00-00" in page
    assert "by card" not in page and "checkout" not in page


def test_void_invoice_has_nothing_to_pay(acme, client):
    invoice = open_invoice(acme)
    services.void_invoice(invoice=invoice, actor=None)
    assert "nothing to pay" in client.get(pay_path(invoice)).content.decode()


def test_draft_invoices_have_no_pay_page(acme, client):
    from decimal import Decimal

    draft = services.create_invoice(client=acme, lines=[("x", Decimal("1"), 100)])
    assert client.get(pay_path(draft)).status_code == 404
