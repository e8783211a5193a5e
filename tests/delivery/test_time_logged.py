"""A deliverables retainer's time is tracked, never drawn from a balance: its page and its
statement show the time logged (they said "0.00 hours" while 6.25 hours were listed)."""

from __future__ import annotations

import io
import re
from datetime import date
from decimal import Decimal as D

import pytest
import time_machine
from pypdf import PdfReader

from clients.services import add_contact
from delivery import services
from delivery.models import Period
from tests.factories import make_retainer

pytestmark = pytest.mark.django_db


@pytest.fixture
def reports(workspace):
    with time_machine.travel("2026-01-20 12:00Z", tick=False):
        retainer = make_retainer(
            workspace=workspace, name="Reports", model="deliverables", deliverables=["Audit", "Plan"]
        )
        for day, hours in ((5, "4"), (9, "2.25")):
            services.record_delivery(
                retainer=retainer,
                delivered_on=date(2026, 1, day),
                quantity=D(hours),
                description="Drafting",
                actor=None,
                billable=False,
            )
        yield retainer


def test_the_retainer_page_shows_the_time_logged(reports, workspace, owner_client):
    page = owner_client.get(f"/w/{workspace.slug}/retainers/{reports.pk}/").content.decode()
    stat = re.search(r"Time logged</span> <span class=\"stat-value\">(.*?)</span>", page, re.S).group(1)
    assert re.sub(r"<[^>]+>", "", stat).split() == ["6.25", "hours"]


def test_the_statement_shows_the_time_logged(reports, workspace, login):
    contact = add_contact(client=reports.client, name="Carol", email="carol@client.example", portal_access=True)
    period = Period.objects.get(retainer=reports)
    response = login(contact.user).get(f"/portal/w/{workspace.slug}/retainers/{reports.pk}/statement/{period.pk}/")
    content = b"".join(response.streaming_content) if hasattr(response, "streaming_content") else response.content
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)
    assert re.search(r"Time logged\s*6\.25", text), text
