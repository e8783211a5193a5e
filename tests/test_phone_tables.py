"""Every table a consultant sees stacks on a phone (issue 17): under 640 px a `.stack-on-phone`
table shows each row as a block, each figure under its column's name (the cell's data-label).

The browser test (tests/e2e/test_accessibility.py, 390 px) checks what the pages show; this one
reads the templates, so a new table that forgets the class fails here without a browser.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
TABLE = re.compile(r"<table\b[^>]*>")
CLASS = re.compile(r"""\bclass\s*=\s*["']([^"']*)["']""")

# Tables that stay tables on a phone, each with the reason. A table with class `visually-hidden`
# (a chart's figures for screen readers) is never drawn and needs no entry.
STAYS_A_TABLE = {
    # PDFs (WeasyPrint on an A4 page), never a screen.
    "billing/invoice_pdf.html": "PDF",
    "portal/statement_pdf.html": "PDF",
    # allauth's own pages fill this element's cells, so there is no data-label to give them.
    "allauth/elements/table.html": "allauth element",
    # Two columns (the month and its amount), shown only when the chart's <details> is opened.
    "dashboard/dashboard.html": "the revenue chart's figures",
}


def tables() -> list[tuple[str, str]]:
    found = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        name = str(path.relative_to(TEMPLATES))
        found += [(name, tag) for tag in TABLE.findall(path.read_text())]
    return found


def classes(tag: str) -> set[str]:
    match = CLASS.search(tag)
    return set(match.group(1).split()) if match else set()


def test_the_templates_have_tables_to_check():
    # A broken pattern would find nothing and pass everything.
    names = {name for name, _ in tables()}
    assert {"billing/invoice_list.html", "clients/client_list.html", "retainers/team.html"} <= names


@pytest.mark.parametrize(("template", "tag"), tables(), ids=[f"{n}:{t}" for n, t in tables()])
def test_every_table_stacks_on_a_phone(template, tag):
    shown = classes(tag)
    if "visually-hidden" in shown or "stack-on-phone" in shown:
        return
    assert template in STAYS_A_TABLE, (
        f"{template}: {tag} scrolls sideways on a phone; give it class stack-on-phone and a data-label on "
        "each figure cell (see static/css/app.css), or list it in STAYS_A_TABLE with the reason"
    )


def test_the_allow_list_names_only_templates_with_a_plain_table():
    # An entry whose table was stacked (or removed) since is stale: it would hide a new table.
    plain = {name for name, tag in tables() if not classes(tag) & {"visually-hidden", "stack-on-phone"}}
    assert set(STAYS_A_TABLE) <= plain, set(STAYS_A_TABLE) - plain


def test_every_stacked_table_labels_its_figure_cells():
    """Cells of a stacked table that hold a template value carry a data-label, except a row's first
    cell (its title), an action cell (forms and buttons) and a row of a header and one cell."""
    missing = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        text = path.read_text()
        for table in re.findall(r"<table\b[^>]*stack-on-phone[^>]*>.*?</table>", text, re.S):
            for row in re.findall(r"<tr\b[^>]*>(.*?)</tr>", table, re.S):
                cells = re.findall(r"<(td|th)\b([^>]*)>(.*?)</\1>", row, re.S)
                header_and_one = len(cells) == 2 and cells[0][0] == "th" and 'scope="row"' in cells[0][1]
                for index, (kind, attrs, body) in enumerate(cells):
                    if kind != "td" or index == 0 or header_and_one or "data-label" in attrs:
                        continue
                    if "colspan" in attrs or "<form" in body or "<button" in body:
                        continue
                    if "{{" in body:
                        missing.append(f"{path.relative_to(TEMPLATES)}: <td{attrs}>{body.strip()[:60]}")
    assert not missing, "cells with a figure and no data-label:\n  " + "\n  ".join(missing)
