"""The billing section of the client page: the client's payment history and what they owe."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from billing import refunds, services
from billing.models import Invoice, Payment
from billing.selectors import client_section
from retainers.models import Membership
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def frozen_time():
    with time_machine.travel(datetime(2026, 3, 10, 12, 0, tzinfo=ZoneInfo("UTC")), tick=False):
        yield


@pytest.fixture
def acme(workspace):
    return factories.ClientFactory(workspace=workspace, name="Acme Corp", billing_email="ap@acme.example")


def page(client, workspace, acme) -> str:
    """The billing section of the client page's Billing tab (the other apps test their own sections)."""
    kwargs = {"workspace_slug": workspace.slug, "client_id": acme.pk}
    response = client.get(reverse("dashboard:client_billing", kwargs=kwargs))
    assert response.status_code == 200
    html = response.content.decode()
    start = html.index('<section id="client-billing"')
    return html[start : html.index("</section>", start)]


def manual_invoice(client, amount_minor: int, *, issue: bool = True) -> Invoice:
    invoice = services.create_invoice(client=client, lines=[("Work", D("1"), amount_minor)])
    return services.issue_invoice(invoice=invoice, actor=None) if issue else invoice


def test_the_client_pages_billing_tab_shows_billings_section(owner_client, workspace, acme):
    manual_invoice(acme, 30000)
    response = owner_client.get(reverse("dashboard:client_billing", args=[workspace.slug, acme.pk]))
    used = [t.name for t in response.templates]
    assert "billing/_client_section.html" in used and "delivery/_client_section.html" not in used
    shown, fresh = response.context["billing_section"], client_section(response.wsgi_request, acme)
    assert [list(shown[k]) for k in ("invoices", "payments")] == [list(fresh[k]) for k in ("invoices", "payments")]
    assert [shown[k] for k in ("client", "totals", "card", "held")] == [
        fresh[k] for k in ("client", "totals", "card", "held")
    ]


def test_section_shows_invoices_payments_refunds_failures_credit_notes_and_what_is_owed(owner_client, workspace, acme):
    factories.make_retainer(workspace=workspace, client=acme, price_minor=200000)
    factories.make_retainer(workspace=workspace, client=acme, name="US work", currency="USD", price_minor=50000)
    overdue, usd = Invoice.objects.filter(
        pk__in=services.bill_workspace(workspace_id=workspace.pk, as_of=date(2026, 1, 1)).invoices
    ).order_by("currency")
    paid = manual_invoice(acme, 30000)
    payment = services.record_payment(invoice=paid, amount_minor=30000, method="bank_transfer", note="Ref 77")
    refunds.refund_payment(payment=payment, amount_minor=5000, actor=None, reason="Goodwill")  # not asked back
    Payment.objects.create(
        workspace=workspace, invoice=overdue, client=acme, status="failed", method="card", amount_minor=200000,
        currency="GBP", stripe_id="pi_declined", failure_message="Your card was declined.",
    )  # fmt: skip
    note = services.create_credit_note(invoice=overdue, amount_minor=20000, reason="Late start", actor=None)

    body = page(owner_client, workspace, acme)
    section = body[body.index('id="client-billing"') :]
    for expected in (
        overdue.number, paid.number, note.number, f"credits {overdue.number}", ">Overdue</span>", ">Paid</span>",
        ">Credit note</span>", ">Refund</span>", ">Failed</span>", "Your card was declined.", "Ref 77",
        usd.number, ">Refunded</span>",
        "£1,800.00", "$500.00",  # outstanding per currency: £2,000 less the £200 credit (the refund is not owed)
        "£1,800.00 overdue", "$500.00 overdue",
        f"/w/{workspace.slug}/invoices/?client={acme.pk}", f"/w/{workspace.slug}/invoices/new/?client={acme.pk}",
    ):  # fmt: skip
        assert expected in section, expected


def test_section_shows_the_newest_twenty_and_pages_to_the_rest(owner_client, workspace, acme):
    invoices = [manual_invoice(acme, 1000 + n) for n in range(22)]
    body = page(owner_client, workspace, acme)
    assert invoices[-1].number in body and invoices[2].number in body
    assert invoices[1].number not in body and invoices[0].number not in body
    billing_tab = reverse("dashboard:client_billing", args=[workspace.slug, acme.pk])
    assert f'href="{billing_tab}?page=2"' in body  # the next page, in the Billing tab's own URL
    assert "Filter and export the invoices of Acme Corp" in body
    html = owner_client.get(billing_tab, {"page": "2"}).content.decode()
    rest = html[html.index('<section id="client-billing"') :]
    assert invoices[1].number in rest and invoices[0].number in rest and invoices[2].number not in rest


def test_section_is_empty_but_helpful_for_a_new_client(owner_client, workspace, acme):
    body = page(owner_client, workspace, acme)
    assert "No invoices yet." in body and "No payments yet." in body and "New invoice" in body


def test_section_leaves_out_other_clients(owner_client, workspace, acme):
    other = factories.ClientFactory(workspace=workspace, name="Globex")
    theirs = manual_invoice(other, 100)
    services.record_payment(invoice=theirs, amount_minor=100, method="bank_transfer", note="Globex paid")
    body = page(owner_client, workspace, acme)
    assert theirs.number not in body and "Globex paid" not in body


def _bulk_history(workspace, client, count: int) -> None:
    """`count` invoices with a payment, a failed attempt and a credit note each: a few queries in all."""
    invoices = Invoice.objects.bulk_create(
        Invoice(
            workspace=workspace, client=client, number=f"2025-{n:04d}", status="open", currency="GBP",
            issued_on=date(2025, 1, 1) + timedelta(days=n), due_on=date(2025, 1, 15) + timedelta(days=n),
            subtotal_minor=10000, total_minor=10000, paid_minor=4000,
        )
        for n in range(count)
    )  # fmt: skip
    Invoice.objects.bulk_create(
        Invoice(
            workspace=workspace, client=client, kind="credit_note", credit_for=invoice, number=f"2025-C{n:04d}",
            status="paid", currency="GBP", issued_on=invoice.issued_on, subtotal_minor=-100, total_minor=-100,
        )
        for n, invoice in enumerate(invoices)
    )  # fmt: skip
    Payment.objects.bulk_create(
        Payment(
            workspace=workspace, invoice=invoice, client=client, status=status, method="card", amount_minor=4000,
            currency="GBP", failure_message="Declined" if status == "failed" else "", created_at=timezone.now(),
        )
        for invoice in invoices
        for status in ("succeeded", "failed")
    )  # fmt: skip


@pytest.mark.parametrize("count", [3, 60])
def test_section_makes_the_same_few_queries_however_much_history(
    workspace, acme, alice, count, django_assert_num_queries
):
    _bulk_history(workspace, acme, count)
    request = RequestFactory().get("/")
    request.user = alice
    request.membership = Membership.objects.select_related("workspace").get(workspace=workspace, user=alice)
    request.workspace = request.membership.workspace
    # invoices and payments (each a count and a page), totals, the saved card, held first invoices;
    # rendering adds none
    with django_assert_num_queries(7):
        context = client_section(request, acme)
        html = render_to_string("billing/_client_section.html", {"section": context, "request": request})
    assert len(context["invoices"]) == len(context["payments"]) == min(20, 2 * count)
    assert html.count("<tr>") == 2 + 2 * min(20, 2 * count)  # two header rows
    assert "No card on file: the client can save one in the portal." in html
    assert ("?page=2" in html) == (count == 60) and ("?payments=2" in html) == (count == 60)
