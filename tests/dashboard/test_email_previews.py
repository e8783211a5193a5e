"""Emails that look like the consultant (issue 17, item 7): the workspace's logo, name and accent
colour on HTML emails, and a page that previews every email type with demo data."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.urls import reverse
from PIL import Image

from billing import services as billing_services
from billing.models import BillingProfile
from clients import services as client_services
from dashboard.emails import BY_TEMPLATE, TYPES
from retainers.models import Email, Membership
from tests import factories
from tests.retainers.test_accounts import field_errors, parse
from tests.retainers.test_security import csp_problems

pytestmark = pytest.mark.django_db

ACCENT = "#0f766e"


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (120, 40), "teal").save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def branded(workspace) -> BillingProfile:
    profile = billing_services.profile_for(workspace)
    profile.accent_color = ACCENT
    profile.logo.save(f"{workspace.pk}-logo.png", ContentFile(png()), save=False)
    profile.save()
    return profile


def email_types_on_disk() -> set[str]:
    root = Path(django_settings.BASE_DIR) / "templates" / "emails"
    return {path.name for path in root.iterdir() if path.is_dir()}


def test_every_email_type_the_product_has_is_listed(workspace, owner_client):
    assert set(BY_TEMPLATE) == email_types_on_disk()
    page = owner_client.get(reverse("email_previews", args=[workspace.slug]))
    assert page.status_code == 200 and csp_problems(page) == []
    links = {a.attrs["href"] for a in parse(page.content).iter() if a.tag == "a"}
    for email_type in TYPES:
        assert reverse("email_preview", args=[workspace.slug, email_type.template]) in links


@pytest.mark.parametrize("template", sorted(BY_TEMPLATE))
def test_each_type_previews_with_demo_data_in_the_workspaces_branding(
    workspace, owner_client, branded, settings, template
):
    # A variable the demo data lacks would print this instead of going blank unnoticed.
    settings.TEMPLATES = [
        {**settings.TEMPLATES[0], "OPTIONS": {**settings.TEMPLATES[0]["OPTIONS"], "string_if_invalid": "«%s?»"}}
    ]
    page = owner_client.get(reverse("email_preview", args=[workspace.slug, template]))
    assert page.status_code == 200
    assert csp_problems(page) == []
    [subject] = [node.text() for node in parse(page.content).iter() if node.attrs.get("id") == "email-subject"]
    assert subject and "«" not in subject
    text = parse(page.content).text()
    assert "«" not in text, text
    [frame] = [node for node in parse(page.content).iter() if node.tag == "iframe"]
    assert (
        "sandbox" in frame.attrs
        and not frame.attrs["sandbox"]
        and frame.attrs["src"].endswith(f"/settings/emails/{template}/frame/")
    )

    html_response = owner_client.get(frame.attrs["src"])
    assert html_response.status_code == 200
    html = html_response.content.decode()
    assert "«" not in html
    assert f"border-top:4px solid {ACCENT}" in html
    assert 'src="data:image/png;base64,' in html and 'alt="Northwind Advisory"' in html
    assert "<script" not in html
    policy = html_response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy and "sandbox" in policy
    assert html_response.headers["X-Frame-Options"] == "SAMEORIGIN"


def test_without_a_logo_or_colour_the_email_carries_the_name_in_our_colour(workspace, owner_client):
    html = owner_client.get(reverse("email_preview_frame", args=[workspace.slug, "invoice_issued"])).content.decode()
    assert "border-top:4px solid #2f5bd3" in html
    assert '<strong style="font-size:18px;color:#2f5bd3">Northwind Advisory</strong>' in html
    assert "<img" not in html


def test_a_sent_email_carries_the_same_branding_as_its_preview(
    workspace, owner_client, branded, django_capture_on_commit_callbacks
):
    acme = factories.ClientFactory(workspace=workspace, name="Acme")
    with django_capture_on_commit_callbacks(execute=True):
        client_services.add_contact(client=acme, name="Carol", email="carol@acme.example", portal_access=True)
    row = Email.objects.get(to="carol@acme.example")
    assert f"border-top:4px solid {ACCENT}" in row.body_html
    assert f"background:{ACCENT}" in row.body_html  # the button
    assert '<img src="cid:workspace-logo" alt="Northwind Advisory"' in row.body_html
    assert {"path": branded.logo.name, "filename": "logo.png", "mimetype": "image/png", "cid": "workspace-logo"} in (
        row.attachments
    )

    [message] = mail.outbox
    sent = message.message()
    [logo] = [part for part in sent.walk() if part.get("Content-ID") == "<workspace-logo>"]
    assert logo.get_content_type() == "image/png" and logo.get_content_disposition() == "inline"
    assert logo.get_content() == png() or logo.get_payload(decode=True) == branded.logo.open("rb").read()
    [html] = [part.get_content() for part in sent.walk() if part.get_content_type() == "text/html"]
    assert f"border-top:4px solid {ACCENT}" in html

    preview = owner_client.get(reverse("email_preview_frame", args=[workspace.slug, "portal_invitation"]))
    header = '<div style="margin:0 0 20px"><img src="'
    assert header in preview.content.decode() and header in row.body_html  # one layout for both


def test_platform_emails_carry_the_products_name(client, django_capture_on_commit_callbacks):
    factories.UserFactory(email="dana@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/accounts/password/reset/", {"email": "dana@example.com"})
    row = Email.objects.get(to="dana@example.com")
    assert '<strong style="font-size:18px;color:#2f5bd3">Retainers</strong>' in row.body_html


def test_previews_of_another_workspace_are_404(workspace, outsider_client):
    for name, args in (
        ("email_previews", []),
        ("email_preview", ["invoice_issued"]),
        ("email_preview_frame", ["invoice_issued"]),
    ):
        assert outsider_client.get(reverse(name, args=[workspace.slug, *args])).status_code == 404


PREVIEW_PAGES = (
    ("email_previews", []),
    ("email_preview", ["invoice_issued"]),
    ("email_preview_frame", ["invoice_issued"]),
)


def test_previews_are_for_owners_and_admins_as_every_settings_page(workspace, owner_client, login):
    admin = factories.MembershipFactory(workspace=workspace, role=Membership.Role.ADMIN).user
    for browser in (owner_client, login(admin)):
        for name, args in PREVIEW_PAGES:
            assert browser.get(reverse(name, args=[workspace.slug, *args])).status_code == 200
    settings_page = owner_client.get(reverse("billing:billing_settings", args=[workspace.slug])).content.decode()
    assert reverse("email_previews", args=[workspace.slug]) in settings_page


def test_members_may_not_see_the_previews_nor_a_link_to_them(workspace, member_client):
    for name, args in PREVIEW_PAGES:
        assert member_client.get(reverse(name, args=[workspace.slug, *args])).status_code == 403
    link = reverse("email_previews", args=[workspace.slug])
    for page in ("dashboard", "client_list"):
        name = page if page == "dashboard" else f"clients:{page}"
        response = member_client.get(reverse(name, args=[workspace.slug]))
        assert response.status_code == 200 and link not in response.content.decode()


def test_an_unknown_email_type_is_404(workspace, owner_client):
    assert owner_client.get(reverse("email_preview", args=[workspace.slug, "layout"])).status_code == 404
    assert owner_client.get(reverse("email_preview_frame", args=[workspace.slug, "nope"])).status_code == 404


# --- The accent colour setting -------------------------------------------------------------


def settings_data(workspace, **overrides: str) -> dict[str, str]:
    return {
        "legal_name": "",
        "address": "",
        "tax_id": "",
        "tax_label": "VAT",
        "tax_rate": "20",
        "payment_terms_days": "14",
        "payment_instructions": "",
        "reminder_offsets": "",
        "retry_days": "",
        "stripe_account_id": "",
        "locale": workspace.locale or "en_GB",
        "accent_color": "",
        **overrides,
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("#12345", "Enter a colour as #rrggbb, e.g. #0f766e."),
        ("teal", "Enter a colour as #rrggbb, e.g. #0f766e."),
        ("#ffff00", "White text on this colour is hard to read: choose a darker one."),
    ],
)
def test_a_bad_accent_colour_is_an_error_next_to_the_field(workspace, owner_client, value, message):
    url = reverse("billing:billing_settings", args=[workspace.slug])
    response = owner_client.post(url, settings_data(workspace, accent_color=value))
    assert response.status_code == 200
    assert field_errors(response.content, "accent_color") == [message]
    assert billing_services.profile_for(workspace).accent_color == ""


def test_the_accent_colour_is_saved_in_one_form(workspace, owner_client):
    url = reverse("billing:billing_settings", args=[workspace.slug])
    response = owner_client.post(url, settings_data(workspace, accent_color=" 0F766E "))
    assert response.status_code == 302, field_errors(response.content, "accent_color")
    assert billing_services.profile_for(workspace).accent_color == ACCENT
    page = owner_client.get(url)
    assert f'value="{ACCENT}"' in page.content.decode()
    assert csp_problems(page) == []


def test_the_database_refuses_anything_but_a_colour(workspace):
    profile = billing_services.profile_for(workspace)
    for value in ("red", "#0F766E", '#000"><script>'[:7]):
        with pytest.raises(IntegrityError), transaction.atomic():
            BillingProfile.objects.filter(pk=profile.pk).update(accent_color=value)
