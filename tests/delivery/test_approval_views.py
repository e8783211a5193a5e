"""Overage approval on the pages: the consultant asks from the retainer page, the client answers in
the portal or by the emailed link (once; a bad link gets a clear page), each side sees the record."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest
import time_machine
from django.core import mail

from billing import services as billing
from clients.services import add_contact
from delivery import approvals, services
from delivery.models import OverageApproval
from retainers.models import Email, Membership
from tests import factories

pytestmark = pytest.mark.django_db

NOON = "2026-01-10 12:00Z"


@pytest.fixture
def setup(workspace, alice):
    with time_machine.travel(NOON, tick=False):
        retainer = factories.make_retainer(workspace=workspace, model="fixed", units_per_period=D("2"))
        services.set_collection(
            retainer=retainer,
            auto_charge=False,
            pause_after_unpaid_days=None,
            overage_needs_approval=True,
            overage_block=D("3"),
        )
        retainer.refresh_from_db()
        contact = add_contact(client=retainer.client, name="Carol Chen", email="carol@acme.example", portal_access=True)
    return retainer, contact


def workspace_owner(workspace):
    return Membership.objects.get(workspace=workspace, role="owner").user


def retainer_url(retainer, path=""):
    return f"/w/{retainer.workspace.slug}/retainers/{retainer.pk}/{path}"


def link_of(email: Email) -> str:
    return next(line for line in email.body_text.splitlines() if "/overage/" in line).split("127.0.0.1:8000", 1)[-1]


def test_the_consultant_asks_from_the_retainer_page_and_sees_the_answer(setup, owner_client, login):
    retainer, contact = setup
    with time_machine.travel(NOON, tick=False):
        page = owner_client.get(retainer_url(retainer)).content.decode()
        assert "Ask the client to approve more" in page and "Needs the client's approval" in page
        response = owner_client.post(
            retainer_url(retainer, "overage/request/"), {"offered": "4", "message": "The audit ran long."}
        )
        assert response.status_code == 302
        approval = OverageApproval.objects.get(retainer=retainer)
        assert (approval.offered, approval.message, approval.status) == (D("4"), "The audit ran long.", "requested")
        approvals.answer_overage(approval=approval, approve=True, quantity=D("3"), contact=contact, via="portal")
        page = owner_client.get(retainer_url(retainer)).content.decode()
    assert "Carol Chen &lt;carol@acme.example&gt;" in page and "3.00 of 4.00" in page


def test_a_bad_request_shows_the_error_next_to_the_field(setup, owner_client):
    retainer, _ = setup
    response = owner_client.post(retainer_url(retainer, "overage/request/"), {"offered": "-2", "message": ""})
    assert response.status_code == 200
    assert "has-error" in response.content.decode()
    assert not OverageApproval.objects.exists()


def test_another_workspace_cannot_ask(setup, outsider_client):
    retainer, _ = setup
    response = outsider_client.post(retainer_url(retainer, "overage/request/"), {"offered": "2"})
    assert response.status_code == 404
    assert not OverageApproval.objects.exists()


def test_the_client_approves_in_the_portal_from_the_banner(setup, login, alice):
    retainer, contact = setup
    with time_machine.travel(NOON, tick=False):
        approval = approvals.offer_overage(retainer=retainer)
        browser = login(contact.user)
        overview = browser.get(f"/portal/w/{retainer.workspace.slug}/").content.decode()
        answer_url = f"/portal/w/{retainer.workspace.slug}/overage/{approval.pk}/"
        assert answer_url in overview and "up to 3.00 extra hours" in overview
        response = browser.post(answer_url, {"answer": "approve", "quantity": "2.5"}, REMOTE_ADDR="198.51.100.7")
        assert response.status_code == 302
        approval.refresh_from_db()
        assert (approval.status, approval.quantity, approval.answered_via) == ("approved", D("2.5"), "portal")
        assert approval.answered_ip == "198.51.100.7"
        assert answer_url not in browser.get(f"/portal/w/{retainer.workspace.slug}/").content.decode()
        record = browser.get(answer_url).content.decode()
        assert "Approved: 2.50 hours" in record
        listing = browser.get(f"/portal/w/{retainer.workspace.slug}/overage/").content.decode()
        assert "2.50 of 3.00" in listing
    assert Email.objects.filter(to=alice.email, key__startswith=f"overage-answer-{approval.pk}").exists()


def test_approving_more_than_offered_is_a_field_error(setup, login):
    retainer, contact = setup
    approval = approvals.offer_overage(retainer=retainer)
    response = login(contact.user).post(
        f"/portal/w/{retainer.workspace.slug}/overage/{approval.pk}/", {"answer": "approve", "quantity": "9"}
    )
    assert response.status_code == 200 and "You may approve up to 3" in response.content.decode()
    assert OverageApproval.objects.get(pk=approval.pk).status == "requested"


def test_another_clients_contact_gets_404(setup, login, workspace):
    retainer, _ = setup
    approval = approvals.offer_overage(retainer=retainer)
    other = factories.ClientFactory(workspace=workspace)
    dave = add_contact(client=other, name="Dave", email="dave@other.example", portal_access=True)
    response = login(dave.user).post(
        f"/portal/w/{workspace.slug}/overage/{approval.pk}/", {"answer": "approve", "quantity": "1"}
    )
    assert response.status_code == 404
    assert OverageApproval.objects.get(pk=approval.pk).status == "requested"


def test_the_emailed_link_approves_once_without_signing_in(setup, client, alice):
    retainer, contact = setup
    approval = approvals.request_overage(retainer=retainer, offered=D("3"), message="", actor=alice)
    url = link_of(Email.objects.get(to=contact.email, key__startswith="overage-ask-"))
    page = client.get(url)
    assert page.status_code == 200 and "Approve extra hours" in page.content.decode()
    response = client.post(url, {"answer": "approve", "quantity": "1:30"})
    assert response.status_code == 200 and "1.50 extra hours approved" in response.content.decode()
    approval.refresh_from_db()
    assert (approval.status, approval.quantity, approval.answered_by, approval.answered_via) == (
        "approved",
        D("1.5"),
        contact,
        "link",
    )
    again = client.post(url, {"answer": "approve", "quantity": "3"})
    assert again.status_code == 410 and "already answered" in again.content.decode()
    assert OverageApproval.objects.get(pk=approval.pk).quantity == D("1.5")
    del mail.outbox[:]


def test_tampered_and_expired_links_get_a_clear_page(setup, client, alice):
    retainer, contact = setup
    approvals.request_overage(retainer=retainer, offered=D("3"), message="", actor=alice)
    url = link_of(Email.objects.get(to=contact.email, key__startswith="overage-ask-"))
    tampered = client.get(url.replace("/overage/", "/overage/x"))
    assert tampered.status_code == 400 and "This link is not valid" in tampered.content.decode()
    assert client.get("/overage/nonsense/").status_code == 400
    with time_machine.travel(date(2099, 1, 1)):
        expired = client.post(url, {"answer": "approve", "quantity": "1"})
    assert expired.status_code == 410 and "This link has expired" in expired.content.decode()
    assert OverageApproval.objects.get(retainer=retainer).status == "requested"


def test_declining_by_link_is_recorded(setup, client, alice):
    retainer, contact = setup
    approvals.request_overage(retainer=retainer, offered=D("3"), message="", actor=alice)
    url = link_of(Email.objects.get(to=contact.email, key__startswith="overage-ask-"))
    response = client.post(url, {"answer": "decline", "reason": "Budget is spent"})
    assert response.status_code == 200 and "Thank you for letting us know" in response.content.decode()
    approval = OverageApproval.objects.get(retainer=retainer)
    assert (approval.status, approval.decline_reason) == ("declined", "Budget is spent")


def test_the_collection_form_turns_overage_approval_on_with_field_errors(workspace, owner_client):
    retainer = factories.make_retainer(workspace=workspace)
    url = retainer_url(retainer, "collection/")
    bad = owner_client.post(url, {"overage_needs_approval": "on", "overage_block": "0"})
    assert bad.status_code == 200 and "Enter more than zero." in bad.content.decode()
    retainer.refresh_from_db()
    assert not retainer.overage_needs_approval
    assert owner_client.post(url, {"overage_needs_approval": "on", "overage_block": "2:30"}).status_code == 302
    retainer.refresh_from_db()
    assert (retainer.overage_needs_approval, retainer.overage_block) == (True, D("2.5"))


def test_the_portals_next_invoice_counts_the_approved_overage_used_so_far(workspace, login):
    """Under "refuse" only approved overage can happen, and it is billed: the estimate counts it."""
    with time_machine.travel(NOON, tick=False):
        retainer = factories.make_retainer(
            workspace=workspace, model="fixed", units_per_period=D("2"), overage_policy="refuse"
        )
        # January's own invoice is issued: the next one is February's, carrying January's use.
        billing.bill_workspace(workspace_id=workspace.pk, as_of=date(2026, 1, 1), deliver=False)
        contact = add_contact(client=retainer.client, name="Carol Chen", email="carol@acme.example", portal_access=True)
        approval = approvals.request_overage(
            retainer=retainer, offered=D("3"), message="", actor=workspace_owner(workspace)
        )
        approvals.answer_overage(approval=approval, approve=True, quantity=D("3"), contact=contact, via="portal")
        services.record_delivery(
            retainer=retainer, delivered_on=date(2026, 1, 5), quantity=D("3"), description="Work", actor=None
        )
        page = login(contact.user).get(f"/portal/w/{workspace.slug}/").content.decode()
    # The next fee (£2,000.00) plus the one approved hour used beyond the balance (£150.00), as the
    # billing run will issue it (billing.preview).
    assert "1 February: £2,150.00, with the extra use so far" in page
