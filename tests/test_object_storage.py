"""Media on object storage (issue 16, "State on more than one host"): with `STORAGE_URL=s3://...` the
invoice PDFs, logos and message attachments live in an S3-API bucket, and every page, email and
download reads them from there, never from a local path.

The bucket is real: moto's S3 server, started on loopback for the session, spoken to over HTTP by
boto3 exactly as a production bucket would be.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import boto3
import pytest
from django.core import mail
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from moto.server import ThreadedMotoServer
from PIL import Image
from pypdf import PdfReader

from billing import paylinks, services
from billing.models import BillingProfile, Invoice
from billing.pdf import render_invoice_pdf
from clients.services import add_contact
from communication import services as communication
from communication.models import Attachment
from retainers.settings import storage_from_url
from tests import factories
from tests.billing.test_views import _settings_data

PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible server on a free loopback port, for the whole session."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint, settings, monkeypatch, tmp_path) -> Iterator[tuple[Any, str]]:
    """A fresh bucket as the default storage (through STORAGE_URL's own parser); the local media
    folder is a throw-away one, so a test can show nothing was written to disk."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    name = f"retainers-{secrets.token_hex(6)}"
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=name)
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": storage_from_url(f"s3://{name}?endpoint_url={s3_endpoint}&region=us-east-1&addressing_style=path"),
    }
    assert default_storage.bucket_name == name  # the S3 backend, not the filesystem
    yield s3, name


def keys(bucket: tuple[Any, str], prefix: str) -> dict[str, bytes]:
    s3, name = bucket
    listing = s3.list_objects_v2(Bucket=name, Prefix=prefix)
    return {
        item["Key"]: s3.get_object(Bucket=name, Key=item["Key"])["Body"].read() for item in listing.get("Contents", [])
    }


def nothing_on_disk(media_root: Path) -> bool:
    return not media_root.exists() or not any(path.is_file() for path in media_root.rglob("*"))


# --- STORAGE_URL -------------------------------------------------------------------------------------


def test_storage_url_unset_is_the_local_filesystem_under_media_root():
    assert storage_from_url("") == {"BACKEND": "django.core.files.storage.FileSystemStorage"}


def test_storage_url_file_is_the_local_filesystem_at_that_path():
    assert storage_from_url("file:///srv/retainers/media") == {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": "/srv/retainers/media"},
    }


def test_storage_url_s3_names_bucket_endpoint_and_region_and_never_overwrites():
    backend = storage_from_url("s3://invoices?endpoint_url=https://s3.example.net&region=eu-west-1&prefix=/prod/")
    assert backend["BACKEND"] == "storages.backends.s3.S3Storage"
    assert backend["OPTIONS"] == {
        "bucket_name": "invoices",
        "endpoint_url": "https://s3.example.net",
        "region_name": "eu-west-1",
        "location": "prod",
        "default_acl": None,
        "querystring_auth": True,
        "file_overwrite": False,
    }


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("ftp://host/media", "scheme 'ftp' is not one of file, s3"),
        ("file://media", "needs an absolute path"),
        ("s3://", "needs a bucket name"),
        ("s3://bucket?endpoint=http://x", "unknown options: endpoint"),
    ],
)
def test_a_bad_storage_url_stops_start_up_with_one_clear_line(url, error):
    with pytest.raises(ImproperlyConfigured, match=error):
        storage_from_url(url)


# --- Invoice PDFs -----------------------------------------------------------------------------------


@pytest.fixture
def invoice(bucket, workspace, django_capture_on_commit_callbacks) -> Invoice:
    client = factories.ClientFactory(workspace=workspace, name="Acme Corp", billing_email="ap@acme.example")
    factories.make_retainer(workspace=workspace, client=client, price_minor=150000, currency="GBP")
    with django_capture_on_commit_callbacks(execute=True):
        [invoice_id] = services.bill_workspace(workspace_id=workspace.pk, as_of=date(2026, 1, 1)).invoices
    return Invoice.objects.get(pk=invoice_id)


@pytest.mark.django_db
def test_invoice_pdf_is_rendered_into_the_bucket_and_not_onto_disk(invoice, bucket, settings):
    assert invoice.pdf.name.startswith(f"invoices/{invoice.workspace_id}/")
    stored = keys(bucket, f"invoices/{invoice.workspace_id}/")
    assert list(stored) == [invoice.pdf.name]
    assert stored[invoice.pdf.name].startswith(b"%PDF")
    assert "2026-0001" in PdfReader(io.BytesIO(stored[invoice.pdf.name])).pages[0].extract_text()
    assert nothing_on_disk(settings.MEDIA_ROOT)


@pytest.mark.django_db
def test_invoice_email_attaches_the_pdf_read_from_the_bucket(invoice, bucket):
    [message] = mail.outbox
    [(filename, content, mimetype)] = message.attachments
    assert (filename, mimetype) == ("2026-0001.pdf", "application/pdf")
    assert content == keys(bucket, invoice.pdf.name)[invoice.pdf.name]


@pytest.mark.django_db
def test_invoice_pdf_downloads_stream_from_the_bucket_with_their_checks(
    invoice, bucket, owner_client, outsider_client, other_workspace, workspace, login
):
    stored = keys(bucket, invoice.pdf.name)[invoice.pdf.name]
    response = owner_client.get(reverse("billing:invoice_pdf", args=[workspace.slug, invoice.pk]))
    assert response.status_code == 200 and response.streaming
    assert b"".join(response.streaming_content) == stored
    assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]
    assert outsider_client.get(reverse("billing:invoice_pdf", args=[workspace.slug, invoice.pk])).status_code == 404

    contact = add_contact(client=invoice.client, name="Carol Chen", email="carol@acme.example", portal_access=True)
    portal = login(contact.user)
    response = portal.get(reverse("portal:invoice_pdf", args=[workspace.slug, invoice.pk]))
    assert response.status_code == 200 and b"".join(response.streaming_content) == stored
    assert "no-store" in response["Cache-Control"]

    response = owner_client.get(reverse("billing_public:pay_pdf", args=[paylinks.pay_token(invoice)]))
    assert response.status_code == 200 and b"".join(response.streaming_content) == stored


# --- Logos -----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_logo_upload_lands_in_the_bucket_and_reaches_the_pdf(bucket, workspace, owner_client, settings):
    buffer = io.BytesIO()
    Image.new("RGB", (400, 200), "navy").save(buffer, "PNG")
    response = owner_client.post(
        reverse("billing:billing_settings", args=[workspace.slug]),
        _settings_data(logo=SimpleUploadedFile("logo.png", buffer.getvalue())),
    )
    assert response.status_code == 302
    profile = BillingProfile.objects.get(workspace=workspace)
    assert list(keys(bucket, "logos/")) == [profile.logo.name]
    assert nothing_on_disk(settings.MEDIA_ROOT)

    client = factories.ClientFactory(workspace=workspace)
    invoice = services.create_invoice(client=client, lines=[("Workshop", 1, 150000)])
    invoice = services.issue_invoice(invoice=invoice, actor=None)
    page = PdfReader(io.BytesIO(render_invoice_pdf(invoice))).pages[0]
    assert list(page.images), "the logo read from the bucket is drawn on the PDF"


# --- Message attachments ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_message_attachment_uploads_to_the_bucket_and_downloads_from_it(
    bucket, workspace, alice, member_client, login, settings
):
    acme = factories.ClientFactory(workspace=workspace, name="Acme Corp")
    carol = add_contact(client=acme, name="Carol Chen", email="carol@acme.example", portal_access=True)
    response = member_client.post(
        reverse("communication:message_thread", args=[workspace.slug, acme.pk]),
        {"body": "The report", "attachments": [SimpleUploadedFile("Q1 report.pdf", PDF)]},
    )
    assert response.status_code == 302
    attachment = Attachment.objects.get()
    assert keys(bucket, f"attachments/{workspace.pk}/") == {attachment.file.name: PDF}
    assert nothing_on_disk(settings.MEDIA_ROOT)

    for browser, url in [
        (member_client, reverse("communication:attachment_download", args=[workspace.slug, attachment.pk])),
        (login(carol.user), reverse("portal:message_attachment", args=[workspace.slug, attachment.pk])),
    ]:
        download = browser.get(url)
        assert download.status_code == 200
        assert download["Content-Disposition"].startswith("attachment;")
        assert "no-store" in download["Cache-Control"]
        assert b"".join(download.streaming_content) == PDF


@pytest.mark.django_db
def test_a_file_gone_from_the_bucket_is_a_404_not_a_500(bucket, workspace, alice, member_client):
    acme = factories.ClientFactory(workspace=workspace)
    message = communication.send_team_message(
        client=acme, author=alice, body="x", files=[SimpleUploadedFile("a.pdf", PDF)]
    )
    attachment = message.attachments.get()
    s3, name = bucket
    s3.delete_object(Bucket=name, Key=attachment.file.name)
    url = reverse("communication:attachment_download", args=[workspace.slug, attachment.pk])
    assert member_client.get(url).status_code == 404
