"""Hole 15: the daily jobs run at the workspace's local hour. Beat runs dunning and renewals
hourly; each workspace is processed once per local day, after DAILY_JOBS_LOCAL_HOUR in its own
time zone (retainers.daily), so a California workspace is not sent its overdue notices in the
middle of its night."""

from __future__ import annotations

from datetime import date, datetime

import pytest
import time_machine

from billing import dunning, tasks
from billing.models import Invoice
from retainers import tenancy
from retainers.daily import claim_days
from retainers.models import DailyRun, Email, Workspace
from tests import factories
from tests.billing.conftest import open_invoice

pytestmark = pytest.mark.django_db


def overdue_emails(invoice: Invoice) -> list[str]:
    return sorted(Email.objects.filter(key__startswith=f"invoice-{invoice.pk}-overdue").values_list("to", flat=True))


def beat_at(instant: str, capture) -> None:
    with time_machine.travel(instant, tick=False), capture(execute=True):
        tasks.run_dunning.delay()  # eager in tests, as beat would queue it


def test_a_california_workspace_is_dunned_once_a_day_after_its_local_hour(
    workspace, acme, settings, django_capture_on_commit_callbacks
):
    settings.DAILY_JOBS_LOCAL_HOUR = 8
    Workspace.objects.filter(pk=workspace.pk).update(timezone="America/Los_Angeles")
    invoice = open_invoice(acme, due_on=date(2027, 3, 9))  # overdue from 10 March, Pacific time
    capture = django_capture_on_commit_callbacks

    # 07:20 UTC, when the old daily beat ran: 23:20 on 9 March in California. Not overdue yet there,
    # and the evening is no time for notices anyway.
    beat_at("2027-03-10T07:20:00+00:00", capture)
    assert overdue_emails(invoice) == []
    # 07:30 on 10 March in California: overdue, but before the local hour.
    beat_at("2027-03-10T15:30:00+00:00", capture)
    assert overdue_emails(invoice) == []
    # 08:05 local: both sides are told, once.
    beat_at("2027-03-10T16:05:00+00:00", capture)
    assert overdue_emails(invoice) == sorted(["ap@acme.example", "alice@example.com"])
    # The hourly runs later that day find the workspace done: nothing more is sent or even looked at.
    Invoice.objects.filter(pk=invoice.pk).update(overdue_notified_at=None)  # would be told again if processed
    beat_at("2027-03-10T17:05:00+00:00", capture)
    beat_at("2027-03-11T07:55:00+00:00", capture)  # 23:55 on 10 March there
    assert len(overdue_emails(invoice)) == 2
    assert Invoice.objects.get(pk=invoice.pk).overdue_notified_at is None
    assert DailyRun.objects.get(workspace=workspace, job="dunning").done_on == date(2027, 3, 10)


def test_each_workspace_runs_at_its_own_local_hour(workspace, acme, settings, django_capture_on_commit_callbacks):
    settings.DAILY_JOBS_LOCAL_HOUR = 8
    london = workspace
    Workspace.objects.filter(pk=london.pk).update(timezone="Europe/London")
    tokyo = factories.WorkspaceFactory(timezone="Asia/Tokyo")
    # 08:30 in London on 10 March is 17:30 in Tokyo and 00:30 in California.
    california = factories.WorkspaceFactory(timezone="America/Los_Angeles")
    now = datetime.fromisoformat("2027-03-10T08:30:00+00:00")
    days = claim_days(DailyRun.Job.DUNNING, [london.pk, tokyo.pk, california.pk], now=now)
    assert days == {london.pk: date(2027, 3, 10), tokyo.pk: date(2027, 3, 10)}
    assert claim_days(DailyRun.Job.DUNNING, [london.pk, tokyo.pk, california.pk], now=now) == {}
    # Renewals keep their own day.
    assert claim_days(DailyRun.Job.RENEWALS, [california.pk], now=now) == {}
    assert claim_days(DailyRun.Job.RENEWALS, [london.pk], now=now) == {london.pk: date(2027, 3, 10)}


def test_as_of_still_runs_every_workspace_whatever_the_hour(
    workspace, acme, settings, django_capture_on_commit_callbacks
):
    settings.DAILY_JOBS_LOCAL_HOUR = 23
    invoice = open_invoice(acme, due_on=date(2027, 3, 9))
    with time_machine.travel("2027-03-10T01:00:00+00:00", tick=False), django_capture_on_commit_callbacks(execute=True):
        summary = dunning.run_dunning(as_of=date(2027, 3, 10), inline=True)
    assert summary.overdue_notices == 1
    assert len(overdue_emails(invoice)) == 2
    assert not DailyRun.objects.exists()  # a replay claims no day: beat still runs that day


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_claim_a_workspaces_day_once(settings):
    """The claim is one upsert: a second run waits on the first's row and then finds the day taken."""
    import threading

    from django.db import connection, transaction

    settings.DAILY_JOBS_LOCAL_HOUR = 8
    workspace = factories.WorkspaceFactory(timezone="Europe/Paris")
    now = datetime.fromisoformat("2027-03-10T09:30:00+00:00")
    first_claimed = threading.Event()
    results: dict[str, dict[int, date]] = {}

    def second_run() -> None:
        first_claimed.wait(5)
        try:
            with tenancy.cross_tenant("the second run's claim, a scan as the dunning run's is"):
                results["second"] = claim_days(DailyRun.Job.DUNNING, [workspace.pk], now=now)
        finally:
            connection.close()

    thread = threading.Thread(target=second_run)
    thread.start()
    with transaction.atomic():
        results["first"] = claim_days(DailyRun.Job.DUNNING, [workspace.pk], now=now)
        first_claimed.set()
        thread.join(0.5)
        assert thread.is_alive()  # waiting on the first run's row, not claiming beside it
    thread.join(5)
    assert results == {"first": {workspace.pk: date(2027, 3, 10)}, "second": {}}
