"""Terms that overlap (issue 10, item 2): an accepted renewal signs the next term as its own
retainer, starting the day the current term ends. From acceptance until the old term ends both
are live; every page must still count and list the agreement once, for the dates its term covers.

The story: Bluebell Foods has a "Content Retainer", £2,400 a month, a three-month term from
1 Jan 2026 (it ends 1 Apr). Another client pays £4,400 a month. The workspace's monthly recurring
revenue is £6,800, whichever term of Bluebell's is in force. Bluebell accepts the renewal on
10 March. (Browsers sign in at the moment they look: time travels further than a session lasts.)
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from decimal import Decimal
from importlib import import_module
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from billing import services as billing
from billing.models import Invoice
from billing.preview import next_invoice
from clients.models import Retainer
from clients.services import add_contact
from delivery import booking, booking_setup
from delivery import services as delivery
from renewals import services as renewals
from renewals.models import Renewal
from tests import factories
from tests.dashboard.helpers import dashboard_url

pytestmark = pytest.mark.django_db
LONDON = ZoneInfo("Europe/London")


def at(day: date) -> datetime:
    return datetime.combine(day, time(12, 0), tzinfo=LONDON)


@pytest.fixture
def bluebell(workspace):
    return factories.ClientFactory(workspace=workspace, name="Bluebell Foods")


@pytest.fixture
def flora(bluebell):
    return add_contact(client=bluebell, name="Flora Bell", email="flora@bluebell.example", portal_access=True)


@pytest.fixture
def content(workspace, bluebell, flora, time_machine) -> Retainer:
    time_machine.move_to(at(date(2026, 1, 1)), tick=False)
    retainer = factories.make_retainer(
        client=bluebell,
        name="Content Retainer",
        starts_on=date(2026, 1, 1),
        model="fixed",
        units_per_period=Decimal("10"),
        price_minor=240000,
        currency="GBP",
        term_periods=3,
    )
    factories.make_retainer(
        workspace=workspace, name="Advisory", starts_on=date(2026, 1, 1), price_minor=440000, currency="GBP"
    )
    return retainer


def accept(workspace, retainer: Retainer, alice, time_machine) -> Retainer:
    """Open the renewal (its notice is 30 days), propose the same terms, and record the client's yes
    on 10 March."""
    for day in (date(2026, 2, 1), date(2026, 3, 1), date(2026, 3, 2)):
        time_machine.move_to(at(day), tick=False)
        billing.bill_workspace(workspace_id=workspace.pk, as_of=day, deliver=False)
        renewals.process_workspace(workspace_id=workspace.pk, as_of=day)
    time_machine.move_to(at(date(2026, 3, 10)), tick=False)
    renewal = Renewal.objects.get(retainer=retainer)
    same_terms = {"units_per_period": Decimal("10"), "price_minor": 240000}
    renewals.save_proposal(renewal=renewal, terms=same_terms, proposal_text="Same again.", actor=alice)
    renewals.accept_renewal(renewal=renewal, actor=alice)
    renewal.refresh_from_db()
    assert renewal.next_retainer is not None
    return renewal.next_retainer


def mrr(browser, workspace) -> str:
    response = browser.get(dashboard_url(workspace))
    assert response.status_code == 200, response.get("Location")
    return {m.currency: m for m in response.context["money"]}["GBP"].mrr


def test_next_term_links_back_to_the_term_it_renews(workspace, content, alice, time_machine):
    next_term = accept(workspace, content, alice, time_machine)

    assert next_term.previous_term == content
    assert content.next_term == next_term
    assert next_term.starts_on == date(2026, 4, 1) == content.term_ends_on


def test_current_is_the_term_that_covers_the_day(workspace, content, alice, time_machine):
    next_term = accept(workspace, content, alice, time_machine)
    ours = Retainer.objects.for_workspace(workspace).filter(client=content.client)

    assert list(ours.current(on=date(2026, 3, 31))) == [content]
    # From 1 April the next term is in force, even before the billing run has ended the old one.
    assert content.status == Retainer.Status.ACTIVE
    assert list(ours.current(on=date(2026, 4, 1))) == [next_term]
    assert list(ours.in_force(on=date(2026, 3, 31))) == [content]


def test_mrr_does_not_double_count_a_renewal_overlap(workspace, content, alice, login, time_machine):
    accept(workspace, content, alice, time_machine)

    time_machine.move_to(at(date(2026, 3, 14)), tick=False)
    assert mrr(login(alice), workspace) == "£6,800.00"  # was £9,200.00: both terms counted

    time_machine.move_to(at(date(2026, 4, 1)), tick=False)
    assert mrr(login(alice), workspace) == "£6,800.00"  # the new term in force, the run not yet done
    billing.bill_workspace(workspace_id=workspace.pk, as_of=date(2026, 4, 1), deliver=False)
    assert mrr(login(alice), workspace) == "£6,800.00"


def test_quick_add_lists_the_retainer_once(workspace, content, alice, login, time_machine):
    accept(workspace, content, alice, time_machine)
    time_machine.move_to(at(date(2026, 3, 14)), tick=False)

    html = login(alice).get(dashboard_url(workspace)).content.decode()

    assert html.count(f"{content.client.name} · Content Retainer") == 1


def test_dashboard_lists_the_retainer_once_with_its_next_term(workspace, content, alice, login, time_machine):
    next_term = accept(workspace, content, alice, time_machine)
    time_machine.move_to(at(date(2026, 3, 14)), tick=False)

    response = login(alice).get(dashboard_url(workspace))
    rows = [r.retainer for r in response.context["rows"] if r.retainer.client_id == content.client_id]

    assert [r.pk for r in rows] == [content.pk]
    assert "Next term starts 1 Apr" in response.content.decode()

    time_machine.move_to(at(date(2026, 4, 2)), tick=False)
    billing.bill_workspace(workspace_id=workspace.pk, as_of=date(2026, 4, 2), deliver=False)
    response = login(alice).get(dashboard_url(workspace))
    assert [r.retainer.pk for r in response.context["rows"] if r.retainer.client_id == content.client_id] == [
        next_term.pk
    ]


def test_portal_lists_the_retainer_once_with_its_next_term(workspace, content, flora, alice, login, time_machine):
    accept(workspace, content, alice, time_machine)
    time_machine.move_to(at(date(2026, 3, 14)), tick=False)
    flora.refresh_from_db()

    response = login(flora.user).get(f"/portal/w/{workspace.slug}/")

    assert response.status_code == 200
    assert [card.retainer.pk for card in response.context["cards"]] == [content.pk]
    assert "Next term starts 1 Apr" in response.content.decode()


# --- A paused term beside its accepted renewal -----------------------------------------------------


def test_billing_run_ends_a_paused_term_on_its_end_date_when_its_renewal_starts(
    workspace, content, alice, time_machine
):
    next_term = accept(workspace, content, alice, time_machine)
    time_machine.move_to(at(date(2026, 3, 20)), tick=False)
    delivery.pause_retainer(retainer=content, on=date(2026, 3, 20))  # e.g. dunning, for an unpaid invoice

    billing.bill_workspace(workspace_id=workspace.pk, as_of=date(2026, 3, 31), deliver=False)
    content.refresh_from_db()
    assert content.status == Retainer.Status.PAUSED  # its term has not ended yet

    billing.bill_workspace(workspace_id=workspace.pk, as_of=date(2026, 4, 2), deliver=False)
    billing.bill_workspace(workspace_id=workspace.pk, as_of=date(2026, 4, 2), deliver=False)  # idempotent

    content.refresh_from_db()
    assert (content.status, content.ended_on) == (Retainer.Status.ENDED, date(2026, 4, 1))
    assert not content.periods.filter(status="open").exists()
    ours = Retainer.objects.for_workspace(workspace).filter(client=content.client)
    assert list(ours.live()) == [next_term]


def test_resuming_does_not_push_the_term_past_its_renewal(workspace, content, alice, time_machine):
    next_term = accept(workspace, content, alice, time_machine)
    delivery.pause_retainer(retainer=content, on=date(2026, 3, 10))

    content = delivery.resume_retainer(retainer=content, on=date(2026, 3, 20))

    # Without a renewal the term and the period would move ten days, to 11 April.
    assert content.term_ends_on == next_term.starts_on == date(2026, 4, 1)
    assert content.periods.get(status="open").end_on == date(2026, 4, 1)


# --- The next term's first invoice waits while the old one is unpaid ---------------------------------


def march_invoice(content: Retainer) -> Invoice:
    return Invoice.objects.get(retainer=content, period_start_on=date(2026, 3, 1), kind=Invoice.Kind.SCHEDULED)


def pay_all_but_march(content: Retainer, alice) -> None:
    for invoice in Invoice.objects.filter(retainer=content, period_start_on__lt=date(2026, 3, 1)):
        billing.record_payment(invoice=invoice, amount_minor=invoice.total_minor, method="bank_transfer", actor=alice)


def first_invoice(next_term: Retainer) -> Invoice | None:
    return Invoice.objects.filter(retainer=next_term, kind=Invoice.Kind.SCHEDULED).first()


@pytest.mark.parametrize(
    ("auto_charge", "pause_after", "held"),
    [
        (False, 14, True),  # March's invoice (due 15 Mar) is 17 days past due on 1 Apr: 14 or more
        (False, 30, False),  # not yet as long as the retainer waits before pausing
        (True, None, True),  # charged to the card: never while an invoice of the term is past due
        (False, None, False),  # collected by hand, no pausing: invoices go out as usual
    ],
)
def test_first_invoice_of_the_next_term_waits_as_the_collection_settings_say(
    workspace, content, alice, time_machine, auto_charge, pause_after, held
):
    delivery.set_collection(retainer=content, auto_charge=auto_charge, pause_after_unpaid_days=pause_after)
    next_term = accept(workspace, content, alice, time_machine)
    pay_all_but_march(content, alice)
    assert march_invoice(content).due_on == date(2026, 3, 15)

    time_machine.move_to(at(date(2026, 4, 1)), tick=False)
    billing.bill_workspace(workspace_id=workspace.pk, as_of=date(2026, 4, 1), deliver=False)

    assert (first_invoice(next_term) is None) is held


def test_held_invoice_is_shown_with_its_reason_and_issued_once_the_old_one_is_paid(
    workspace, content, alice, login, time_machine
):
    delivery.set_collection(retainer=content, auto_charge=False, pause_after_unpaid_days=14)
    next_term = accept(workspace, content, alice, time_machine)
    pay_all_but_march(content, alice)
    time_machine.move_to(at(date(2026, 4, 2)), tick=False)
    billing.bill_workspace(workspace_id=workspace.pk, as_of=date(2026, 4, 2), deliver=False)
    billing.bill_workspace(workspace_id=workspace.pk, as_of=date(2026, 4, 2), deliver=False)
    unpaid = march_invoice(content)
    assert first_invoice(next_term) is None

    page = login(alice).get(reverse("dashboard:client_billing", args=[workspace.slug, content.client_id]))
    text = " ".join(page.content.decode().split())
    assert (
        "Held: the first invoice of Content Retainer (from 1 Apr 2026) waits because "
        f"invoice {unpaid.number} of the previous term is unpaid, 18 days past due." in text
    )

    # The preview knows: held, dated the day it would be released, and the dashboard says so.
    waiting = next_invoice(next_term, today=date(2026, 4, 2))
    assert waiting is not None and waiting.held and waiting.issue_on == date(2026, 4, 2)
    page = login(alice).get(dashboard_url(workspace)).content.decode()
    row = re.search(rf'<tr data-retainer="{next_term.pk}">.*?</tr>', page, re.S)
    assert row is not None and ">Held</span>" in row[0]

    time_machine.move_to(at(date(2026, 4, 6)), tick=False)
    billing.record_payment(invoice=unpaid, amount_minor=unpaid.total_minor, method="bank_transfer", actor=alice)
    announced = next_invoice(next_term, today=date(2026, 4, 6))
    billing.bill_workspace(workspace_id=workspace.pk, as_of=date(2026, 4, 6), deliver=False)

    released = first_invoice(next_term)
    assert released is not None
    assert announced is not None and (announced.issue_on, announced.total_minor) == (
        released.issued_on,
        released.total_minor,
    )
    # Dated the day it was released: the client gets its full payment terms.
    assert (released.issued_on, released.due_on) == (date(2026, 4, 6), date(2026, 4, 20))
    assert released.period.invoice_held_on == date(2026, 4, 2)
    assert (
        "Held:"
        not in login(alice)
        .get(reverse("dashboard:client_billing", args=[workspace.slug, content.client_id]))
        .content.decode()
    )


def test_migration_links_the_next_terms_renewals_signed_before_it(workspace, content, alice, time_machine):
    from django.apps import apps

    link_terms = import_module("renewals.migrations.0004_renewal_next_terms_link").link_terms
    next_term = accept(workspace, content, alice, time_machine)
    Retainer.objects.filter(pk=next_term.pk).update(previous_term=None)  # as an older acceptance left it

    link_terms(apps, None)

    next_term.refresh_from_db()
    assert next_term.previous_term == content


def test_portal_booking_offers_the_current_term_only(workspace, content, alice, bob, time_machine):
    session_type = booking_setup.save_session_type(
        workspace=workspace,
        session_type=None,
        member=bob,
        name="Content call",
        duration_minutes=60,
        hours=Decimal("1"),
        sessions=1,
        location="",
        reminder_minutes=[],
        all_retainers=True,
        retainers=[],
    )
    next_term = accept(workspace, content, alice, time_machine)

    assert booking.bookable_for_client(content.client) == [(session_type, [content])]
    assert booking.can_book(content.client)

    time_machine.move_to(at(date(2026, 4, 2)), tick=False)
    billing.bill_workspace(workspace_id=workspace.pk, as_of=date(2026, 4, 2), deliver=False)
    assert booking.bookable_for_client(content.client) == [(session_type, [next_term])]


def test_a_held_first_invoice_needs_attention_on_the_dashboard_until_it_is_released(
    workspace, content, alice, login, time_machine
):
    delivery.set_collection(retainer=content, auto_charge=False, pause_after_unpaid_days=14)
    accept(workspace, content, alice, time_machine)
    pay_all_but_march(content, alice)
    time_machine.move_to(at(date(2026, 4, 2)), tick=False)
    billing.bill_workspace(workspace_id=workspace.pk, as_of=date(2026, 4, 2), deliver=False)
    unpaid = march_invoice(content)

    page = " ".join(login(alice).get(dashboard_url(workspace)).content.decode().split())
    held = re.search(r'<div class="stack" id="attention-held">.*?</div>', page)
    assert held is not None
    assert 'Held invoices <span class="badge badge-warning">1</span>' in held[0]
    assert reverse("billing:invoice_detail", args=[workspace.slug, unpaid.pk]) in held[0]
    assert (
        f"First invoice of the term from 1 Apr held: invoice {unpaid.number} of the previous term is unpaid, "
        "18 days past due" in held[0]
    )
    assert '<a class="badge badge-warning" href="#attention-held">1 held invoice</a>' in page

    # Paid: the next run releases it, and nothing is held any more.
    time_machine.move_to(at(date(2026, 4, 6)), tick=False)
    billing.record_payment(invoice=unpaid, amount_minor=unpaid.total_minor, method="bank_transfer", actor=alice)
    assert 'id="attention-held"' not in login(alice).get(dashboard_url(workspace)).content.decode()
