"""Hole 7: changes of terms (amendments, pause and resume, cancel, end, payment collection) are
audited with the actor, what changed and, from the web, the IP."""

from __future__ import annotations

from datetime import date

import pytest
from django.urls import reverse

from delivery import services
from retainers.models import AuditEvent
from tests import factories

pytestmark = pytest.mark.django_db


def actions(retainer) -> list[tuple[str, str]]:
    return list(
        AuditEvent.objects.filter(object_type="clients.retainer", object_id=retainer.pk)
        .order_by("pk")
        .values_list("action", "actor_label")
    )


def test_an_amendment_records_what_changes_and_from_when(workspace, alice):
    retainer = factories.make_retainer(workspace=workspace, price_minor=200000, currency="GBP")
    services.amend_retainer(retainer=retainer, terms={"price_minor": 250000}, reason="New rate", actor=alice)
    event = AuditEvent.objects.get(action="terms.amended")
    assert (event.actor, event.client_id, event.summary) == (alice, retainer.client_id, retainer.name)
    assert event.changes["price_minor"] == [200000, 250000]
    assert event.changes["reason"] == "New rate"
    assert set(event.changes) == {"price_minor", "effective_on", "reason"}


def test_pause_resume_cancel_collection_and_end_are_audited(workspace, alice):
    retainer = factories.make_retainer(workspace=workspace)
    services.pause_retainer(retainer=retainer, on=date(2026, 1, 5), actor=alice)
    services.resume_retainer(retainer=retainer, on=date(2026, 1, 8), actor=alice)
    services.cancel_at_period_end(retainer=retainer, actor=alice)
    services.cancel_at_period_end(retainer=retainer, cancel=False, actor=alice)
    services.set_collection(retainer=retainer, auto_charge=True, pause_after_unpaid_days=14, actor=alice)
    services.set_collection(retainer=retainer, auto_charge=True, pause_after_unpaid_days=14, actor=alice)  # no change
    services.end_retainer(retainer=retainer, on=date(2026, 1, 20), actor=alice)
    alice_did = "alice@example.com"
    assert actions(retainer) == [
        ("retainer.paused", alice_did),
        ("retainer.resumed", alice_did),
        ("retainer.cancelled", alice_did),
        ("retainer.cancel_undone", alice_did),
        ("retainer.collection_changed", alice_did),
        ("retainer.ended", alice_did),
    ]
    collection = AuditEvent.objects.get(action="retainer.collection_changed")
    assert collection.changes == {"auto_charge": [False, True], "pause_after_unpaid_days": [None, 14]}


def test_pausing_from_the_page_records_the_person_and_ip(owner_client, workspace, alice):
    retainer = factories.make_retainer(workspace=workspace)
    response = owner_client.post(
        reverse("delivery:retainer_pause", args=[workspace.slug, retainer.pk]), REMOTE_ADDR="192.0.2.44"
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="retainer.paused")
    assert (event.actor, event.ip) == (alice, "192.0.2.44")
