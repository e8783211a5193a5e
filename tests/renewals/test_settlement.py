"""The term end: an accepted renewal's next term bills on time; unanswered ones renew or lapse."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from billing import services as billing
from billing.models import Invoice
from clients.models import Retainer
from renewals import services
from renewals.models import Renewal
from retainers.models import Email
from tests import factories
from tests.renewals.conftest import run

pytestmark = pytest.mark.django_db


def open_and_send(workspace, retainer, alice) -> Renewal:
    run(workspace, date(2026, 6, 1))
    return services.send_proposal(renewal=Renewal.objects.get(retainer=retainer), actor=alice)


def bill(workspace, day: date) -> list[int]:
    return billing.bill_workspace(workspace_id=workspace.pk, as_of=day).invoices


@pytest.fixture(autouse=True)
def _june(time_machine):
    time_machine.move_to("2026-06-02T09:00:00+00:00")


def test_accepted_next_term_starts_and_bills_on_time_and_the_old_one_ends(workspace, six_month_retainer, alice):
    retainer = six_month_retainer
    bill(workspace, date(2026, 6, 1))  # January to June, billed as they came
    renewal = open_and_send(workspace, retainer, alice)
    services.save_proposal(
        renewal=renewal, terms={"units_per_period": D("12"), "price_minor": 240000}, proposal_text="", actor=alice
    )
    renewal = services.send_proposal(renewal=renewal, actor=alice)
    renewal = services.accept_renewal(renewal=renewal)
    following = renewal.next_retainer

    assert bill(workspace, date(2026, 6, 30)) == []  # the next term has not started: nothing billed early
    [invoice_id] = bill(workspace, date(2026, 7, 1))
    invoice = Invoice.objects.get(pk=invoice_id)
    assert (invoice.retainer_id, invoice.issued_on, invoice.period_start_on, invoice.total_minor) == (
        following.pk,
        date(2026, 7, 1),
        date(2026, 7, 1),
        240000,
    )
    retainer.refresh_from_db()
    assert (retainer.status, retainer.ended_on) == ("ended", date(2026, 7, 1))
    assert not Invoice.objects.filter(retainer=retainer, period_start_on=date(2026, 7, 1)).exists()
    assert bill(workspace, date(2026, 7, 1)) == []

    run(workspace, date(2026, 7, 1))
    assert Renewal.objects.get(pk=renewal.pk).status == "accepted"  # answered: settling leaves it alone
    [next_month] = bill(workspace, date(2026, 8, 1))
    assert Invoice.objects.get(pk=next_month).retainer_id == following.pk


def test_declined_retainer_ends_at_term_end_and_bills_no_further(workspace, six_month_retainer, alice):
    renewal = open_and_send(workspace, six_month_retainer, alice)
    services.decline_renewal(renewal=renewal, reason="")
    bill(workspace, date(2026, 7, 2))
    six_month_retainer.refresh_from_db()
    assert (six_month_retainer.status, six_month_retainer.ended_on) == ("ended", date(2026, 7, 1))
    assert not Invoice.objects.filter(period_start_on__gte=date(2026, 7, 1)).exists()
    run(workspace, date(2026, 7, 2))
    assert Renewal.objects.get(pk=renewal.pk).status == "declined"


@pytest.mark.parametrize("billing_first", [True, False])
def test_no_answer_with_auto_renew_renews_on_the_same_terms(workspace, acme, carol, alice, billing_first):
    retainer = factories.make_retainer(client=acme, term_periods=6, auto_renew=True, price_minor=150000)
    renewal = open_and_send(workspace, retainer, alice)
    # Whichever job runs first on the term end day, the outcome is the same.
    steps = [lambda: bill(workspace, date(2026, 7, 1)), lambda: run(workspace, date(2026, 7, 1))]
    for step in steps if billing_first else steps[::-1]:
        step()
    renewal.refresh_from_db()
    retainer.refresh_from_db()
    assert (renewal.status, renewal.settled_at is not None) == ("renewed", True)
    assert (retainer.status, retainer.term_ends_on, retainer.auto_renew) == ("active", date(2027, 1, 1), True)
    july = Invoice.objects.get(retainer=retainer, period_start_on=date(2026, 7, 1))
    assert (july.issued_on, july.total_minor) == (date(2026, 7, 1), 150000)
    assert (
        Email.objects.filter(key__startswith=f"renewal-{renewal.pk}-settled-", subject__startswith="Renewed").count()
        == 1
    )
    run(workspace, date(2026, 7, 2))
    assert Email.objects.filter(key__startswith=f"renewal-{renewal.pk}-settled-").count() == 1


def test_no_answer_without_auto_renew_lapses_at_term_end(workspace, six_month_retainer, alice):
    renewal = open_and_send(workspace, six_month_retainer, alice)
    run(workspace, date(2026, 6, 30))
    assert Renewal.objects.get(pk=renewal.pk).status == "proposal_sent"  # not yet
    run(workspace, date(2026, 7, 1))
    renewal.refresh_from_db()
    assert renewal.status == "lapsed"
    bill(workspace, date(2026, 7, 1))
    six_month_retainer.refresh_from_db()
    assert (six_month_retainer.status, six_month_retainer.ended_on) == ("ended", date(2026, 7, 1))
    assert not Retainer.objects.filter(client=six_month_retainer.client).exclude(pk=six_month_retainer.pk).exists()
    assert (
        Email.objects.filter(key__startswith=f"renewal-{renewal.pk}-settled-", subject__startswith="Lapsed").count()
        == 1
    )


def test_an_answer_after_the_term_end_is_refused(workspace, six_month_retainer, alice, time_machine):
    renewal = open_and_send(workspace, six_month_retainer, alice)
    time_machine.move_to("2026-07-01T12:00:00+00:00")
    with pytest.raises(services.RenewalError, match="term has ended"):
        services.accept_renewal(renewal=renewal)
    assert renewal.retainer.client.retainers.count() == 1
