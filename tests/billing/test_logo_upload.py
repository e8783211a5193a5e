"""Logos (issue 16, item 5): judged by their header before any pixel is decoded, stored once at the
size a PDF needs, and never decoded at full size by a render."""

from __future__ import annotations

import io
from datetime import date

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from pypdf import PdfReader

from billing import services
from billing.logos import LOGO_BOX, logo_for_pdf
from billing.models import BillingProfile, Invoice
from billing.pdf import render_invoice_pdf
from tests import factories
from tests.billing.test_views import _settings_data, url

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """The PNG of the report: 10,000 × 10,000 pixels in 12 KB, 400 MB once decoded as RGBA."""
    buffer = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(buffer, "PNG")
    assert len(buffer.getvalue()) < 13_000
    return buffer.getvalue()


def image(size: tuple[int, int], image_format: str = "PNG", mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, (20, 60, 200, 128) if mode == "RGBA" else "navy").save(buffer, image_format)
    return buffer.getvalue()


def stored_logo(workspace) -> Image.Image:
    profile = BillingProfile.objects.get(workspace=workspace)
    with profile.logo.open("rb") as handle:
        return Image.open(io.BytesIO(handle.read()))


def logo_files() -> list[str]:
    return default_storage.listdir("logos")[1] if default_storage.exists("logos") else []


def upload(owner_client, workspace, data: bytes, name: str = "logo.png"):
    return owner_client.post(url(workspace, "billing_settings"), _settings_data(logo=SimpleUploadedFile(name, data)))


def test_decompression_bomb_is_refused_next_to_the_field_and_nothing_is_stored(owner_client, workspace, bomb):
    response = upload(owner_client, workspace, bomb)
    assert response.status_code == 200
    [error] = response.context["form"].errors["logo"]
    assert "4,000 pixels a side at most" in error
    assert not BillingProfile.objects.filter(workspace=workspace, legal_name="Northwind Advisory Ltd").exists()
    assert logo_files() == []


@pytest.mark.parametrize("size", [(4001, 100), (100, 5000), (3900, 3900)])
def test_logo_beyond_the_dimensions_is_refused_with_its_size(owner_client, workspace, size):
    response = upload(owner_client, workspace, image(size, mode="L"))
    [error] = response.context["form"].errors["logo"]
    assert f"{size[0]:,} × {size[1]:,} pixels" in error  # 3,900 × 3,900 is past the pixel count
    assert logo_files() == []


def test_big_logo_is_stored_once_downscaled_as_png_keeping_its_shape_and_transparency(owner_client, workspace):
    assert upload(owner_client, workspace, image((3000, 1500), mode="RGBA")).status_code == 302
    logo = stored_logo(workspace)
    assert (logo.format, logo.size, logo.mode) == ("PNG", (400, 200), "RGBA")
    assert logo.getpixel((10, 10))[3] == 128


def test_jpeg_logo_is_stored_as_a_png_that_fits_the_box(owner_client, workspace):
    assert upload(owner_client, workspace, image((2400, 600), "JPEG"), "photo.jpg").status_code == 302
    logo = stored_logo(workspace)
    assert (logo.format, logo.size) == ("PNG", (600, 150))


def test_small_logo_is_not_enlarged(owner_client, workspace):
    upload(owner_client, workspace, image((120, 40)))
    assert stored_logo(workspace).size == (120, 40)


def invoice_for(workspace) -> Invoice:
    client = factories.ClientFactory(workspace=workspace, name="Acme Corp")
    factories.make_retainer(workspace=workspace, client=client, price_minor=150000, currency="GBP")
    [invoice_id] = services.bill_workspace(workspace_id=workspace.pk, as_of=date(2026, 1, 1), deliver=False).invoices
    return Invoice.objects.select_related("workspace", "client").get(pk=invoice_id)


def pdf_images(data: bytes) -> list[tuple[int, int]]:
    return [image.image.size for page in PdfReader(io.BytesIO(data)).pages for image in page.images]


def test_pdf_shows_the_uploaded_logo_at_its_stored_size(owner_client, workspace):
    upload(owner_client, workspace, image((3000, 1000)))
    assert pdf_images(render_invoice_pdf(invoice_for(workspace))) == [(600, 200)]


def legacy_logo(workspace, data: bytes) -> None:
    """A logo stored before uploads were checked and downscaled."""
    profile = services.profile_for(workspace)
    profile.logo.save("legacy.png", ContentFile(data))


def test_pdf_downscales_a_large_legacy_logo_in_memory(workspace):
    legacy_logo(workspace, image((2000, 1000)))
    assert pdf_images(render_invoice_pdf(invoice_for(workspace))) == [(400, 200)]


def test_pdf_leaves_off_a_legacy_bomb_without_decoding_it(workspace, bomb, caplog):
    legacy_logo(workspace, bomb)
    data = render_invoice_pdf(invoice_for(workspace))
    assert data.startswith(b"%PDF") and pdf_images(data) == []
    assert "not drawable" in caplog.text
    assert logo_for_pdf(bomb) is None


def test_a_logo_that_fits_is_embedded_as_stored():
    data = image(LOGO_BOX)
    assert logo_for_pdf(data) is data


def test_truncated_png_is_refused_even_once_weasyprint_is_loaded(owner_client, workspace):
    import weasyprint  # noqa: F401  (it sets ImageFile.LOAD_TRUNCATED_IMAGES for the whole process)

    response = upload(owner_client, workspace, image((400, 200))[:300])
    assert "not a PNG or JPEG" in response.context["form"].errors["logo"][0]
    assert logo_files() == []
