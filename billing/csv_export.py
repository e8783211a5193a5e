"""The invoices CSV: streamed row by row, and safe to open in a spreadsheet.

CSV injection: a spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` (and, in some,
after a leading tab or carriage return) as a formula, so a client named
`=HYPERLINK("http://evil.example", "Click")` would become a live link or worse. The rule:

- **Text someone typed** (client names; any other free text added later, such as line
  descriptions or memos) goes through `safe_text`: a cell starting with one of those
  characters is prefixed with a single quote, which spreadsheets show as text.
- **Values we format ourselves** are written as they are: dates (ISO), status codes, invoice
  numbers (`2026-0042`, built by billing.services) and amounts. Amounts are plain decimal
  numbers from `money.from_minor` ("1500.00", "-250.00" for a credit note): a spreadsheet reads
  a leading minus there as a negative number, never as a formula, and quoting it would turn
  the number into text that no one can sum.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import date

from billing.models import Invoice
from retainers.money import from_minor

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

HEADER = ["number", "client", "status", "issued", "due", "currency", "subtotal", "tax", "total", "paid", "balance"]


def safe_text(value: str) -> str:
    """User-typed text for a CSV cell: never read as a formula by a spreadsheet."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


class _Echo:
    """A file-like object whose write returns the line, so csv.writer can feed a generator."""

    def write(self, value: str) -> str:
        return value


def display_status(invoice: Invoice, *, today: date) -> str:
    """The status a person reads, in the one vocabulary (Invoice.state): `part_paid`, `overdue`..."""
    return str(invoice.state(on=today).value)


def amount_due_minor(invoice: Invoice) -> int:
    """What the client still owes on it: nothing on drafts, void invoices and credit notes, nor what
    was refunded (Invoice.owed_minor); a credit balance shows below zero."""
    if invoice.kind == Invoice.Kind.CREDIT_NOTE or invoice.status in {Invoice.Status.DRAFT, Invoice.Status.VOID}:
        return 0
    return invoice.owed_minor if invoice.balance_minor >= 0 else invoice.balance_minor


def _row(invoice: Invoice, today: date) -> list[str]:
    currency = invoice.currency

    def amount(minor: int) -> str:
        return str(from_minor(minor, currency))

    return [
        invoice.number,
        safe_text(invoice.client.name),
        display_status(invoice, today=today),
        invoice.issued_on.isoformat() if invoice.issued_on else "",
        invoice.due_on.isoformat() if invoice.due_on else "",
        currency,
        amount(invoice.subtotal_minor),
        amount(invoice.tax_minor),
        amount(invoice.total_minor),
        amount(invoice.paid_minor),
        amount(amount_due_minor(invoice)),
    ]


def invoice_lines(invoices: Iterable[Invoice], *, today: date) -> Iterator[str]:
    """The CSV text, one line at a time, header first. Give it `queryset.iterator()`: nothing is held in memory."""
    writer = csv.writer(_Echo())
    yield writer.writerow(HEADER)
    for invoice in invoices:
        yield writer.writerow(_row(invoice, today))
