"""Invoices, payments and renewals on the client's timeline, beside sessions and notes."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import time_machine
from django.test import RequestFactory

from billing import services as billing
from dashboard import timeline
from renewals import services as renewals
from retainers.models import Membership
from tests import factories

pytestmark = pytest.mark.django_db


def test_invoices_payments_and_renewals_appear_newest_first(workspace, alice, owner_client):
    client = factories.ClientFactory(workspace=workspace, name="Acme Corp")
    retainer = factories.make_retainer(
        workspace=workspace, client=client, price_minor=150000, currency="GBP", term_periods=2
    )
    with time_machine.travel(datetime(2026, 1, 1, 9, tzinfo=UTC), tick=False):
        [invoice_id] = billing.bill_workspace(workspace_id=workspace.pk, as_of=date(2026, 1, 1)).invoices
    invoice = billing.Invoice.objects.get(pk=invoice_id)
    with time_machine.travel(datetime(2026, 1, 5, 9, tzinfo=UTC), tick=False):
        billing.record_payment(invoice=invoice, amount_minor=50000, method="bank_transfer")
    with time_machine.travel(datetime(2026, 1, 20, 9, tzinfo=UTC), tick=False):
        renewal = renewals.open_renewal(retainer=retainer, today=date(2026, 1, 20))
    assert renewal is not None

    request = RequestFactory().get("/")
    request.workspace, request.user = workspace, alice
    request.membership = Membership.objects.get(workspace=workspace, user=alice)
    page = timeline.page(request, client, kinds=["invoice", "payment", "renewal"])
    assert [e.kind for e in page.events] == ["renewal", "payment", "invoice"]
    assert page.events[1].title == "Payment of £500.00 (succeeded)"
    assert page.events[2].title == "Invoice 2026-0001"

    response = owner_client.get(f"/w/{workspace.slug}/clients/{client.pk}/timeline/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Invoice 2026-0001" in body and "Renewal of" in body
