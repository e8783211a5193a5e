"""Importing clients from CSV: reading and checking without HTTP, then upload → preview → confirm."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from clients import csv_import, services
from clients.csv_import import CsvFileError
from clients.models import Client, Contact
from retainers.models import Email
from tests import factories
from tests.clients.helpers import url

pytestmark = pytest.mark.django_db

HEADER = "name,billing_email,address,tax_id,contact_name,contact_email,contact_role\n"
GOOD = (
    HEADER + 'Acme Ltd,ap@acme.example,"1 High St\nLondon",GB1,Carol Chen,Carol@Acme.example,COO\n' + "Globex,,,,,,\n"
)


def upload(text: str | bytes, name: str = "clients.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode() if isinstance(text, str) else text, content_type="text/csv")


def errors_by_row(rows) -> dict[int, list[str]]:
    return {row.number: row.errors for row in rows if row.errors}


# --- Reading the file ----------------------------------------------------------------------------


def test_parses_rows_with_quoted_newlines_and_normalises_contact_email(workspace):
    rows = csv_import.preview(GOOD, workspace=workspace)
    assert [row.number for row in rows] == [2, 3]
    assert rows[0].values == {
        "name": "Acme Ltd",
        "billing_email": "ap@acme.example",
        "address": "1 High St\nLondon",
        "tax_id": "GB1",
        "tax_treatment": "workspace",  # no tax columns: the workspace's rate, as on the client form
        "tax_rate": "",
        "contact_name": "Carol Chen",
        "contact_email": "carol@acme.example",
        "contact_role": "COO",
    }
    assert rows[0].has_contact and not rows[1].has_contact
    assert all(row.ok for row in rows)


def test_headers_are_case_insensitive_in_any_order_and_columns_optional(workspace):
    rows = csv_import.parse("Contact Email, NAME \ncarol@acme.example,Acme\n")
    assert rows[0].values["name"] == "Acme"
    assert rows[0].errors == ["A contact needs both contact_name and contact_email."]


def test_utf8_with_a_byte_order_mark(workspace):
    text = csv_import.decode(("\ufeff" + "name\nCafé Crème\n").encode("utf-8"))
    assert csv_import.parse(text)[0].values["name"] == "Café Crème"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a CSV file"),
        ("name\nCafé\n".encode("latin-1"), "not UTF-8"),
        (b"", "empty"),
        (b"  \n", "empty"),
    ],
)
def test_binary_or_non_utf8_files_are_refused(data, message):
    with pytest.raises(CsvFileError, match=message):
        csv_import.decode(data)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Acme Ltd,ap@acme.example\n", "at least a “name” column"),
        ("name,emial\nAcme,x\n", "Unknown column: emial"),
        ("name,Name\nAcme,Acme\n", "names these columns twice: name"),
        ("name\n", "no rows"),
        ('name\n"Acme\n', "cannot be read as CSV"),
        ("name\n" + "Client\n" * (csv_import.MAX_ROWS + 1), "more than 2,000 rows"),
    ],
)
def test_file_level_errors(text, message):
    with pytest.raises(CsvFileError, match=message):
        csv_import.parse(text)


def test_exactly_2000_rows_and_blank_lines_are_fine():
    text = "name\n" + "".join(f"Client {n}\n\n,\n" for n in range(csv_import.MAX_ROWS))
    assert len(csv_import.parse(text)) == csv_import.MAX_ROWS


def test_files_over_1_mb_are_refused_before_reading():
    big = upload("name\n" + "x" * csv_import.MAX_BYTES)
    with pytest.raises(CsvFileError, match="limit is 1 MB"):
        csv_import.read_upload(big)


def test_row_errors(workspace):
    existing = factories.ClientFactory(workspace=workspace, name="Existing Co")
    factories.ContactFactory(client=existing, email="taken@example.com")
    text = HEADER + "\n".join(
        [
            ",ap@nameless.example,,,,,",  # 2: no name
            "Bad Email Co,not-an-email,,,,,",  # 3
            "Acme,,,,Carol,carol@acme.example,",  # 4: fine
            "ACME,,,,,,",  # 5: same name as row 4
            "Other,,,,Carl,CAROL@acme.example,",  # 6: same contact email as row 4
            "existing co,,,,,,",  # 7: exists already
            "Fresh,,,,Tina,Taken@example.com,",  # 8: email used by a contact
            "Half,,,,Tom,,",  # 9: contact without email
            "Extra,,,,,,,surplus",  # 10: more values than columns
            "Long," + "x" * 250 + "@a.example,,,,,",  # 11: too long (and so invalid)
        ]
    )
    rows = csv_import.preview(text, workspace=workspace)
    errors = errors_by_row(rows)
    assert errors[2] == ["The client's name is missing."]
    assert errors[3] == ["billing_email “not-an-email” is not a valid email address."]
    assert 4 not in errors
    assert errors[5] == ["Same client name as row 4."]
    assert errors[6] == ["Same contact email as row 4."]
    assert errors[7] == ["A client called “existing co” already exists."]
    assert errors[8] == ["The contact email taken@example.com is already used by a contact."]
    assert errors[9] == ["A contact needs both contact_name and contact_email."]
    assert errors[10] == ["This row has 8 values but the header has 7 columns."]
    assert "billing_email is longer than 254 characters." in errors[11]


TAX_HEADER = "name,tax_id,tax_treatment,tax_rate\n"


def test_tax_columns_give_each_client_its_treatment(workspace):
    text = TAX_HEADER + "\n".join(
        [
            "Home Co,,,",  # the workspace's rate
            "Own Co,,own_rate,8.25",
            "Rate Only Co,,,7 %",  # a rate alone: a rate of their own
            "Exempt Co,,Exempt,",  # any case
            "Brandt GmbH,DE811907980,Reverse charge,",  # as people write it
            "Named Co,,workspace,",
        ]
    )
    rows = csv_import.preview(text, workspace=workspace)
    assert all(row.ok for row in rows), errors_by_row(rows)
    assert [(row.values["tax_treatment"], row.tax_rate_bp) for row in rows] == [
        ("workspace", None),
        ("own_rate", 825),
        ("own_rate", 700),
        ("exempt", None),
        ("reverse_charge", None),
        ("workspace", None),
    ]
    services.import_clients(workspace=workspace, text=text, skip_invalid=False)
    saved = dict(Client.objects.for_workspace(workspace).values_list("name", "tax_treatment"))
    assert saved == {
        "Home Co": "workspace",
        "Own Co": "own_rate",
        "Rate Only Co": "own_rate",
        "Exempt Co": "exempt",
        "Brandt GmbH": "reverse_charge",
        "Named Co": "workspace",
    }
    assert Client.objects.get(name="Own Co").tax_rate_bp == 825
    assert Client.objects.get(name="Brandt GmbH").tax_id == "DE811907980"


def test_tax_column_errors_name_the_column_on_their_row(workspace):
    text = TAX_HEADER + "\n".join(
        [
            "A,,standard,",  # 2: not a treatment we have
            "B,,own_rate,",  # 3: own rate without a rate
            "C,,own_rate,twenty",  # 4
            "D,,own_rate,120",  # 5
            "E,,own_rate,8.255",  # 6
            "F,,exempt,5",  # 7: a rate with another treatment
            "G,,reverse_charge,",  # 8: reverse charge without a VAT number
            "H,GB1,reverse_charge,",  # 9: fine
        ]
    )
    errors = errors_by_row(csv_import.preview(text, workspace=workspace))
    assert errors == {
        2: [
            "tax_treatment “standard” is not one of: workspace, own_rate, exempt, reverse_charge. "
            "Leave it empty for your tax rate."
        ],
        3: ["tax_rate is missing: own_rate needs their rate, e.g. 8.25."],
        4: ["tax_rate “twenty”: Enter a percentage such as 20 or 8.25."],
        5: ["tax_rate “120”: Enter a percentage from 0 to 100."],
        6: ["tax_rate “8.255”: Use 2 decimals at most, e.g. 8.25."],
        7: ["tax_rate is only for the own_rate treatment, not exempt: leave it empty."],
        8: ["tax_treatment reverse_charge needs the client's VAT number in tax_id: it is on each invoice."],
    }
    with pytest.raises(services.ImportRefused):
        services.import_clients(workspace=workspace, text=text, skip_invalid=False)
    services.import_clients(workspace=workspace, text=text, skip_invalid=True)
    assert list(Client.objects.for_workspace(workspace).values_list("name", "tax_treatment")) == [
        ("H", "reverse_charge")
    ]


def test_the_preview_shows_each_rows_tax_and_its_errors_by_row(workspace, owner_client):
    text = TAX_HEADER + "Own Co,,own_rate,8.25\nBrandt GmbH,DE1,reverse_charge,\nBad Co,,own_rate,lots\n"
    owner_client.post(url(workspace, "client_import"), {"file": upload(text)})
    preview = owner_client.get(url(workspace, "client_import_preview"))
    rows = {row.number: row for row in preview.context["rows"]}
    html = preview.content.decode()
    assert "Tax 8.25% (their own rate)" in html and "EU reverse charge" in html
    assert rows[4].errors == ["tax_rate “lots”: Enter a percentage such as 20 or 8.25."]
    assert "tax_rate “lots”: Enter a percentage such as 20 or 8.25." in html


def test_the_upload_page_documents_the_tax_columns(workspace, owner_client):
    html = owner_client.get(url(workspace, "client_import")).content.decode()
    assert ",".join(csv_import.COLUMNS) in html  # the example's header names every column
    for treatment in Client.TaxTreatment.values:
        assert f"<code>{treatment}</code>" in html


# --- The service ---------------------------------------------------------------------------------


def test_import_creates_clients_and_contacts_without_emailing_anyone(workspace):
    result = services.import_clients(workspace=workspace, text=GOOD, skip_invalid=False)
    assert result == services.ImportResult(clients=2, contacts=1, skipped=0)
    acme = Client.objects.get(workspace=workspace, name="Acme Ltd")
    assert acme.address == "1 High St\nLondon"
    contact = Contact.objects.get(client=acme)
    assert (contact.email, contact.workspace_id, contact.portal_access) == ("carol@acme.example", workspace.pk, False)
    assert not Email.objects.exists()


def test_import_with_errors_writes_nothing_unless_told_to_skip_them(workspace):
    text = GOOD + ",nameless@example.com,,,,,\n"
    with pytest.raises(services.ImportRefused) as refused:
        services.import_clients(workspace=workspace, text=text, skip_invalid=False)
    assert errors_by_row(refused.value.rows) == {4: ["The client's name is missing."]}
    assert not Client.objects.exists()
    result = services.import_clients(workspace=workspace, text=text, skip_invalid=True)
    assert result == services.ImportResult(clients=2, contacts=1, skipped=1)


def test_import_is_one_transaction(workspace, monkeypatch):
    """If the database refuses one contact after the clients went in, no client stays either."""
    factories.ContactFactory(client=factories.ClientFactory(workspace=workspace), email="carol@acme.example")
    before = Client.objects.count()
    # Blind the check, so the duplicate reaches the database's unique constraint.
    monkeypatch.setattr(csv_import, "check_against_workspace", lambda rows, *, workspace: None)
    with pytest.raises(services.ClientError, match="taken a moment ago"):
        services.import_clients(workspace=workspace, text=GOOD, skip_invalid=False)
    assert Client.objects.count() == before


def test_a_client_added_after_the_check_is_refused_with_the_row_named(workspace, monkeypatch):
    """Someone adds "Acme Ltd" between the import's check and its insert: the database's
    `client_name_unique` constraint refuses the file, nothing is written, and the fresh check
    names the row, as the preview shows it."""
    real_check = csv_import.check_against_workspace

    def check_then_someone_adds_acme(rows, *, workspace):
        real_check(rows, workspace=workspace)
        if not Client.objects.filter(workspace=workspace, name="ACME LTD").exists():
            factories.ClientFactory(workspace=workspace, name="ACME LTD")

    monkeypatch.setattr(csv_import, "check_against_workspace", check_then_someone_adds_acme)
    with pytest.raises(services.ImportRefused) as refused:
        services.import_clients(workspace=workspace, text=GOOD, skip_invalid=False)
    assert errors_by_row(refused.value.rows) == {2: ["A client called “Acme Ltd” already exists."]}
    assert not Client.objects.filter(workspace=workspace, name__in=["Acme Ltd", "Globex"]).exists()


# --- Upload, preview, confirm -------------------------------------------------------------------


def test_upload_preview_confirm(workspace, owner_client):
    response = owner_client.post(url(workspace, "client_import"), {"file": upload(GOOD)})
    assert response.url == url(workspace, "client_import_preview")
    preview = owner_client.get(response.url)
    html = preview.content.decode()
    assert "All 2 rows can be imported" in html and "Acme Ltd" in html and "Carol Chen" in html
    assert not Client.objects.exists()  # nothing until confirmed
    token = preview.context["pending"]["token"]
    done = owner_client.post(url(workspace, "client_import_confirm"), {"token": token, "rows": "all"}, follow=True)
    assert "Imported 2 clients and 1 contact." in done.content.decode()
    assert sorted(Client.objects.values_list("name", flat=True)) == ["Acme Ltd", "Globex"]
    # The pending file is gone: confirming again imports nothing more.
    owner_client.post(url(workspace, "client_import_confirm"), {"token": token, "rows": "all"})
    assert Client.objects.count() == 2


def test_preview_shows_row_errors_and_offers_the_valid_rows_only_explicitly(workspace, owner_client):
    factories.ClientFactory(workspace=workspace, name="Globex")
    owner_client.post(url(workspace, "client_import"), {"file": upload(GOOD + "Bad,nope,,,,,\n")})
    preview = owner_client.get(url(workspace, "client_import_preview"))
    html = preview.content.decode()
    assert "2 rows have errors" in html
    assert "A client called “Globex” already exists." in html and "is not a valid email address" in html
    assert "Import the 1 valid row" in html
    token = preview.context["pending"]["token"]
    # A confirm without the explicit choice imports nothing.
    refused = owner_client.post(url(workspace, "client_import_confirm"), {"token": token, "rows": "all"})
    assert refused.status_code == 200 and Client.objects.count() == 1
    owner_client.post(url(workspace, "client_import_confirm"), {"token": token, "rows": "valid"})
    assert sorted(Client.objects.values_list("name", flat=True)) == ["Acme Ltd", "Globex"]


def test_confirm_checks_again_because_the_world_may_have_changed(workspace, owner_client):
    owner_client.post(url(workspace, "client_import"), {"file": upload(GOOD)})
    token = owner_client.get(url(workspace, "client_import_preview")).context["pending"]["token"]
    factories.ClientFactory(workspace=workspace, name="globex")  # someone added it meanwhile
    response = owner_client.post(url(workspace, "client_import_confirm"), {"token": token, "rows": "all"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "nothing was imported" in html and "A client called “Globex” already exists." in html
    assert Client.objects.count() == 1


def test_confirm_of_a_stale_preview_is_refused(workspace, owner_client):
    owner_client.post(url(workspace, "client_import"), {"file": upload(GOOD)})
    stale = owner_client.get(url(workspace, "client_import_preview")).context["pending"]["token"]
    owner_client.post(url(workspace, "client_import"), {"file": upload(HEADER + "Other Co,,,,,,\n")})
    response = owner_client.post(url(workspace, "client_import_confirm"), {"token": stale, "rows": "all"}, follow=True)
    assert "That preview is out of date" in response.content.decode()
    assert not Client.objects.exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x01\x02garbage\xff\xfe", "not a CSV file"),
        ("name\nCafé\n".encode("cp1252"), "not UTF-8"),
        (b"name\n" + b"x" * csv_import.MAX_BYTES, "the limit is 1 MB"),
        (b"company\nAcme\n", "at least a “name” column"),
    ],
)
def test_an_unreadable_upload_is_an_error_on_the_file_field(workspace, owner_client, data, message):
    response = owner_client.post(url(workspace, "client_import"), {"file": upload(data)})
    assert response.status_code == 200
    assert message in response.context["form"].errors["file"][0]
    assert "has-error" in response.content.decode()
    assert not Client.objects.exists()


def test_upload_without_a_file_and_preview_without_one(workspace, owner_client):
    response = owner_client.post(url(workspace, "client_import"), {})
    assert response.status_code == 200 and "file" in response.context["form"].errors
    assert owner_client.get(url(workspace, "client_import_preview")).url == url(workspace, "client_import")


def test_a_pending_import_stays_in_its_workspace(workspace, owner_client, alice):
    mine = factories.WorkspaceFactory(name="Second")
    factories.MembershipFactory(workspace=mine, user=alice, role="owner")
    owner_client.post(url(workspace, "client_import"), {"file": upload(GOOD)})
    token = owner_client.get(url(workspace, "client_import_preview")).context["pending"]["token"]
    owner_client.post(url(mine, "client_import_confirm"), {"token": token, "rows": "all"})
    assert not Client.objects.exists()
