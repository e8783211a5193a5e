"""Who may move money: void, credit notes, write-offs, refunds, "charge now" and credit balances are
for owners and admins; members only when the workspace grants it. Anyone else gets a 403 that
says why (never a 404: the invoice is in their workspace) and does not see the buttons."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.urls import reverse

from billing import refunds, services
from billing.models import Invoice, Payment
from billing.permissions import REFUSAL
from retainers.models import Membership
from tests import factories
from tests.billing.conftest import open_invoice, save_card

pytestmark = pytest.mark.django_db


@dataclass
class Action:
    name: str  # the URL name
    data: Callable[[Invoice], dict[str, str]]
    prepare: Callable[[Invoice], None] = lambda invoice: None


def _paid_by_transfer(invoice: Invoice) -> None:
    services.record_payment(invoice=invoice, amount_minor=invoice.total_minor, method="bank_transfer")


def _overpaid(invoice: Invoice) -> None:
    _paid_by_transfer(invoice)
    services.record_payment(invoice=invoice, amount_minor=5000, method="card", stripe_id="pi_twice")


def _refunded(invoice: Invoice) -> None:
    _paid_by_transfer(invoice)
    refunds.refund_payment(payment=invoice.payments.get(), amount_minor=10000, actor=None)


def _refund_data(invoice: Invoice) -> dict[str, str]:
    payment = invoice.payments.get()
    return {f"refund-{payment.pk}-amount": "10"}


ACTIONS = [
    Action("invoice_void", lambda invoice: {}),
    Action("invoice_mark_uncollectible", lambda invoice: {}),
    Action("credit_note_create", lambda invoice: {"amount": "100", "reason": "Billed twice"}),
    Action("invoice_charge", lambda invoice: {"attempts": "0"}),
    Action("payment_refund", _refund_data, _paid_by_transfer),
    Action("invoice_refund_excess", lambda invoice: {}, _overpaid),
    Action("invoice_apply_credit", lambda invoice: {}, _overpaid),
    Action("invoice_ask_refund_back", lambda invoice: {}, _refunded),
]


def url_of(action: Action, invoice: Invoice) -> str:
    args = [invoice.workspace.slug, invoice.pk]
    if action.name == "payment_refund":
        args.append(invoice.payments.get().pk)
    return reverse(f"billing:{action.name}", args=args)


def snapshot(invoice: Invoice) -> tuple:
    invoice.refresh_from_db()
    return (
        invoice.status,
        invoice.paid_minor,
        invoice.credited_minor,
        invoice.refunded_minor,
        invoice.carry_credit_minor,
        invoice.charge_attempts,
        Payment.objects.count(),
        Invoice.objects.count(),
    )


@pytest.fixture
def people(workspace, alice, bob, login):
    carol = factories.UserFactory(email="carol@example.com", name="Carol Admin")
    factories.MembershipFactory(workspace=workspace, user=carol, role=Membership.Role.ADMIN)
    return {"owner": login(alice), "admin": login(carol), "member": login(bob), "member granted": login(bob)}


def grant_members(workspace) -> None:
    profile = services.profile_for(workspace)
    profile.members_move_money = True
    profile.save()


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.name)
@pytest.mark.parametrize("role", ["owner", "admin", "member", "member granted"])
def test_each_money_action_by_each_role(action, role, people, workspace, acme):
    invoice = open_invoice(acme, amount_minor=120000)
    action.prepare(invoice)
    if role == "member granted":
        grant_members(workspace)
    before = snapshot(invoice)
    response = people[role].post(url_of(action, invoice), action.data(invoice))
    if role == "member":
        assert response.status_code == 403
        assert REFUSAL in response.content.decode()
        assert snapshot(invoice) == before  # nothing moved
    else:
        assert response.status_code == 302  # done, or refused for a reason of the invoice's own (a message)


def test_members_do_not_see_the_money_buttons_unless_granted(
    people, workspace, acme, fake_stripe, use_stripe, django_capture_on_commit_callbacks
):
    use_stripe(fake_stripe.url)
    save_card(acme, customer_id="cus_acme", payment_method_id=fake_stripe.add_card())
    open_ = open_invoice(acme, amount_minor=120000)
    paid = open_invoice(acme, amount_minor=50000)
    _paid_by_transfer(paid)
    overpaid = open_invoice(acme, amount_minor=50000)
    _overpaid(overpaid)
    refunded = open_invoice(acme, amount_minor=50000)
    _refunded(refunded)
    shown = {
        open_: ["invoice_void", "invoice_mark_uncollectible", "credit_note_create", "invoice_charge"],
        paid: ["payment_refund"],
        overpaid: ["invoice_refund_excess", "invoice_apply_credit"],
        refunded: ["invoice_ask_refund_back"],
    }

    def pages(role: str) -> dict[str, bool]:
        seen = {}
        for invoice, names in shown.items():
            page = people[role].get(reverse("billing:invoice_detail", args=[workspace.slug, invoice.pk]))
            assert page.status_code == 200
            body = page.content.decode()
            for name in names:
                action = next(a for a in ACTIONS if a.name == name)
                seen[name] = url_of(action, invoice) in body
        return seen

    assert all(pages("owner").values()) and all(pages("admin").values())
    assert not any(pages("member").values())
    grant_members(workspace)
    assert all(pages("member granted").values())


def test_the_setting_is_changed_by_admins_in_billing_settings(owner_client, member_client, workspace):
    settings_url = reverse("billing:billing_settings", args=[workspace.slug])
    page = owner_client.get(settings_url).content.decode()
    assert "Members may move money" in page
    assert member_client.get(settings_url).status_code == 403


def test_an_invoice_of_another_workspace_is_a_404_not_a_403(outsider_client, workspace, acme):
    invoice = open_invoice(acme)
    response = outsider_client.post(reverse("billing:invoice_void", args=[workspace.slug, invoice.pk]))
    assert response.status_code == 404
