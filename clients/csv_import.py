"""Reading and checking a CSV of clients (one optional contact per row), for a preview.

Nothing here writes: `clients.services.import_clients` runs the same checks again and writes
the valid rows in one transaction (the database's unique constraints have the last word). The steps are plain
functions over text so they can be tested without HTTP:

    text = decode(raw_bytes)                      # CsvFileError for a file we cannot read at all
    rows = preview(text, workspace=workspace)     # per-row errors, including duplicates in the DB
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.validators import validate_email
from django.db.models.functions import Lower

from clients.models import Client, Contact
from retainers.fields import format_percent, parse_percent

if TYPE_CHECKING:
    from retainers.models import Workspace

MAX_BYTES = 1024 * 1024
MAX_ROWS = 2000
COLUMNS = (
    "name",
    "billing_email",
    "address",
    "tax_id",
    "tax_treatment",
    "tax_rate",
    "contact_name",
    "contact_email",
    "contact_role",
)
Treatment = Client.TaxTreatment
TREATMENTS = ", ".join(Treatment.values)  # what the tax_treatment column takes, as the error lists it
# The model fields' max_length, so a long value is a row error and not a database error.
MAX_LENGTHS = {
    "name": 200,
    "billing_email": 254,
    "tax_id": 50,
    "contact_name": 150,
    "contact_email": 254,
    "contact_role": 100,
}
SAVE_AS = "Save it from your spreadsheet as “CSV UTF-8 (comma delimited)” and upload that."


class CsvFileError(Exception):
    """The file as a whole cannot be imported (too big, not text, no header…). The message is for the user."""


@dataclass
class ImportRow:
    """One data row. `number` is the row as a spreadsheet counts it: the header is row 1."""

    number: int
    values: dict[str, str]
    errors: list[str] = field(default_factory=list)
    tax_rate_bp: int | None = None  # the tax_rate column read, with the own_rate treatment only

    @property
    def tax_summary(self) -> str:
        """The row's tax treatment as the preview shows it; empty for the workspace's rate (the default)."""
        treatment = self.values["tax_treatment"]
        if treatment not in Treatment.values or treatment == Treatment.WORKSPACE:
            return ""
        if treatment == Treatment.OWN_RATE and self.tax_rate_bp is not None:
            return f"Tax {format_percent(self.tax_rate_bp)}% (their own rate)"
        return str(Treatment(treatment).label)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def has_contact(self) -> bool:
        return bool(self.values["contact_name"] or self.values["contact_email"])


def read_upload(upload: UploadedFile) -> str:
    """The text of an uploaded CSV, refusing files over MAX_BYTES before reading them."""
    if upload.size is not None and upload.size > MAX_BYTES:
        raise CsvFileError(f"The file is {upload.size / 1024 / 1024:.1f} MB; the limit is 1 MB. Split it in parts.")
    data = upload.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise CsvFileError("The file is over the 1 MB limit. Split it in parts.")
    return decode(data)


def decode(data: bytes) -> str:
    """UTF-8 text, with or without a byte-order mark (Excel writes one)."""
    if b"\x00" in data:
        raise CsvFileError(f"This is not a CSV file: it contains binary data. {SAVE_AS}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CsvFileError(f"This file is not UTF-8 text (or not a CSV file at all). {SAVE_AS}") from None
    if not text.strip():
        raise CsvFileError("The file is empty.")
    return text


def _header_key(title: str) -> str:
    return "_".join(title.strip().lower().replace("-", " ").split())


def parse(text: str) -> list[ImportRow]:
    """Rows with the checks that need no database: header, required values, lengths, emails, duplicates in the file."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, [])
        keys = [_header_key(title) for title in header]
        if "name" not in keys:
            raise CsvFileError(
                "The first row must be a header naming the columns, with at least a “name” column. "
                f"The columns are: {', '.join(COLUMNS)}."
            )
        unknown = [title for title, key in zip(header, keys, strict=True) if key and key not in COLUMNS]
        if unknown:
            raise CsvFileError(
                f"Unknown column{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}. "
                f"The columns are: {', '.join(COLUMNS)}."
            )
        repeated = sorted({key for key in keys if key and keys.count(key) > 1})
        if repeated:
            raise CsvFileError(f"The header names these columns twice: {', '.join(repeated)}.")
        rows: list[ImportRow] = []
        for number, record in enumerate(reader, start=2):
            if not any(value.strip() for value in record):
                continue  # blank lines, or a row of empty cells that spreadsheets leave at the end
            if len(rows) == MAX_ROWS:
                raise CsvFileError(f"The file has more than {MAX_ROWS:,} rows. Split it in parts.")
            rows.append(_row(number, keys, record))
    except csv.Error as exc:
        raise CsvFileError(f"This file cannot be read as CSV (row {reader.line_num}: {exc}). {SAVE_AS}") from None
    if not rows:
        raise CsvFileError("The file has a header but no rows of clients.")
    _check_repeats(rows)
    return rows


def _row(number: int, keys: list[str], record: list[str]) -> ImportRow:
    values = dict.fromkeys(COLUMNS, "")
    for key, value in zip(keys, record, strict=False):
        if key:
            values[key] = value.strip()
    values["contact_email"] = values["contact_email"].lower()
    row = ImportRow(number=number, values=values)
    if len(record) > len(keys) and any(value.strip() for value in record[len(keys) :]):
        row.errors.append(f"This row has {len(record)} values but the header has {len(keys)} columns.")
    if not values["name"]:
        row.errors.append("The client's name is missing.")
    for key, limit in MAX_LENGTHS.items():
        if len(values[key]) > limit:
            row.errors.append(f"{key} is longer than {limit} characters.")
    for key in ("billing_email", "contact_email"):
        if values[key] and not _is_email(values[key]):
            row.errors.append(f"{key} “{values[key]}” is not a valid email address.")
    if row.has_contact and not (values["contact_name"] and values["contact_email"]):
        row.errors.append("A contact needs both contact_name and contact_email.")
    _check_tax(row)
    return row


def _check_tax(row: ImportRow) -> None:
    """The tax_treatment and tax_rate columns, as the client form checks them (the `client_tax_*`
    constraints hold the same): the treatment's value, normalised; a rate with own_rate and only
    then; a VAT number with reverse_charge. A rate with no treatment means a rate of their own."""
    values = row.values
    given, rate = values["tax_treatment"], values["tax_rate"]
    treatment = _header_key(given) if given else (Treatment.OWN_RATE if rate else Treatment.WORKSPACE)
    values["tax_treatment"] = treatment
    if treatment not in Treatment.values:
        row.errors.append(f"tax_treatment “{given}” is not one of: {TREATMENTS}. Leave it empty for your tax rate.")
        return
    if treatment != Treatment.OWN_RATE:
        if rate:
            row.errors.append(f"tax_rate is only for the own_rate treatment, not {treatment}: leave it empty.")
    elif not rate:
        row.errors.append("tax_rate is missing: own_rate needs their rate, e.g. 8.25.")
    else:
        try:
            row.tax_rate_bp = parse_percent(rate)
        except ValidationError as error:  # parse_percent says what to type
            row.errors.append(f"tax_rate “{rate}”: {' '.join(error.messages)}")
    if treatment == Treatment.REVERSE_CHARGE and not values["tax_id"]:
        row.errors.append(
            "tax_treatment reverse_charge needs the client's VAT number in tax_id: it is on each invoice."
        )


def _is_email(value: str) -> bool:
    try:
        validate_email(value)
    except ValidationError:
        return False
    return True


def _check_repeats(rows: Iterable[ImportRow]) -> None:
    """The second and later rows with the same client name or contact email (ignoring case) are errors."""
    names: dict[str, int] = {}
    emails: dict[str, int] = {}
    for row in rows:
        name, email = row.values["name"].lower(), row.values["contact_email"]
        if name and name in names:
            row.errors.append(f"Same client name as row {names[name]}.")
        elif name:
            names[name] = row.number
        if email and email in emails:
            row.errors.append(f"Same contact email as row {emails[email]}.")
        elif email:
            emails[email] = row.number


def check_against_workspace(rows: list[ImportRow], *, workspace: Workspace) -> None:
    """Mark rows whose client name or contact email already exists in the workspace. Two queries."""
    names = {row.values["name"].lower() for row in rows if row.values["name"]}
    emails = {row.values["contact_email"] for row in rows if row.values["contact_email"]}
    taken_names = set(
        Client.objects.for_workspace(workspace)
        .annotate(name_ci=Lower("name"))
        .filter(name_ci__in=names)
        .values_list("name_ci", flat=True)
    )
    taken_emails = set(
        Contact.objects.for_workspace(workspace)
        .annotate(email_ci=Lower("email"))
        .filter(email_ci__in=emails)
        .values_list("email_ci", flat=True)
    )
    for row in rows:
        if row.values["name"].lower() in taken_names:
            row.errors.append(f"A client called “{row.values['name']}” already exists.")
        if row.values["contact_email"] in taken_emails:
            row.errors.append(f"The contact email {row.values['contact_email']} is already used by a contact.")


def preview(text: str, *, workspace: Workspace) -> list[ImportRow]:
    """Every row of the file with all its errors; CsvFileError when the file as a whole is unusable."""
    rows = parse(text)
    check_against_workspace(rows, workspace=workspace)
    return rows
