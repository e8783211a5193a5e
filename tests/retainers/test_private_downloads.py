"""Invoice PDFs, statement PDFs, CSV exports and attachments are never kept by a cache: each
answers `Cache-Control: private, no-store` (a shared proxy or the browser's disk would otherwise
hold a client's money and files after they signed out)."""

from __future__ import annotations

import pytest
from django.test import Client as Browser
from django.urls import reverse

from billing import paylinks
from billing.models import Invoice
from communication.models import Attachment
from delivery.models import Period
from tests.retainers.test_security import site  # noqa: F401  (the fixture: every kind of object)

pytestmark = pytest.mark.django_db


def test_private_downloads_are_not_cached(site, login):  # noqa: F811
    workspace, slug = site.workspace, site.workspace.slug
    invoice = Invoice.objects.for_workspace(workspace).exclude(number="").first()
    period = Period.objects.for_workspace(workspace).first()
    attachment = Attachment.objects.for_workspace(workspace).first()
    owner, contact = login(site.visitors["owner"]), login(site.visitors["contact"])
    downloads = [
        (owner, reverse("billing:invoice_pdf", args=[slug, invoice.pk])),  # renders and stores it, first
        (owner, reverse("billing:invoice_export", args=[slug])),
        (owner, reverse("communication:attachment_download", args=[slug, attachment.pk])),
        (Browser(), reverse("billing_public:pay_pdf", args=[paylinks.pay_token(invoice)])),
        (contact, reverse("portal:invoice_pdf", args=[slug, invoice.pk])),
        (contact, reverse("portal:statement_pdf", args=[slug, period.retainer_id, period.pk])),
        (contact, reverse("portal:message_attachment", args=[slug, attachment.pk])),
    ]
    for browser, url in downloads:
        response = browser.get(url)
        assert response.status_code == 200, url
        directives = {part.strip() for part in response.headers.get("Cache-Control", "").split(",")}
        assert {"private", "no-store"} <= directives, (url, response.headers.get("Cache-Control"))
