"""The consultant's billing pages: the invoices list, one invoice and its actions, invoices by
hand and the billing settings. Invoices are made through the real services."""

from __future__ import annotations

import io
import re
from datetime import date, datetime
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from billing import services
from billing.models import BillingProfile, Invoice, Payment, StripeAccount
from retainers.models import Email, Workspace
from tests import factories
from tests.retainers.test_security import FieldBlocks, csp_problems

pytestmark = pytest.mark.django_db

TODAY = date(2026, 3, 10)
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def frozen_time():
    with time_machine.travel(datetime(2026, 3, 10, 12, 0, tzinfo=ZoneInfo("UTC")), tick=False):
        yield


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def url(workspace: Workspace, name: str, **kwargs: object) -> str:
    return reverse(f"billing:{name}", kwargs={"workspace_slug": workspace.slug, **kwargs})


def manual_invoice(client, amount_minor: int = 150000, *, issue: bool = True, description: str = "Workshop") -> Invoice:
    # In the workspace's currency, as this book is written (by default one is in the client's: Globex's is USD).
    invoice = services.create_invoice(
        client=client, lines=[(description, D("1"), amount_minor)], currency=client.workspace.currency
    )
    return services.issue_invoice(invoice=invoice, actor=None) if issue else invoice


def retainer_invoice(workspace, client, *, as_of: date = date(2026, 1, 1), **terms) -> Invoice:
    factories.make_retainer(workspace=workspace, client=client, **terms)
    [invoice_id] = services.bill_workspace(workspace_id=workspace.pk, as_of=as_of).invoices
    return Invoice.objects.get(pk=invoice_id)


def text(response) -> str:
    return response.content.decode()


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


@pytest.fixture
def acme(workspace):
    return factories.ClientFactory(workspace=workspace, name="Acme Corp", billing_email="ap@acme.example")


@pytest.fixture
def globex(workspace):
    return factories.ClientFactory(workspace=workspace, name="Globex Ltd", billing_email="")


@pytest.fixture
def invoice(acme) -> Invoice:
    """An open invoice of £1,500.00 issued today, due in 14 days."""
    return manual_invoice(acme, 150000)


# --- The invoices page ------------------------------------------------------------------------


@pytest.fixture
def book(workspace, acme, globex):
    """A little of everything: overdue (GBP and USD), open, paid, draft, void, and a credit note."""
    overdue = retainer_invoice(workspace, acme)  # issued 1 Jan, due 15 Jan: overdue on 10 March
    usd = retainer_invoice(workspace, globex, currency="USD", price_minor=99900)
    current = manual_invoice(globex, 50000)
    paid = manual_invoice(acme, 20000)
    services.record_payment(invoice=paid, amount_minor=20000, method="bank_transfer")
    draft = manual_invoice(acme, 7000, issue=False)
    void = manual_invoice(globex, 3000)
    services.void_invoice(invoice=void, actor=None)
    note = services.create_credit_note(invoice=overdue, amount_minor=10000, reason="Late start", actor=None)
    return {
        "overdue": overdue, "usd": usd, "current": current, "paid": paid, "draft": draft, "void": void, "note": note,
    }  # fmt: skip


def listed(response) -> list[str]:
    """The invoice links of the rows, in order."""
    return re.findall(r'<th scope="row"><a href="/w/[^/]+/invoices/\d+/">([^<]+)</a>', text(response))


def test_invoice_list_shows_every_invoice_newest_first_with_status_badges(owner_client, workspace, book):
    response = owner_client.get(url(workspace, "invoice_list"))
    assert response.status_code == 200
    body = text(response)
    assert listed(response)[0] == f"Draft #{book['draft'].pk}"  # drafts have no date yet: on top
    assert len(listed(response)) == 7
    for badge in ("Overdue", "Open", "Paid", "Draft", "Void", "Credit note"):
        assert f">{badge}</span>" in body, badge
    assert f"credits {book['overdue'].number}" in body


def test_invoice_list_totals_outstanding_and_overdue_per_currency(owner_client, workspace, book):
    response = owner_client.get(url(workspace, "invoice_list"))
    totals = {t["currency"]: t for t in response.context["totals"]}
    assert set(totals) == {"GBP", "USD"}
    # GBP: £2,000 retainer less a £100 credit note (overdue) + £500 current open one.
    assert totals["GBP"]["outstanding"] == 190000 + 50000
    assert totals["GBP"]["overdue"] == 190000
    assert totals["GBP"]["open_count"] == 2 and totals["GBP"]["overdue_count"] == 1
    assert totals["USD"]["outstanding"] == totals["USD"]["overdue"] == 99900
    body = text(response)
    assert "£2,400.00" in body and "£1,900.00" in body and "$999.00" in body


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"status": "overdue"}, {"overdue", "usd"}),
        # Each status is what its badge says (Invoice.state); "unpaid" gathers open, part paid and overdue.
        ({"status": "open"}, {"current"}),
        ({"status": "unpaid"}, {"overdue", "usd", "current"}),
        ({"status": "paid"}, {"paid"}),
        ({"status": "draft"}, {"draft"}),
        ({"status": "void"}, {"void"}),
        ({"status": "credit_note"}, {"note"}),
        ({"q": "globex"}, {"usd", "current", "void"}),
        ({"issued_from": "2026-03-10"}, {"current", "paid", "void", "note"}),
        ({"issued_to": "2026-01-31"}, {"overdue", "usd"}),
    ],
)
def test_invoice_list_filters(owner_client, workspace, book, query, expected):
    response = owner_client.get(url(workspace, "invoice_list"), query)
    assert response.status_code == 200
    assert sorted(listed(response)) == sorted(str(book[key]) for key in expected)


def test_invoice_list_filters_by_client_and_number(owner_client, workspace, book, acme):
    response = owner_client.get(url(workspace, "invoice_list"), {"client": acme.pk, "status": "unpaid"})
    assert listed(response) == [book["overdue"].number]
    response = owner_client.get(url(workspace, "invoice_list"), {"q": book["paid"].number})
    assert listed(response) == [book["paid"].number]


def test_totals_follow_the_filters(owner_client, workspace, book, globex):
    response = owner_client.get(url(workspace, "invoice_list"), {"client": globex.pk})
    totals = {t["currency"]: t["outstanding"] for t in response.context["totals"]}
    assert totals == {"GBP": 50000, "USD": 99900}


def test_invalid_filters_are_refused_and_say_so(owner_client, workspace, book, other_workspace):
    """Once ignored (all seven invoices listed as if filtered): now the errors stand in for the rows."""
    foreign = factories.ClientFactory(workspace=other_workspace)
    response = owner_client.get(url(workspace, "invoice_list"), {"client": foreign.pk, "issued_from": "someday"})
    assert response.status_code == 200
    assert len(listed(response)) == 0
    assert text(response).count("has-error") == 2
    assert "Check the filters" in text(response)


@pytest.mark.parametrize(
    ("typed", "error"),
    [("2026-02-30", "Enter a valid date."), ("0001-01-01", "Pick a date from 1 January 1970 to 31 December 2199.")],
)
def test_an_invalid_date_filter_is_an_error_on_the_page_in_the_rows_and_in_the_export(
    owner_client, workspace, book, typed, error
):
    response = owner_client.get(url(workspace, "invoice_list"), {"issued_from": typed})
    page = FieldBlocks()
    page.feed(text(response))
    assert page.block_for("issued_from")["errors"] == [error]
    assert listed(response) == [] and f"Issued from: {error}" in text(response)
    rows = owner_client.get(url(workspace, "invoice_list"), {"issued_from": typed}, **HTMX)  # a filter changed
    assert f"Issued from: {error}" in text(rows) and 'role="alert"' in text(rows)

    export = owner_client.get(url(workspace, "invoice_export"), {"issued_from": typed, "status": "open"})
    assert export.status_code == 302 and not export.streaming
    assert export.url == url(workspace, "invoice_list") + f"?issued_from={typed}&status=open"
    shown = owner_client.get(export.url)
    assert "Nothing was exported: a filter is not valid." in text(shown)
    assert f"Issued from: {error}" in text(shown)


def test_invoice_list_pages_by_fifty(owner_client, workspace, acme):
    Invoice.objects.bulk_create(
        Invoice(
            workspace=workspace, client=acme, number=f"2025-{n:04d}", status="open", currency="GBP",
            issued_on=date(2025, 12, 1), due_on=date(2025, 12, 15), subtotal_minor=100, total_minor=100,
        )
        for n in range(1, 52)
    )  # fmt: skip
    first = owner_client.get(url(workspace, "invoice_list"))
    assert len(listed(first)) == 50 and listed(first)[0] == "2025-0051"
    assert "Page 1 of 2" in text(first)
    second = owner_client.get(url(workspace, "invoice_list"), {"page": 2})
    assert listed(second) == ["2025-0001"]
    assert {t["currency"]: t["outstanding"] for t in second.context["totals"]} == {"GBP": 5100}


def test_invoice_list_query_count_does_not_grow_with_rows(owner_client, workspace, acme, django_assert_max_num_queries):
    for n in range(30):
        manual_invoice(acme, 1000 + n)
    with django_assert_max_num_queries(12):
        owner_client.get(url(workspace, "invoice_list"))


def test_htmx_gets_only_the_rows(owner_client, workspace, book):
    response = owner_client.get(url(workspace, "invoice_list"), {"status": "paid"}, **HTMX)
    body = text(response)
    assert response.status_code == 200
    assert "<html" not in body and "<form" not in body
    assert book["paid"].number in body and "Export CSV" in body
    assert "status=paid" in body  # the export link follows the filters
    assert "HX-Request" in response.headers["Vary"]


def test_invoice_list_without_invoices_invites_to_write_one(owner_client, workspace):
    response = owner_client.get(url(workspace, "invoice_list"))
    assert "No invoices yet" in text(response)


# --- One invoice ------------------------------------------------------------------------


def test_detail_shows_header_lines_totals_payments_and_credit_notes(owner_client, workspace, acme):
    profile = services.profile_for(workspace)
    profile.tax_rate_bp, profile.tax_label = 2000, "VAT"
    profile.save()
    invoice = retainer_invoice(workspace, acme, price_minor=150000)
    services.record_payment(invoice=invoice, amount_minor=30000, method="bank_transfer", note="Ref ACME-1")
    Payment.objects.create(
        workspace=workspace, invoice=invoice, client=acme, status="failed", method="card", amount_minor=150000,
        currency="GBP", stripe_id="pi_failed_1", failure_message="Your card was declined.",
    )  # fmt: skip
    note = services.create_credit_note(invoice=invoice, amount_minor=12000, reason="Two hours billed twice", actor=None)

    body = text(owner_client.get(url(workspace, "invoice_detail", invoice_id=invoice.pk)))
    for expected in (
        invoice.number, "Acme Corp", "1 January 2026", "15 January 2026", "1–31 Jan 2026",
        "Advisory retainer: 1–31 Jan 2026", "£1,500.00", "VAT (20%)", "£300.00", "£1,800.00",
        "Ref ACME-1", "Your card was declined.", ">Failed</span>", note.number, "Two hours billed twice",
        "£1,380.00",  # 1,800 - 300 paid - 120 credited
        ">Overdue</span>",
    ):  # fmt: skip
        assert expected in body, expected
    note_page = text(owner_client.get(url(workspace, "invoice_detail", invoice_id=note.pk)))
    assert f"Credit note {note.number}" in note_page
    assert url(workspace, "invoice_detail", invoice_id=invoice.pk) in note_page  # linked both ways
    assert "-£120.00" in note_page


def test_issue_a_draft(owner_client, workspace, acme, alice):
    draft = manual_invoice(acme, 42000, issue=False)
    response = owner_client.post(url(workspace, "invoice_issue", invoice_id=draft.pk), follow=True)
    draft.refresh_from_db()
    assert (draft.status, draft.number, draft.issued_on) == ("open", "2026-0001", TODAY)
    assert draft.due_on == date(2026, 3, 24)
    assert any("2026-0001 was issued" in m and "ap@acme.example" in m for m in messages_of(response))


def test_issuing_for_a_client_without_an_email_says_to_send_the_pdf(owner_client, workspace, globex):
    draft = manual_invoice(globex, 42000, issue=False)
    response = owner_client.post(url(workspace, "invoice_issue", invoice_id=draft.pk), follow=True)
    assert messages_of(response) == [
        "Invoice 2026-0001 was issued. The client has no billing email or contact: send its PDF yourself."
    ]


def test_issuing_an_issued_invoice_is_refused_and_changes_nothing(owner_client, workspace, invoice):
    response = owner_client.post(url(workspace, "invoice_issue", invoice_id=invoice.pk), follow=True)
    assert messages_of(response) == ["This invoice is already issued."]
    invoice.refresh_from_db()
    assert (invoice.number, invoice.status) == ("2026-0001", "open")


def test_partial_payment_keeps_the_invoice_open(owner_client, workspace, invoice, alice):
    response = owner_client.post(
        url(workspace, "invoice_record_payment", invoice_id=invoice.pk),
        {"amount": "1,000.50", "method": "bank_transfer", "note": "First half"},
        follow=True,
    )
    invoice.refresh_from_db()
    assert (invoice.status, invoice.paid_minor, invoice.balance_minor) == ("open", 100050, 49950)
    payment = Payment.objects.get(invoice=invoice)
    assert (payment.method, payment.note, payment.recorded_by) == ("bank_transfer", "First half", alice)
    assert messages_of(response) == ["Payment of £1,000.50 recorded; £499.50 is still due."]

    pay_url = url(workspace, "invoice_record_payment", invoice_id=invoice.pk)
    owner_client.post(pay_url, {"amount": "499.50", "method": "other"})
    invoice.refresh_from_db()
    assert (invoice.status, invoice.balance_minor) == ("paid", 0)


def test_payment_form_defaults_to_the_balance(owner_client, workspace, invoice):
    services.record_payment(invoice=invoice, amount_minor=50000, method="bank_transfer")
    body = text(owner_client.get(url(workspace, "invoice_detail", invoice_id=invoice.pk)))
    assert 'value="1000.00"' in body


@pytest.mark.parametrize(
    ("amount", "error"),
    [
        ("1500.01", "more than the invoice&#x27;s balance"),
        ("0", "above zero"),
        ("-5", "above zero"),
        ("ten pounds", "Enter an amount in GBP, like 1,500.00"),
        ("10.005", "2 decimal places at most"),
        ("", "This field is required"),
    ],
)
def test_payment_refusals_show_next_to_the_amount_and_change_nothing(owner_client, workspace, invoice, amount, error):
    response = owner_client.post(
        url(workspace, "invoice_record_payment", invoice_id=invoice.pk), {"amount": amount, "method": "bank_transfer"}
    )
    assert response.status_code == 200
    assert error in text(response)
    assert response.context["payment_form"].errors["amount"]
    invoice.refresh_from_db()
    assert (invoice.status, invoice.paid_minor) == ("open", 0)
    assert not Payment.objects.exists()


def test_payment_form_asks_for_the_day_received_defaulting_to_today(owner_client, workspace, invoice):
    body = text(owner_client.get(url(workspace, "invoice_detail", invoice_id=invoice.pk)))
    field = re.search(r'<input type="date" name="received_on"[^>]*>', body)
    assert field is not None
    assert 'value="2026-03-10"' in field[0] and 'max="2026-03-10"' in field[0] and 'min="2026-03-10"' in field[0]


def test_a_transfer_recorded_days_later_keeps_the_day_it_arrived(owner_client, workspace, acme):
    with time_machine.travel(datetime(2026, 3, 2, 12, 0, tzinfo=ZoneInfo("UTC")), tick=False):
        invoice = manual_invoice(acme, 150000)
    owner_client.post(
        url(workspace, "invoice_record_payment", invoice_id=invoice.pk),
        {"amount": "1500", "method": "bank_transfer", "received_on": "2026-03-05"},
    )
    payment = Payment.objects.get(invoice=invoice)
    assert payment.received_on == date(2026, 3, 5)
    body = text(owner_client.get(url(workspace, "invoice_detail", invoice_id=invoice.pk)))
    assert "5 Mar 2026" in body
    from billing.pdf import invoice_context

    [settlement] = invoice_context(Invoice.objects.get(pk=invoice.pk))["settlements"]
    assert settlement.on == date(2026, 3, 5)


@pytest.mark.parametrize(
    ("received_on", "error"),
    [
        ("2026-03-11", "cannot be received in the future"),
        ("2026-03-09", "The invoice was issued on 10 March 2026"),
        ("yesterday", "Enter a valid date"),
        ("9999-99-99", "Enter a valid date"),
    ],
)
def test_payment_day_refusals_show_next_to_the_field_and_change_nothing(
    owner_client, workspace, invoice, received_on, error
):
    response = owner_client.post(
        url(workspace, "invoice_record_payment", invoice_id=invoice.pk),
        {"amount": "100", "method": "bank_transfer", "received_on": received_on},
    )
    assert response.status_code == 200
    assert error in text(response)
    assert response.context["payment_form"].errors["received_on"]
    assert not Payment.objects.exists()


def test_a_german_workspace_types_payments_with_a_decimal_comma(owner_client, workspace, invoice):
    Workspace.objects.filter(pk=workspace.pk).update(locale="de_DE")
    body = text(owner_client.get(url(workspace, "invoice_detail", invoice_id=invoice.pk)))
    assert 'value="1500,00"' in body  # the balance, as a German reads it
    owner_client.post(
        url(workspace, "invoice_record_payment", invoice_id=invoice.pk),
        {"amount": "1.000,50", "method": "bank_transfer"},
    )
    assert Payment.objects.get(invoice=invoice).amount_minor == 100050


def test_payment_on_a_void_invoice_is_refused_as_a_message(owner_client, workspace, invoice):
    services.void_invoice(invoice=invoice, actor=None)
    response = owner_client.post(
        url(workspace, "invoice_record_payment", invoice_id=invoice.pk), {"amount": "10", "method": "bank_transfer"},
        follow=True,
    )  # fmt: skip
    assert messages_of(response) == ["Only an issued, not voided invoice can be paid."]
    assert not Payment.objects.exists()


def test_void_an_open_invoice(owner_client, workspace, invoice):
    response = owner_client.post(url(workspace, "invoice_void", invoice_id=invoice.pk), follow=True)
    invoice.refresh_from_db()
    assert invoice.status == "void" and invoice.voided_at is not None
    assert "2026-0001 was voided" in messages_of(response)[0]


def test_void_is_refused_once_paid_in_part(owner_client, workspace, invoice):
    services.record_payment(invoice=invoice, amount_minor=100, method="bank_transfer")
    response = owner_client.post(url(workspace, "invoice_void", invoice_id=invoice.pk), follow=True)
    assert "has payments" in messages_of(response)[0]
    invoice.refresh_from_db()
    assert invoice.status == "open" and invoice.voided_at is None


@pytest.mark.parametrize("action", ["invoice_void", "invoice_mark_uncollectible"])
def test_void_or_uncollectible_is_refused_while_a_card_charge_is_in_flight(owner_client, workspace, invoice, action):
    Payment.objects.create(
        workspace=workspace, invoice=invoice, client=invoice.client, status=Payment.Status.PENDING,
        method=Payment.Method.CARD, amount_minor=invoice.total_minor, currency=invoice.currency, stripe_id="pi_flight",
    )  # fmt: skip
    response = owner_client.post(url(workspace, action, invoice_id=invoice.pk), follow=True)
    assert "card payment of this invoice is in progress" in messages_of(response)[0]
    invoice.refresh_from_db()
    assert invoice.status == "open"


def test_mark_uncollectible_and_still_record_a_late_payment(owner_client, workspace, invoice):
    owner_client.post(url(workspace, "invoice_mark_uncollectible", invoice_id=invoice.pk))
    invoice.refresh_from_db()
    assert invoice.status == "uncollectible"
    pay_url = url(workspace, "invoice_record_payment", invoice_id=invoice.pk)
    owner_client.post(pay_url, {"amount": "1500", "method": "other"})
    invoice.refresh_from_db()
    assert invoice.status == "paid"


def test_mark_uncollectible_is_refused_for_a_paid_invoice(owner_client, workspace, invoice):
    services.record_payment(invoice=invoice, amount_minor=150000, method="bank_transfer")
    response = owner_client.post(url(workspace, "invoice_mark_uncollectible", invoice_id=invoice.pk), follow=True)
    assert messages_of(response) == ["Only an open invoice can be marked uncollectible."]
    invoice.refresh_from_db()
    assert invoice.status == "paid"


def test_credit_note_reduces_what_the_invoice_asks_for(owner_client, workspace, acme):
    profile = services.profile_for(workspace)
    profile.tax_rate_bp = 2000
    profile.save()
    invoice = manual_invoice(acme, 150000)  # £1,500 + 20% = £1,800
    credit_url = url(workspace, "credit_note_create", invoice_id=invoice.pk)
    response = owner_client.post(credit_url, {"amount": "600", "reason": "Scope cut"}, follow=True)
    note = Invoice.objects.get(kind="credit_note")
    assert (note.total_minor, note.subtotal_minor, note.tax_minor) == (-60000, -50000, -10000)
    assert (note.credit_for, note.number, note.memo) == (invoice, "2026-0002", "Scope cut")
    invoice.refresh_from_db()
    assert (invoice.credited_minor, invoice.balance_minor, invoice.status) == (60000, 120000, "open")
    assert messages_of(response) == ["Credit note 2026-0002 for £600.00 was issued against 2026-0001."]
    # What is left to credit is the default; crediting it all settles the invoice.
    assert 'value="1200.00"' in text(owner_client.get(url(workspace, "invoice_detail", invoice_id=invoice.pk)))
    owner_client.post(credit_url, {"amount": "1200", "reason": "Cancelled"})
    invoice.refresh_from_db()
    assert (invoice.balance_minor, invoice.status) == (0, "paid")


@pytest.mark.parametrize(
    ("data", "field", "error"),
    [
        ({"amount": "1500.01", "reason": "Too much"}, "amount", "at most what is left to credit"),
        ({"amount": "0", "reason": "Nothing"}, "amount", "above zero"),
        ({"amount": "100", "reason": "   "}, "reason", "This field is required"),
    ],
)
def test_credit_note_refusals_change_nothing(owner_client, workspace, invoice, data, field, error):
    response = owner_client.post(url(workspace, "credit_note_create", invoice_id=invoice.pk), data)
    assert response.status_code == 200
    assert error in " ".join(response.context["credit_form"].errors[field])
    assert not Invoice.objects.filter(kind="credit_note").exists()
    invoice.refresh_from_db()
    assert invoice.credited_minor == 0


def test_credit_note_on_a_draft_is_refused(owner_client, workspace, acme):
    draft = manual_invoice(acme, issue=False)
    response = owner_client.post(
        url(workspace, "credit_note_create", invoice_id=draft.pk), {"amount": "10", "reason": "x"}, follow=True
    )
    assert messages_of(response) == ["Credit notes are for issued invoices."]
    assert not Invoice.objects.filter(kind="credit_note").exists()


def test_refund_a_bank_transfer_records_it_and_is_not_asked_back(owner_client, workspace, invoice):
    payment = services.record_payment(invoice=invoice, amount_minor=150000, method="bank_transfer")
    response = owner_client.post(
        url(workspace, "payment_refund", invoice_id=invoice.pk, payment_id=payment.pk),
        {f"refund-{payment.pk}-amount": "500"},
        follow=True,
    )
    refund = Payment.objects.get(kind="refund")
    assert (refund.amount_minor, refund.status) == (50000, "succeeded")
    invoice.refresh_from_db()
    # The balance reopens for display, but what the consultant refunded is not owed (dunning skips it).
    assert (invoice.paid_minor, invoice.refunded_minor, invoice.status) == (100000, 50000, "paid")
    assert (invoice.balance_minor, invoice.owed_minor, invoice.state(on=workspace.today())) == (50000, 0, "refunded")
    assert any("£500.00" in m for m in messages_of(response))


def test_refund_of_more_than_is_left_is_refused_next_to_the_amount(owner_client, workspace, invoice):
    payment = services.record_payment(invoice=invoice, amount_minor=50000, method="bank_transfer")
    refund_url = url(workspace, "payment_refund", invoice_id=invoice.pk, payment_id=payment.pk)
    owner_client.post(refund_url, {f"refund-{payment.pk}-amount": "300", f"refund-{payment.pk}-reason": "Overpaid"})
    response = owner_client.post(refund_url, {f"refund-{payment.pk}-amount": "200.01"})
    assert response.status_code == 200
    assert "at most £200.00" in text(response) and "<details open>" in text(response)
    assert Payment.objects.filter(kind="refund").count() == 1
    invoice.refresh_from_db()
    assert invoice.paid_minor == 20000
    # What is left is the default, and the reason stays with the refund.
    assert 'value="200.00"' in text(owner_client.get(url(workspace, "invoice_detail", invoice_id=invoice.pk)))
    assert Payment.objects.get(kind="refund").note == "Overpaid"
    assert Payment.objects.get(kind="refund").refund_of == payment


def test_a_fully_refunded_payment_offers_no_more_refund(owner_client, workspace, invoice):
    payment = services.record_payment(invoice=invoice, amount_minor=50000, method="bank_transfer")
    refund_url = url(workspace, "payment_refund", invoice_id=invoice.pk, payment_id=payment.pk)
    owner_client.post(refund_url, {f"refund-{payment.pk}-amount": "500"})
    assert refund_url not in text(owner_client.get(url(workspace, "invoice_detail", invoice_id=invoice.pk)))
    response = owner_client.post(refund_url, {f"refund-{payment.pk}-amount": "1"}, follow=True)
    assert "not refunded yet" in messages_of(response)[0]
    assert Payment.objects.filter(kind="refund").count() == 1


def test_refund_of_a_failed_attempt_is_refused(owner_client, workspace, invoice, acme):
    failed = Payment.objects.create(
        workspace=workspace, invoice=invoice, client=acme, status="failed", method="card", amount_minor=150000,
        currency="GBP", failure_message="Declined",
    )  # fmt: skip
    response = owner_client.post(
        url(workspace, "payment_refund", invoice_id=invoice.pk, payment_id=failed.pk),
        {f"refund-{failed.pk}-amount": "10"},
        follow=True,
    )
    assert messages_of(response) == ["Only a payment that went through, and is not refunded yet, can be refunded."]
    assert not Payment.objects.filter(kind="refund").exists()


def test_refund_amount_errors_show_next_to_the_field(owner_client, workspace, invoice):
    payment = services.record_payment(invoice=invoice, amount_minor=50000, method="bank_transfer")
    response = owner_client.post(
        url(workspace, "payment_refund", invoice_id=invoice.pk, payment_id=payment.pk),
        {f"refund-{payment.pk}-amount": "abc"},
    )
    assert response.status_code == 200
    assert "has-error" in text(response) and "<details open>" in text(response)
    assert not Payment.objects.filter(kind="refund").exists()


def test_send_the_invoice_then_resend_it(owner_client, workspace, invoice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(url(workspace, "invoice_send", invoice_id=invoice.pk), follow=True)
    assert messages_of(response) == ["2026-0001 is on its way to ap@acme.example."]
    assert list(Email.objects.values_list("key", flat=True)) == [f"invoice-{invoice.pk}-issued"]
    invoice.refresh_from_db()
    assert invoice.sent_at is not None and invoice.pdf
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(url(workspace, "invoice_send", invoice_id=invoice.pk))
    keys = list(Email.objects.order_by("pk").values_list("key", flat=True))
    assert len(keys) == 2 and keys[1].startswith(f"invoice-{invoice.pk}-resent-")


def test_sending_without_a_recipient_is_refused(owner_client, workspace, globex):
    invoice = manual_invoice(globex)
    response = owner_client.post(url(workspace, "invoice_send", invoice_id=invoice.pk), follow=True)
    assert messages_of(response) == ["Globex Ltd has no billing email or contact to send it to."]
    assert not Email.objects.exists()


def test_sending_a_draft_is_refused(owner_client, workspace, acme):
    draft = manual_invoice(acme, issue=False)
    response = owner_client.post(url(workspace, "invoice_send", invoice_id=draft.pk), follow=True)
    assert messages_of(response) == ["Only an issued invoice that is not void can be emailed."]
    assert not Email.objects.exists()


def _download(client, workspace, invoice) -> bytes:
    response = client.get(url(workspace, "invoice_pdf", invoice_id=invoice.pk))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="{invoice.number}.pdf"'
    return b"".join(response.streaming_content)


def test_pdf_is_rendered_on_first_download_and_then_reused(owner_client, workspace, invoice):
    assert not invoice.pdf
    first = _download(owner_client, workspace, invoice)
    assert first.startswith(b"%PDF")
    invoice.refresh_from_db()
    stored = invoice.pdf.name
    assert stored
    second = _download(owner_client, workspace, invoice)
    invoice.refresh_from_db()
    assert invoice.pdf.name == stored and second == first


def test_pdf_of_a_paid_invoice_and_of_a_credit_note(owner_client, workspace, invoice):
    services.record_payment(invoice=invoice, amount_minor=150000, method="bank_transfer")
    invoice.refresh_from_db()
    assert _download(owner_client, workspace, invoice).startswith(b"%PDF")
    note = services.create_credit_note(invoice=invoice, amount_minor=100, reason="Rounding", actor=None)
    assert _download(owner_client, workspace, note).startswith(b"%PDF")


def test_a_draft_has_no_pdf_yet(owner_client, workspace, acme):
    draft = manual_invoice(acme, issue=False)
    response = owner_client.get(url(workspace, "invoice_pdf", invoice_id=draft.pk), follow=True)
    assert messages_of(response) == ["A draft has no PDF yet: issue it first."]
    draft.refresh_from_db()
    assert not draft.pdf


# --- Tenancy -----------------------------------------------------------------------------

INVOICE_URLS = [
    ("invoice_detail", "get"),
    ("invoice_pdf", "get"),
    ("invoice_issue", "post"),
    ("invoice_record_payment", "post"),
    ("invoice_void", "post"),
    ("invoice_mark_uncollectible", "post"),
    ("credit_note_create", "post"),
    ("invoice_send", "post"),
    ("payment_refund", "post"),
]


@pytest.mark.parametrize(("name", "method"), INVOICE_URLS)
def test_another_workspaces_invoice_is_404_on_every_invoice_url(owner_client, workspace, other_workspace, name, method):
    theirs = manual_invoice(factories.ClientFactory(workspace=other_workspace, billing_email="x@y.example"))
    payment = services.record_payment(invoice=theirs, amount_minor=100, method="bank_transfer")
    kwargs = {"invoice_id": theirs.pk, **({"payment_id": payment.pk} if name == "payment_refund" else {})}
    # Their invoice under our workspace's slug, and under theirs (where we are no member).
    for slug_of in (workspace, other_workspace):
        response = getattr(owner_client, method)(url(slug_of, name, **kwargs), {"amount": "1", "reason": "x"})
        assert response.status_code == 404, (name, slug_of)
    theirs.refresh_from_db()
    assert (theirs.status, theirs.paid_minor, theirs.credited_minor) == ("open", 100, 0)
    assert Payment.objects.count() == 1


def test_a_payment_of_another_invoice_is_404_on_refund(owner_client, workspace, acme):
    first, second = manual_invoice(acme), manual_invoice(acme)
    payment = services.record_payment(invoice=first, amount_minor=100, method="bank_transfer")
    refund_url = url(workspace, "payment_refund", invoice_id=second.pk, payment_id=payment.pk)
    response = owner_client.post(refund_url, {f"refund-{payment.pk}-amount": "1"})
    assert response.status_code == 404


def test_invoice_pages_are_for_members_too(member_client, workspace, invoice):
    assert member_client.get(url(workspace, "invoice_list")).status_code == 200
    assert member_client.get(url(workspace, "invoice_detail", invoice_id=invoice.pk)).status_code == 200


# --- A new invoice by hand --------------------------------------------------------------------


def _lines(*rows: tuple[str, str, str], total: int | None = None) -> dict[str, str]:
    data = {"lines-TOTAL_FORMS": str(total or len(rows)), "lines-INITIAL_FORMS": "0"}
    for n, (description, quantity, price) in enumerate(rows):
        data |= {f"lines-{n}-description": description, f"lines-{n}-quantity": quantity, f"lines-{n}-unit_price": price}
    return data


def test_new_invoice_page_preselects_the_client(owner_client, workspace, acme, other_workspace):
    body = text(owner_client.get(url(workspace, "invoice_create"), {"client": acme.pk}))
    assert f'<option value="{acme.pk}" selected>Acme Corp</option>' in body
    assert body.count('name="lines-') >= 5 * 3
    foreign = factories.ClientFactory(workspace=other_workspace, name="Initech")
    body = text(owner_client.get(url(workspace, "invoice_create"), {"client": foreign.pk}))
    assert "Initech" not in body


def test_save_a_draft_by_hand(owner_client, workspace, acme):
    data = {"client": acme.pk, "memo": "PO 1234", "action": "draft"}
    data |= _lines(("Strategy workshop", "2", "750"), ("Travel", "", "120.50"), ("", "", ""), total=5)
    response = owner_client.post(url(workspace, "invoice_create"), data)
    invoice = Invoice.objects.get()
    assert response.status_code == 302 and response.url == url(workspace, "invoice_detail", invoice_id=invoice.pk)
    assert (invoice.status, invoice.number, invoice.memo, invoice.total_minor) == ("draft", "", "PO 1234", 162050)
    lines = list(invoice.lines.values_list("description", "quantity", "unit_price_minor", "amount_minor"))
    assert lines == [("Strategy workshop", D("2.00"), 75000, 150000), ("Travel", D("1.00"), 12050, 12050)]


def test_save_and_issue_by_hand(owner_client, workspace, acme):
    data = {"client": acme.pk, "action": "issue"} | _lines(("Audit", "1", "900"))
    response = owner_client.post(url(workspace, "invoice_create"), data, follow=True)
    invoice = Invoice.objects.get()
    assert (invoice.status, invoice.number) == ("open", "2026-0001")
    assert "2026-0001 was issued" in messages_of(response)[0]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (_lines(("", "", ""), total=3), "This field is required"),  # the first line is required
        (_lines(("Audit", "0", "900")), "greater than or equal to 0.01"),
        (_lines(("Audit", "1", "9.999")), "2 decimal places at most"),
        (_lines(("Audit", "1", "nine hundred")), "Enter an amount in GBP, like"),
        (_lines(("Audit", "1", "900"), ("", "3", "")), "This field is required"),  # a touched row needs a description
        (_lines(("Audit", "1", "900"), ("Travel", "", "")), "This field is required"),  # and a price
        (_lines(*[("x", "1", "1")] * 51), "50 lines at most"),
    ],
)
def test_new_invoice_errors_show_next_to_the_fields(owner_client, workspace, acme, data, error):
    response = owner_client.post(url(workspace, "invoice_create"), {"client": acme.pk, "action": "draft"} | data)
    assert response.status_code == 200
    assert error in text(response)
    assert not Invoice.objects.exists()


@pytest.mark.parametrize(
    ("rows", "field", "error"),
    [
        # The hostile-input pass: 99,999,999 × £999,999,999.99 ended in "bigint out of range".
        ((("Audit", "99999999", "999999999.99"),), "lines-0-unit_price", "999,999.99 GBP at most"),
        # Each within bounds, their product (the line) is not.
        ((("Audit", "99999999", "999999.99"),), "lines-0-quantity", "This line comes to more than 999,999.99 GBP"),
        ((("Audit", "1001", "999.99"),), "lines-0-quantity", "This line comes to more than 999,999.99 GBP"),
    ],
)
def test_a_line_too_large_for_stripe_is_a_field_error(owner_client, workspace, acme, rows, field, error):
    response = owner_client.post(
        url(workspace, "invoice_create"), {"client": acme.pk, "action": "draft"} | _lines(*rows)
    )
    assert response.status_code == 200
    page = FieldBlocks()
    page.feed(text(response))
    assert any(error in message for message in page.block_for(field)["errors"]), page.block_for(field)
    assert not Invoice.objects.exists()


def test_an_invoice_whose_total_is_too_large_for_stripe_is_refused(owner_client, workspace, acme):
    """Lines of £600,000 each are fine; together, or with tax, they are more than a card payment can take."""
    profile = services.profile_for(workspace)
    data = {"client": acme.pk, "action": "issue"} | _lines(("Audit", "1", "600,000"), ("Review", "1", "400,000"))
    response = owner_client.post(url(workspace, "invoice_create"), data)
    assert response.status_code == 200
    assert "The invoice comes to £1,000,000.00: 999,999.99 GBP at most" in text(response)
    profile.tax_rate_bp = 2000
    profile.save()
    data = {"client": acme.pk, "action": "issue"} | _lines(("Audit", "1", "900,000"))
    response = owner_client.post(url(workspace, "invoice_create"), data)
    assert "The invoice comes to £1,080,000.00" in text(response)
    assert not Invoice.objects.exists()
    with pytest.raises(services.BillingError, match="999,999.99 GBP at most"):
        services.create_invoice(client=acme, lines=[("Audit", D("99999999"), 99_999_999)])


def test_new_invoice_for_another_workspaces_client_is_refused(owner_client, workspace, other_workspace):
    foreign = factories.ClientFactory(workspace=other_workspace)
    response = owner_client.post(
        url(workspace, "invoice_create"), {"client": foreign.pk, "action": "draft"} | _lines(("Audit", "1", "900"))
    )
    assert response.status_code == 200
    assert response.context["form"].errors["client"]
    assert not Invoice.objects.exists()


def test_htmx_adds_a_line_row_and_raises_the_form_count(owner_client, workspace):
    response = owner_client.get(url(workspace, "invoice_create"), {"lines-TOTAL_FORMS": "5"}, **HTMX)
    body = text(response)
    assert 'name="lines-5-description"' in body and "<html" not in body
    assert 'name="lines-TOTAL_FORMS" value="6"' in body and 'hx-swap-oob="true"' in body
    full = owner_client.get(url(workspace, "invoice_create"), {"lines-TOTAL_FORMS": "50"}, **HTMX)
    assert full.status_code == 204


def test_more_line_rows_without_javascript(owner_client, workspace):
    body = text(owner_client.get(url(workspace, "invoice_create"), {"lines": "10"}))
    assert 'name="lines-9-description"' in body and 'name="lines-10-description"' not in body


# --- Billing settings -----------------------------------------------------------------------


def _settings_data(**overrides: object) -> dict[str, object]:
    return {
        "legal_name": "Northwind Advisory Ltd",
        "address": "1 High St\nLondon",
        "tax_id": "GB123456789",
        "tax_label": "VAT",
        "tax_rate": "20",
        "payment_terms_days": "30",
        "payment_instructions": "Sort code 00-00-00",
        "reminder_offsets": "30, 3,10, 3",
        "retry_days": "1 3 7",
        "stripe_account_id": "acct_1Typed",  # no longer a field: Stripe's onboarding gives the id
        "locale": "en_GB",
        **overrides,
    }


def _image(image_format: str, size: tuple[int, int] = (40, 20)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "navy").save(buffer, format=image_format)
    return buffer.getvalue()


def test_settings_are_for_admins(owner_client, member_client, workspace):
    assert owner_client.get(url(workspace, "billing_settings")).status_code == 200
    assert member_client.get(url(workspace, "billing_settings")).status_code == 403
    assert member_client.post(url(workspace, "billing_settings"), _settings_data()).status_code == 403
    assert not BillingProfile.objects.filter(workspace=workspace, legal_name="Northwind Advisory Ltd").exists()


def test_nav_links_to_invoices_for_all_and_billing_settings_for_admins(owner_client, member_client, workspace):
    settings_link = f'href="{url(workspace, "billing_settings")}"'
    owner_page = text(owner_client.get(f"/w/{workspace.slug}/"))
    member_page = text(member_client.get(f"/w/{workspace.slug}/"))
    assert f'href="{url(workspace, "invoice_list")}"' in member_page
    assert settings_link in owner_page and settings_link not in member_page


def test_save_billing_settings(owner_client, workspace):
    logo = SimpleUploadedFile("brand.png", _image("PNG"), content_type="image/png")
    response = owner_client.post(url(workspace, "billing_settings"), _settings_data(logo=logo))
    assert response.status_code == 302
    profile = BillingProfile.objects.get(workspace=workspace)
    assert (profile.legal_name, profile.tax_label, profile.tax_rate_bp) == ("Northwind Advisory Ltd", "VAT", 2000)
    assert (profile.payment_terms_days, profile.reminder_offsets, profile.retry_days) == (30, [3, 10, 30], [1, 3, 7])
    assert not StripeAccount.objects.exists()  # an account id is never taken from a form
    assert profile.logo.name.startswith("logos/") and profile.logo.name.endswith(".png")
    with profile.logo.open("rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    workspace.refresh_from_db()
    assert workspace.locale == "en_GB"
    # The form shows what was saved.
    body = text(owner_client.get(url(workspace, "billing_settings")))
    assert 'value="20"' in body and 'value="3, 10, 30"' in body and 'value="1, 3, 7"' in body


def test_tax_rate_with_two_decimals_and_a_percent_sign(owner_client, workspace):
    owner_client.post(url(workspace, "billing_settings"), _settings_data(tax_rate="8.25%"))
    assert BillingProfile.objects.get(workspace=workspace).tax_rate_bp == 825
    assert 'value="8.25"' in text(owner_client.get(url(workspace, "billing_settings")))


def test_new_settings_apply_to_invoices_issued_afterwards(owner_client, workspace, acme):
    owner_client.post(url(workspace, "billing_settings"), _settings_data())
    invoice = manual_invoice(acme, 10000)
    assert (invoice.tax_rate_bp, invoice.tax_minor, invoice.due_on) == (2000, 2000, date(2026, 4, 9))


def test_replacing_and_clearing_the_logo(owner_client, workspace, django_capture_on_commit_callbacks):
    from django.core.files.storage import default_storage

    settings_url = url(workspace, "billing_settings")
    owner_client.post(settings_url, _settings_data(logo=SimpleUploadedFile("a.png", _image("PNG"))))
    first = BillingProfile.objects.get(workspace=workspace).logo.name
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(settings_url, _settings_data(logo=SimpleUploadedFile("b.jpg", _image("JPEG"))))
    second = BillingProfile.objects.get(workspace=workspace).logo.name
    assert second.endswith(".png") and not default_storage.exists(first)  # every logo is stored as PNG
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(settings_url, _settings_data(**{"logo-clear": "on"}))
    assert not BillingProfile.objects.get(workspace=workspace).logo
    assert not default_storage.exists(second)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("tax_rate", "twenty", "Enter a percentage such as 20"),
        ("tax_rate", "20.125", "2 decimals at most"),
        ("tax_rate", "120", "from 0 to 100"),
        ("tax_rate", "-1", "from 0 to 100"),
        ("reminder_offsets", "3, 0, 10", "0 is out of range"),
        ("reminder_offsets", "3, 400", "400 is out of range"),
        ("reminder_offsets", "3, soon", "“soon” is not a whole number"),
        ("retry_days", "1.5", "“1.5” is not a whole number"),
        ("retry_days", ", ".join(str(n) for n in range(1, 12)), "10 days at most"),
        ("payment_terms_days", "400", "less than or equal to 365"),
        ("locale", "xx_XX", "Select a valid choice"),
    ],
)
def test_settings_errors_show_next_to_the_field_and_save_nothing(owner_client, workspace, field, value, error):
    response = owner_client.post(url(workspace, "billing_settings"), _settings_data(**{field: value}))
    assert response.status_code == 200
    assert any(error in message for message in response.context["form"].errors[field]), response.context["form"].errors
    assert csp_problems(response) == []
    assert not BillingProfile.objects.filter(workspace=workspace, legal_name="Northwind Advisory Ltd").exists()
    workspace.refresh_from_db()
    assert workspace.locale == "en_US"


@pytest.mark.parametrize(
    ("upload", "error"),
    [
        (SimpleUploadedFile("big.png", b"\x89PNG" + b"0" * 600 * 1024), "500 KB at most"),
        (SimpleUploadedFile("logo.png", b"<svg xmlns='http://www.w3.org/2000/svg'></svg>"), "not a PNG or JPEG"),
        (SimpleUploadedFile("logo.png", b"%PDF-1.7 not an image"), "not a PNG or JPEG"),
        (SimpleUploadedFile("logo.png", _image("PNG")[:60]), "not a PNG or JPEG"),  # truncated
        (SimpleUploadedFile("logo.gif", _image("GIF")), "a GIF image: upload a PNG or JPEG"),
    ],
)
def test_logo_must_be_a_small_png_or_jpeg(owner_client, workspace, upload, error):
    response = owner_client.post(url(workspace, "billing_settings"), _settings_data(logo=upload))
    assert response.status_code == 200
    assert any(error in message for message in response.context["form"].errors["logo"])
    assert not BillingProfile.objects.filter(workspace=workspace).exclude(logo="").exists()


# --- CSP on the pages ------------------------------------------------------------------------


def test_billing_pages_obey_the_csp(owner_client, workspace, book, acme):
    pages = [
        url(workspace, "invoice_list"),
        url(workspace, "invoice_list") + "?status=open&client=abc",
        url(workspace, "invoice_create") + f"?client={acme.pk}",
        url(workspace, "billing_settings"),
        *(url(workspace, "invoice_detail", invoice_id=invoice.pk) for invoice in book.values()),
        f"/w/{workspace.slug}/clients/{acme.pk}/",
        f"/w/{workspace.slug}/clients/{acme.pk}/billing/",
    ]
    for page in pages:
        response = owner_client.get(page)
        assert response.status_code == 200, page
        assert csp_problems(response) == [], page
    pay_url = url(workspace, "invoice_record_payment", invoice_id=book["current"].pk)
    refused = owner_client.post(pay_url, {"amount": "x"})
    assert refused.status_code == 200 and csp_problems(refused) == []
