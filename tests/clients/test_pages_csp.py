"""Every page of the clients app, with real data and with form errors, obeys the strict CSP.

The site-wide walk in tests/retainers/test_security.py covers pages whose ids its fixture can
fill; this covers all of ours, including the import preview and pages reached only by a POST.
"""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from clients import services
from tests import factories
from tests.clients.helpers import HTMX, bulk_clients, make_plan, url
from tests.retainers.test_security import csp_problems

pytestmark = pytest.mark.django_db


def test_clients_pages_obey_the_csp(workspace, owner_client):
    bulk_clients(workspace, 30)
    acme = factories.ClientFactory(workspace=workspace, name="Acme")
    contact = services.add_contact(client=acme, name="Carol", email="carol@acme.example", portal_access=True)
    plan = make_plan(workspace)
    owner_client.post(
        url(workspace, "client_import"),
        {"file": SimpleUploadedFile("c.csv", b"name,billing_email\nNew Co,bad\nOther Co,\n", content_type="text/csv")},
    )
    responses = {
        "list": owner_client.get(url(workspace, "client_list")),
        "list page 2": owner_client.get(url(workspace, "client_list"), {"page": "2", "sort": "-utilization"}),
        "list empty": owner_client.get(url(workspace, "client_list"), {"q": "nothing matches this"}),
        "detail": owner_client.get(url(workspace, "dashboard:client_detail", client_id=acme.pk)),
        "new client": owner_client.get(url(workspace, "client_create")),
        "new client errors": owner_client.post(url(workspace, "client_create"), {"name": ""}),
        "edit client": owner_client.get(url(workspace, "client_edit", client_id=acme.pk)),
        "new contact": owner_client.get(url(workspace, "contact_create", client_id=acme.pk)),
        "new contact errors": owner_client.post(url(workspace, "contact_create", client_id=acme.pk), {}),
        "edit contact": owner_client.get(url(workspace, "contact_edit", contact_id=contact.pk)),
        "import": owner_client.get(url(workspace, "client_import")),
        "import errors": owner_client.post(url(workspace, "client_import"), {}),
        "import preview": owner_client.get(url(workspace, "client_import_preview")),
        "plans": owner_client.get(url(workspace, "plan_list")),
        "new plan": owner_client.get(url(workspace, "plan_create")),
        "new plan errors": owner_client.post(url(workspace, "plan_create"), {"model": "rollover"}),
        "edit plan": owner_client.get(url(workspace, "plan_edit", plan_id=plan.pk)),
    }
    for label, response in responses.items():
        assert response.status_code == 200, label
        assert csp_problems(response) == [], label


def test_htmx_fragments_carry_no_scripts_or_styles(workspace, owner_client):
    acme = factories.ClientFactory(workspace=workspace, name="Acme")
    fragments = [
        owner_client.get(url(workspace, "client_list"), {"q": "ac"}, **HTMX),
        owner_client.post(url(workspace, "contact_create", client_id=acme.pk), {}, **HTMX),
        owner_client.post(url(workspace, "plan_create"), {"model": "rollover", "refresh": "1"}, **HTMX),
    ]
    for response in fragments:
        html = response.content.decode()
        assert response.status_code == 200
        assert "<script" not in html and "style=" not in html and "<style" not in html
