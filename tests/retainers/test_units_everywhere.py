"""Quantities of units reach people through one formatting (retainers.units.format_units, the
`units` filter): a template that prints a period figure raw ("3.00 sessions", "10.0") fails here."""

import re
from pathlib import Path

FIGURE = re.compile(
    r"\{\{ ((?:figures|row|p|totals|period|item|entry|r|row\.period)\."
    r"(?:used|available|allotted|rolled_in|adjusted|expiring|overage|expired|rolled_out|quantity|running_balance|"
    r"period_available))( \}\}|\|(?!units)[^}]*\}\})"
)
# Already formatted in Python with format_units (the statement's summary, the card's rows).
ALLOWED = {"statement_pdf.html", "invoice_pdf.html", "invoice_detail.html"}


def test_templates_format_units_through_the_filter():
    root = Path(__file__).resolve().parents[2] / "templates"
    found = [
        f"{path.relative_to(root)}: {match.group(0)}"
        for path in root.rglob("*.html")
        if path.name not in ALLOWED
        for match in FIGURE.finditer(path.read_text())
    ]
    assert found == []
