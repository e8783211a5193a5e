"""Pay links expire: one works for PAY_LINK_DAYS days from the day it was made, then opens a page
that offers to email a new one to the invoice's billing address (a few times an hour at most).
Members email a new link from the invoice page."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
import time_machine
from django.core import signing
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse

from billing import paylinks
from billing.models import Invoice
from retainers.models import Email
from tests.billing.conftest import open_invoice
from tests.retainers.test_security import csp_problems

pytestmark = pytest.mark.django_db

MADE = datetime(2026, 3, 10, 9, 0)


def pay_path(token: str, *rest: str) -> str:
    return f"/pay/{token}/" + "".join(f"{part}/" for part in rest)


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def invoice(acme) -> Invoice:
    invoice = open_invoice(acme, amount_minor=120000)
    Invoice.objects.filter(pk=invoice.pk).update(pdf=default_storage.save("invoices/t.pdf", ContentFile(b"%PDF-1.4")))
    invoice.refresh_from_db()
    return invoice


def made_on_march_10(invoice: Invoice) -> str:
    with time_machine.travel(MADE, tick=False):
        return paylinks.pay_token(invoice)


def test_a_link_is_the_same_all_day_and_opens_the_pay_page_for_sixty_days(settings, invoice, client):
    assert settings.PAY_LINK_DAYS == 60
    token = made_on_march_10(invoice)
    with time_machine.travel(MADE + timedelta(hours=14), tick=False):  # 23:00 the same day
        assert paylinks.pay_token(invoice) == token  # the PDF's, the email's and Checkout's link are one
    with time_machine.travel(MADE + timedelta(days=60), tick=False):
        response = client.get(pay_path(token))
        assert "Pay by bank transfer" in response.content.decode() or "Amount due" in response.content.decode()
        assert client.get(pay_path(token, "pdf")).headers["Content-Type"] == "application/pdf"
    with time_machine.travel(MADE + timedelta(days=61), tick=False):
        response = client.get(pay_path(token))
        assert response.status_code == 200
        page = response.content.decode()
        assert "This payment link has expired" in page and "Amount due" not in page
        assert f"invoice {invoice.number} from Northwind Advisory" in page
        assert "a••@acme.example" in page and "ap@acme.example" not in page  # masked: the holder may not be the client
        assert "Email me a new link" in page
        assert csp_problems(response) == []
        # The PDF and the card button of an expired link lead to that page, not to the invoice.
        assert client.get(pay_path(token, "pdf")).url == pay_path(token)
        assert client.post(pay_path(token, "checkout")).url == pay_path(token)


def test_a_link_from_before_links_expired_counts_as_expired(invoice, client):
    legacy = signing.Signer(salt=paylinks.PAY_SALT).sign_object(
        {"i": invoice.pk, "w": invoice.workspace_id}, compress=True
    )
    assert "This payment link has expired" in client.get(pay_path(legacy)).content.decode()
    assert paylinks.invoice_for_token(legacy) is None


def test_an_expired_link_emails_a_new_one_that_works(invoice, client, django_capture_on_commit_callbacks):
    token = made_on_march_10(invoice)
    with time_machine.travel(MADE + timedelta(days=90), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(pay_path(token, "new-link"), follow=True)
        assert "We emailed a new link to a••@acme.example" in response.content.decode()
        [email] = Email.objects.filter(to="ap@acme.example")
        assert email.subject == f"A new link to pay invoice {invoice.number} from Northwind Advisory"
        assert "The link works for 60 days" in email.body_text
        assert "How to pay £" in email.body_html and ">Pay £" not in email.body_html  # no card without Stripe
        [link] = re.findall(r"https?://\S+/pay/\S+/", email.body_text)
        fresh = link.rsplit("/pay/", 1)[1].rstrip("/")
        assert fresh != token
        assert "Amount due" in client.get(pay_path(fresh)).content.decode()


def test_new_links_are_limited_per_invoice(invoice, client):
    token = made_on_march_10(invoice)
    for minute in range(3):  # a minute apart: the outbox sends one email per invoice and minute
        with time_machine.travel(MADE + timedelta(days=90, minutes=minute), tick=False):
            assert client.post(pay_path(token, "new-link")).status_code == 302
    with time_machine.travel(MADE + timedelta(days=90, minutes=3), tick=False):
        refused = client.post(pay_path(token, "new-link"))
    assert refused.status_code == 429
    assert "Too many requests" in refused.content.decode() and int(refused["Retry-After"]) > 0
    assert Email.objects.filter(to="ap@acme.example").count() == 3


def test_an_expired_link_of_a_paid_invoice_offers_nothing(invoice, client):
    token = made_on_march_10(invoice)
    Invoice.objects.filter(pk=invoice.pk).update(status=Invoice.Status.PAID, paid_minor=invoice.total_minor)
    with time_machine.travel(MADE + timedelta(days=61), tick=False):
        page = client.get(pay_path(token)).content.decode()
        assert "nothing left to pay" in page and "Email me a new link" not in page
        response = client.post(pay_path(token, "new-link"), follow=True)
        assert "This invoice has nothing left to pay." in response.content.decode()
    assert not Email.objects.exists()


def test_a_member_emails_a_new_pay_link_from_the_invoice_page(
    invoice, workspace, member_client, django_capture_on_commit_callbacks
):
    detail = reverse("billing:invoice_detail", args=[workspace.slug, invoice.pk])
    assert "Email a new pay link" in member_client.get(detail).content.decode()
    url = reverse("billing:invoice_pay_link", args=[workspace.slug, invoice.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = member_client.post(url, follow=True)
    assert f"A new pay link for {invoice.number} is on its way to ap@acme.example." in response.content.decode()
    [email] = Email.objects.filter(to="ap@acme.example")
    assert paylinks.pay_url(invoice) in email.body_text


def test_members_new_pay_links_are_limited_and_scoped(
    invoice, workspace, other_workspace, member_client, outsider_client
):
    url = reverse("billing:invoice_pay_link", args=[workspace.slug, invoice.pk])
    for minute in range(5):
        with time_machine.travel(MADE + timedelta(minutes=minute), tick=False):
            assert member_client.post(url).status_code == 302
    with time_machine.travel(MADE + timedelta(minutes=6), tick=False):
        assert member_client.post(url).status_code == 429
    assert Email.objects.count() == 5
    theirs = reverse("billing:invoice_pay_link", args=[other_workspace.slug, invoice.pk])
    assert outsider_client.post(theirs).status_code == 404
