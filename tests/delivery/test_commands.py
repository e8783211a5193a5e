"""`manage.py close_periods`: the same close the billing run does, by hand."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command

from delivery import services
from delivery.models import Period
from tests.factories import make_retainer

pytestmark = pytest.mark.django_db


def close_periods(*args: str) -> str:
    out = StringIO()
    call_command("close_periods", *args, stdout=out)
    return out.getvalue()


def test_closes_every_ended_period_as_of_a_date_and_is_idempotent(workspace, other_workspace):
    monthly = make_retainer(workspace=workspace, model="fixed")
    quarterly = make_retainer(workspace=workspace, cadence="quarterly")
    elsewhere = make_retainer(workspace=other_workspace)
    paused = make_retainer(workspace=workspace)
    services.pause_retainer(retainer=paused, on=date(2026, 1, 10))

    assert close_periods("--as-of", "2026-03-01") == "Closed 4 periods of 2 retainers.\n"
    assert Period.objects.filter(retainer=monthly).count() == 3  # Jan and Feb closed, Mar open
    assert Period.objects.filter(retainer=quarterly).count() == 1  # its first period ends 1 Apr
    assert Period.objects.filter(retainer=elsewhere, status="closed").count() == 2
    assert Period.objects.filter(retainer=paused).count() == 1  # paused retainers are left alone

    assert close_periods("--as-of", "2026-03-01") == "Closed 0 periods of 0 retainers.\n"
    assert Period.objects.filter(status="open").count() == 4


def test_workspace_option_limits_the_run(workspace, other_workspace):
    mine = make_retainer(workspace=workspace)
    theirs = make_retainer(workspace=other_workspace)
    assert close_periods("--as-of", "2026-02-01", "--workspace", workspace.slug) == "Closed 1 period of 1 retainer.\n"
    assert Period.objects.filter(retainer=mine).count() == 2
    assert Period.objects.filter(retainer=theirs).count() == 1


def test_as_of_defaults_to_each_workspaces_own_today(workspace, other_workspace):
    london = make_retainer(workspace=workspace)  # Europe/London
    new_york = make_retainer(workspace=other_workspace)  # America/New_York
    # 02:00 UTC on 1 Feb: already February in London, still 31 January in New York.
    with time_machine.travel("2026-02-01 02:00Z", tick=False):
        assert close_periods() == "Closed 1 period of 1 retainer.\n"
    assert Period.objects.filter(retainer=london).count() == 2
    assert Period.objects.filter(retainer=new_york).count() == 1


def test_closing_rolls_units_over(workspace):
    retainer = make_retainer(workspace=workspace, rollover_cap=D("5"))
    services.record_delivery(
        retainer=retainer, delivered_on=date(2026, 1, 5), quantity=D("3"), description="x", actor=None
    )
    close_periods("--as-of", "2026-02-01")
    retainer.refresh_from_db()
    assert retainer.balance == D("15")


@pytest.mark.parametrize("bad", ["2026-13-01", "2026-02-30", "yesterday", "01/02/2026", ""])
def test_a_bad_date_is_one_clear_error_and_closes_nothing(workspace, bad):
    make_retainer(workspace=workspace, starts_on=date(2025, 1, 1))
    with pytest.raises(CommandError, match="--as-of must be a date like 2026-01-31"):
        close_periods("--as-of", bad)
    assert Period.objects.count() == 1


def test_an_unknown_workspace_is_an_error(db):
    with pytest.raises(CommandError, match="No workspace with the slug 'nope'"):
        close_periods("--workspace", "nope")


@pytest.mark.slow
def test_bad_date_exits_non_zero_with_one_line():
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "manage.py", "close_periods", "--as-of", "2026-02-30"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "CommandError: --as-of must be a date like 2026-01-31, not '2026-02-30'."
    ]
