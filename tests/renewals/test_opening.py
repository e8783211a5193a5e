"""Opening renewals: N days before each term ends, exactly once, catching up after downtime."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError

from delivery import services as delivery
from renewals import services
from renewals.models import Renewal
from retainers.models import Email
from tests import factories
from tests.renewals.conftest import run

pytestmark = pytest.mark.django_db


def opened_emails(renewal: Renewal) -> list[str]:
    return list(Email.objects.filter(key__startswith=f"renewal-{renewal.pk}-opened-").values_list("to", flat=True))


def test_renewal_opens_notice_days_before_the_term_end_and_not_a_day_sooner(workspace, six_month_retainer):
    assert run(workspace, date(2026, 5, 31)).opened == []
    result = run(workspace, date(2026, 6, 1))
    renewal = Renewal.objects.get()
    assert result.opened == [renewal.pk]
    assert (renewal.retainer_id, renewal.term_ends_on, renewal.opened_on) == (
        six_month_retainer.pk,
        date(2026, 7, 1),
        date(2026, 6, 1),
    )
    assert opened_emails(renewal) == ["alice@example.com"]  # the owner (Bob is a plain member)
    email = Email.objects.get(key__startswith=f"renewal-{renewal.pk}-opened-")
    assert email.from_name == "Northwind Advisory"
    assert "ends on 30 June 2026" in email.body_text and f"/renewals/{renewal.pk}/" in email.body_text


def test_each_retainer_uses_its_own_notice_days(workspace, acme):
    factories.make_retainer(client=acme, term_periods=6, renewal_notice_days=10)
    assert run(workspace, date(2026, 6, 20)).opened == []
    assert len(run(workspace, date(2026, 6, 21)).opened) == 1


def test_running_twice_opens_once_and_emails_once(workspace, six_month_retainer):
    run(workspace, date(2026, 6, 1))
    emails = Email.objects.count()
    assert run(workspace, date(2026, 6, 1)).opened == []
    assert run(workspace, date(2026, 6, 2)).opened == []
    assert Renewal.objects.count() == 1
    assert Email.objects.filter(key__contains="-opened-").count() == 1
    assert Email.objects.count() == emails  # nothing else came due on 2 June either


def test_after_downtime_the_missed_renewal_opens_with_the_date_it_was_due(workspace, six_month_retainer):
    result = run(workspace, date(2026, 6, 12))  # down from 31 May to 12 June
    renewal = Renewal.objects.get()
    assert result.opened == [renewal.pk]
    assert renewal.opened_on == date(2026, 6, 1)
    assert len(opened_emails(renewal)) == 1


def test_a_term_that_ended_while_down_gets_no_renewal(workspace, six_month_retainer):
    assert run(workspace, date(2026, 7, 1)).opened == []
    assert not Renewal.objects.exists()


def test_the_unique_constraint_is_the_last_guard(workspace, six_month_retainer):
    today = date(2026, 6, 1)
    first = services.open_renewal(retainer=six_month_retainer, today=today)
    assert first is not None
    assert services.open_renewal(retainer=six_month_retainer, today=today) is None
    assert Renewal.objects.count() == 1


def test_ended_paused_and_ending_retainers_get_no_renewal(workspace, acme):
    paused = factories.make_retainer(client=acme, term_periods=6)
    delivery.pause_retainer(retainer=paused, on=date(2026, 5, 1))
    ending = factories.make_retainer(client=acme, term_periods=6)
    delivery.cancel_at_period_end(retainer=ending)
    ended = factories.make_retainer(client=acme, term_periods=6)
    delivery.end_retainer(retainer=ended, on=date(2026, 3, 1))
    assert run(workspace, date(2026, 6, 1)).opened == []


def test_an_auto_renewed_retainer_gets_a_renewal_for_each_term(workspace, acme):
    retainer = factories.make_retainer(client=acme, term_periods=2, auto_renew=True, units_per_period=D("10"))
    run(workspace, date(2026, 2, 1))  # term ends 1 Mar
    delivery.close_and_open_period(retainer=retainer, as_of=date(2026, 3, 1))  # auto-renews to 1 May
    run(workspace, date(2026, 3, 1))
    delivery.close_and_open_period(retainer=retainer, as_of=date(2026, 4, 1))
    run(workspace, date(2026, 4, 1))
    assert list(Renewal.objects.order_by("term_ends_on").values_list("term_ends_on", "status")) == [
        (date(2026, 3, 1), "renewed"),
        (date(2026, 5, 1), "upcoming"),
    ]
    second = Renewal.objects.get(term_ends_on=date(2026, 5, 1))
    # Its evidence covers its own term only: March and April, not the first term.
    assert [p["start_on"] for p in second.evidence["periods"]] == ["2026-03-01", "2026-04-01"]


def test_a_pause_moves_an_open_renewal_to_the_new_term_end(workspace, six_month_retainer):
    run(workspace, date(2026, 6, 1))
    delivery.pause_retainer(retainer=six_month_retainer, on=date(2026, 6, 5))
    run(workspace, date(2026, 7, 2))  # paused past the old term end: nothing is settled
    assert Renewal.objects.get().status == "upcoming"
    delivery.resume_retainer(retainer=six_month_retainer, on=date(2026, 7, 5))  # a month later
    run(workspace, date(2026, 7, 5))
    renewal = Renewal.objects.get()
    assert (renewal.status, renewal.term_ends_on) == ("upcoming", date(2026, 7, 31))


def test_command_runs_every_workspace_as_of_a_date(workspace, other_workspace, six_month_retainer, capsys):
    factories.make_retainer(workspace=other_workspace, term_periods=6)
    call_command("run_renewals", "--as-of", "2026-06-01")
    assert Renewal.objects.count() == 2
    assert "2 opened" in capsys.readouterr().out
    call_command("run_renewals", "--as-of", "2026-06-01")
    assert Renewal.objects.count() == 2


def test_command_refuses_a_bad_date():
    with pytest.raises(CommandError, match="--as-of must be a date"):
        call_command("run_renewals", "--as-of", "2026-02-30")


@pytest.mark.parametrize(
    ("zone", "instant_utc", "opened"),
    [
        # Hourly beat, each workspace once per local day after DAILY_JOBS_LOCAL_HOUR (08:00 here).
        ("Asia/Tokyo", "2026-05-31T23:30:00+00:00", True),  # 08:30 on 1 June in Tokyo
        ("Asia/Tokyo", "2026-05-31T15:30:00+00:00", False),  # 1 June has begun in Tokyo, but it is 00:30
        ("America/New_York", "2026-06-01T03:30:00+00:00", False),  # still 31 May there
        ("America/New_York", "2026-06-01T11:30:00+00:00", False),  # 07:30 on 1 June
        ("America/New_York", "2026-06-01T12:30:00+00:00", True),
    ],
)
def test_the_beat_task_works_on_each_workspaces_local_date(zone, instant_utc, opened, settings):
    from renewals import tasks

    settings.DAILY_JOBS_LOCAL_HOUR = 8

    workspace = factories.WorkspaceFactory(timezone=zone)
    factories.make_retainer(workspace=workspace, term_periods=6)
    with time_machine.travel(instant_utc, tick=False):
        tasks.run_renewals.delay()  # eager in tests: fans out one task per workspace
        tasks.run_renewals.delay()
    assert Renewal.objects.filter(workspace=workspace).count() == (1 if opened else 0)
