"""The reminders job: each email exactly once, run twice or after downtime."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import time_machine
from django.core import mail
from django.core.management import CommandError, call_command

from clients.models import Client
from communication import reminders, tasks
from communication import services as communication
from communication.models import Task
from delivery.models import Period
from delivery.services import close_and_open_period, record_delivery
from retainers.models import Email, Membership
from tests import factories

pytestmark = pytest.mark.django_db


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    """Run the job as of a moment (time-travelled, as beat would) and return its summary."""

    def run_at(moment: datetime) -> reminders.Summary:
        with time_machine.travel(moment, tick=False), django_capture_on_commit_callbacks(execute=True):
            return reminders.send_reminders()

    return run_at


def emails(prefix: str) -> list[tuple[str, str]]:
    return sorted(Email.objects.filter(key__startswith=prefix).values_list("key", "to"))


# --- Due tasks ----------------------------------------------------------------------------------


def test_a_due_task_is_reminded_once(acme, bob, run):
    task = communication.create_task(
        client=acme, title="Send proposal", due_at=at(2026, 1, 20, 9), assignee=bob, actor=bob
    )
    communication.create_task(client=acme, title="Nobody's", due_at=at(2026, 1, 20, 9), actor=bob)
    assert run(at(2026, 1, 20, 8, 59)).task_reminders == 0
    assert run(at(2026, 1, 20, 9, 0)).task_reminders == 1
    assert run(at(2026, 1, 20, 9, 15)).task_reminders == 0
    assert run(at(2026, 1, 23, 9, 0)).task_reminders == 0  # after downtime: still once
    assert emails("task-") == [(f"task-{task.pk}-due-{int(at(2026, 1, 20, 9).timestamp())}", "bob@example.com")]
    assert [m.subject for m in mail.outbox if m.subject.startswith("Due:")] == ["Due: Send proposal"]
    assert mail.outbox[[m.subject for m in mail.outbox].index("Due: Send proposal")].to == ["bob@example.com"]


def test_moving_a_task_arms_its_reminder_again(acme, bob, run):
    task = communication.create_task(client=acme, title="Call", due_at=at(2026, 1, 20, 9), assignee=bob, actor=bob)
    run(at(2026, 1, 20, 9))
    communication.update_task(task=task, title="Call", due_at=at(2026, 1, 22, 9), assignee=bob, actor=bob)
    assert run(at(2026, 1, 21, 9)).task_reminders == 0
    assert run(at(2026, 1, 22, 9)).task_reminders == 1
    assert len(emails("task-")) == 2


def test_tasks_missed_during_downtime_are_each_reminded_once(acme, alice, bob, run):
    for day in (18, 19, 20):
        communication.create_task(client=acme, title=f"Day {day}", due_at=at(2026, 1, day, 9), assignee=bob, actor=bob)
    done = communication.create_task(client=acme, title="Done", due_at=at(2026, 1, 18, 9), assignee=bob, actor=bob)
    communication.complete_task(task=done, actor=bob)
    assert run(at(2026, 1, 25, 12)).task_reminders == 3
    assert run(at(2026, 1, 25, 12)).task_reminders == 0


def test_no_reminder_for_someone_who_left_the_workspace(workspace, acme, bob, run):
    communication.create_task(client=acme, title="Call", due_at=at(2026, 1, 20, 9), assignee=bob, actor=bob)
    Membership.objects.filter(workspace=workspace, user=bob).delete()
    assert run(at(2026, 1, 20, 10)).task_reminders == 0


# --- Check-ins ------------------------------------------------------------------------------------


@pytest.fixture
def quiet_acme(acme, session):
    """Acme, with us since 1 January, last seen at the session of 12 January, checked in on every 14 days."""
    Client.objects.filter(pk=acme.pk).update(created_at=at(2026, 1, 1), checkin_every_days=14)
    return acme


def check_ins(client) -> list[Task]:
    return list(Task.objects.filter(client=client, source=Task.Source.CHECK_IN).order_by("pk"))


def test_a_check_in_opens_once_per_quiet_spell(quiet_acme, alice, run):
    assert run(at(2026, 1, 25, 12)).check_ins == 0
    summary = run(at(2026, 1, 26, 8))
    assert summary.check_ins == 1
    [task] = check_ins(quiet_acme)
    assert task.assignee == alice  # she delivered the last session
    assert task.status == Task.Status.OPEN and task.due_at == at(2026, 1, 26, 8)
    assert "14 days" in task.title
    assert run(at(2026, 1, 26, 8)).check_ins == 0
    assert run(at(2026, 1, 30, 8)).check_ins == 0  # still open: no second one
    assert len(check_ins(quiet_acme)) == 1
    assert emails("task-") == [(f"task-{task.pk}-due-{int(task.due_at.timestamp())}", "alice@example.com")]

    with time_machine.travel(at(2026, 1, 31, 10), tick=False):
        communication.complete_task(task=task, actor=alice)
    assert run(at(2026, 2, 13, 10)).check_ins == 0  # the check-in itself started a new spell
    assert run(at(2026, 2, 14, 10)).check_ins == 1
    assert len(check_ins(quiet_acme)) == 2


def test_a_message_ends_the_quiet_spell(quiet_acme, alice, carol, run):
    with time_machine.travel(at(2026, 1, 20, 10), tick=False):
        communication.send_contact_message(contact=carol, body="All good here")
    assert run(at(2026, 1, 26, 8)).check_ins == 0
    assert run(at(2026, 2, 3, 8)).check_ins == 1


def test_no_check_ins_without_a_cadence_or_for_archived_clients(acme, globex, session, run):
    Client.objects.filter(pk=acme.pk).update(created_at=at(2026, 1, 1))
    Client.objects.filter(pk=globex.pk).update(created_at=at(2026, 1, 1), checkin_every_days=7, status="archived")
    assert run(at(2026, 6, 1)).check_ins == 0


def test_a_check_in_can_also_email_the_client_to_book_once_per_check_in(quiet_acme, retainer, alice, bob, carol, run):
    communication.set_checkin_cadence(client=quiet_acme, every_days=21, email_client=True)
    assert run(at(2026, 2, 1, 12)).check_ins == 0
    assert emails("checkin-client-") == []
    assert run(at(2026, 2, 2, 8)).check_ins == 1  # three weeks after the session of 12 January
    [task] = check_ins(quiet_acme)
    assert emails("checkin-client-") == [(f"checkin-client-{task.pk}-contact{carol.pk}", "carol@acme.example")]
    [nudge] = [m for m in mail.outbox if m.to == ["carol@acme.example"] and "book" in m.subject]
    assert nudge.subject == "It has been three weeks — book your next session with Northwind Advisory"
    # Nothing to book yet: the portal itself.
    assert f"/portal/w/{quiet_acme.workspace.slug}/\n" in nudge.body + "\n"
    assert run(at(2026, 2, 3, 8)).check_ins == 0
    assert len(emails("checkin-client-")) == 1

    # Once a session type can be booked on the retainer, the next check-in links to booking.
    with time_machine.travel(at(2026, 2, 3, 9), tick=False):
        communication.complete_task(task=task, actor=alice)
    from delivery import booking_setup

    booking_setup.save_session_type(
        workspace=quiet_acme.workspace, session_type=None, member=bob, name="Call", duration_minutes=60,
        hours=Decimal("1"), sessions=1, location="", reminder_minutes=[], all_retainers=True, retainers=[],
    )  # fmt: skip
    assert run(at(2026, 2, 24, 9)).check_ins == 1
    assert len(emails("checkin-client-")) == 2
    latest = [m for m in mail.outbox if m.to == ["carol@acme.example"] and "book" in m.subject][-1]
    assert f"/portal/w/{quiet_acme.workspace.slug}/book/" in latest.body


def test_a_check_in_does_not_email_the_client_unless_asked(quiet_acme, carol, run):
    assert run(at(2026, 1, 26, 8)).check_ins == 1
    assert emails("checkin-client-") == []


def test_two_runs_at_once_open_one_check_in(quiet_acme, alice):
    with time_machine.travel(at(2026, 1, 26, 8), tick=False):
        first = communication.open_check_in(client=quiet_acme, due_at=at(2026, 1, 26, 8), assignee=alice)
        second = communication.open_check_in(client=quiet_acme, due_at=at(2026, 1, 26, 8), assignee=alice)
    assert first is not None and second is None


# --- Low-balance alerts -----------------------------------------------------------------------------


def deliver(retainer, hours: str, on: date, actor) -> None:
    record_delivery(retainer=retainer, delivered_on=on, quantity=Decimal(hours), description="Work", actor=actor)


def test_low_balance_alerts_once_per_period_and_threshold(workspace, retainer, alice, bob, carol, run):
    period = Period.objects.get(retainer=retainer, status="open")
    deliver(retainer, "8", date(2026, 1, 10), alice)  # 2 of 10 left: 20%, not below
    assert run(at(2026, 1, 10, 12)).low_balance_alerts == 0
    deliver(retainer, "0.5", date(2026, 1, 11), alice)  # 1.5 left: below 20%
    assert run(at(2026, 1, 11, 12)).low_balance_alerts == 2
    assert run(at(2026, 1, 11, 12, 15)).low_balance_alerts == 0
    assert emails("lowbal-") == [
        (f"lowbal-{period.pk}-20-contact{carol.pk}", "carol@acme.example"),
        (f"lowbal-{period.pk}-20-user{alice.pk}", "alice@example.com"),  # owners and admins; Bob is a member
    ]
    deliver(retainer, "1.5", date(2026, 1, 12), alice)  # used up
    assert run(at(2026, 1, 12, 12)).low_balance_alerts == 2
    assert run(at(2026, 1, 14, 12)).low_balance_alerts == 0
    assert len(emails(f"lowbal-{period.pk}-0-")) == 2
    assert "Used up: Acme Corp, Advisory retainer" in [m.subject for m in mail.outbox]

    # The next period starts afresh: its own alerts when it runs low.
    close_and_open_period(retainer=retainer, as_of=date(2026, 2, 1))
    retainer.refresh_from_db()
    assert run(at(2026, 2, 2, 12)).low_balance_alerts == 0
    deliver(retainer, "9", date(2026, 2, 3), alice)
    next_period = Period.objects.get(retainer=retainer, status="open")
    assert run(at(2026, 2, 3, 12)).low_balance_alerts == 2
    assert len(emails(f"lowbal-{next_period.pk}-20-")) == 2


def test_low_balance_alerts_offer_overage_approval_with_how_far_over_and_its_cost(retainer, alice, carol, run):
    """A retainer whose overage needs approval: the client's alert carries a signed link to approve
    up to the block at the rate, and once over, how far and what it costs."""
    from delivery import approvals
    from delivery.models import OverageApproval
    from delivery.services import set_collection

    set_collection(
        retainer=retainer,
        auto_charge=False,
        pause_after_unpaid_days=None,
        overage_needs_approval=True,
        overage_block=Decimal("5"),
    )
    retainer.refresh_from_db()
    deliver(retainer, "9", date(2026, 1, 10), alice)
    mail.outbox.clear()
    assert run(at(2026, 1, 10, 12)).low_balance_alerts == 2
    approval = OverageApproval.objects.get(retainer=retainer, status="requested")
    assert (approval.offered, approval.rate_minor, approval.requested_by) == (Decimal("5"), 15000, None)
    low = next(m for m in mail.outbox if m.to == ["carol@acme.example"])
    assert "up to 5.00 extra hours at £150.00 each (£750.00 for all of them)" in low.body
    token = next(line for line in low.body.splitlines() if "/overage/" in line).rstrip("/").rsplit("/", 1)[1]
    with time_machine.travel(at(2026, 1, 11, 9)):  # the link works for 14 days
        assert approvals.check_token(token).approval == approval
    # The link answers without signing in: the sent row no longer holds it (the team's keeps its body).
    row = Email.objects.get(message_id=low.extra_headers["Message-ID"])
    assert row.status == Email.Status.SENT and row.secret
    assert token not in row.body_text and token not in row.body_html
    team = next(m for m in mail.outbox if m.to == ["alice@example.com"] and "Running low" in m.subject)
    assert "offered up to 5.00 extra hours" in team.body
    assert not Email.objects.get(message_id=team.extra_headers["Message-ID"]).secret

    approvals.answer_overage(approval=approval, approve=True, quantity=Decimal("2"), contact=carol, via="link")
    deliver(retainer, "2.5", date(2026, 1, 12), alice)  # 1.5 over the balance, within the approval
    mail.outbox.clear()
    assert run(at(2026, 1, 12, 12)).low_balance_alerts == 2
    used_up = next(m for m in mail.outbox if m.to == ["carol@acme.example"])
    # How far over and what it costs, in the alert's one sentence (reminders.over_sentence).
    assert "1.50 hours over the 10.00 available. 1.50 hours at £150.00 an hour: £225.00 on the next invoice." in (
        used_up.body
    )
    # A new request is open for the rest of the period (the approved one is spent as it is used).
    assert OverageApproval.objects.filter(retainer=retainer, status="requested").count() == 1


def test_the_used_up_alert_under_bill_says_how_far_over_and_what_it_costs(retainer, alice, carol, run):
    deliver(retainer, "12.5", date(2026, 1, 10), alice)
    mail.outbox.clear()
    assert run(at(2026, 1, 10, 12)).low_balance_alerts == 2
    client_email = next(m for m in mail.outbox if m.to == ["carol@acme.example"])
    assert "2.50 hours over the 10.00 available. 2.50 hours at £150.00 an hour: £375.00 on the next invoice." in (
        client_email.body
    )
    row = Email.objects.get(message_id=client_email.extra_headers["Message-ID"])
    assert not row.secret and "2.50 hours over" in row.body_text  # no link in it: kept as sent


def test_after_downtime_a_used_up_retainer_gets_the_used_up_alert_only(retainer, alice, carol, run):
    deliver(retainer, "10", date(2026, 1, 10), alice)
    assert run(at(2026, 1, 20, 12)).low_balance_alerts == 2
    assert run(at(2026, 1, 20, 12)).low_balance_alerts == 0
    assert all("-0-" in key for key, _ in emails("lowbal-"))
    client_email = next(m for m in mail.outbox if m.to == ["carol@acme.example"] and "used" in m.subject.lower())
    assert "0 of 10 hours left" in client_email.body


def test_deliverables_retainers_and_healthy_ones_get_no_alert(workspace, acme, alice, run):
    factories.make_retainer(client=acme, name="Deliverables", model="deliverables", deliverables=["Report"])
    healthy = factories.make_retainer(client=acme, name="Healthy")
    deliver(healthy, "5", date(2026, 1, 10), alice)
    assert run(at(2026, 1, 20, 12)).low_balance_alerts == 0


# --- Daily digest ----------------------------------------------------------------------------------


def test_daily_digest_once_per_member_per_local_day_from_seven(workspace, acme, alice, bob, run):
    # London is on GMT in January: 07:00 local is 07:00 UTC.
    communication.create_task(client=acme, title="Overdue call", due_at=at(2026, 1, 19, 15), assignee=bob, actor=bob)
    communication.create_task(client=acme, title="Today's report", due_at=at(2026, 1, 20, 15), assignee=bob, actor=bob)
    communication.create_task(client=acme, title="Tomorrow's", due_at=at(2026, 1, 21, 15), assignee=bob, actor=bob)
    communication.create_task(client=acme, title="Unassigned today", due_at=at(2026, 1, 20, 11), actor=bob)
    alice_m = Membership.objects.get(workspace=workspace, user=alice)
    bob_m = Membership.objects.get(workspace=workspace, user=bob)

    assert run(at(2026, 1, 20, 6, 59)).digests == 0
    assert run(at(2026, 1, 20, 7, 0)).digests == 2
    assert run(at(2026, 1, 20, 7, 15)).digests == 0
    assert run(at(2026, 1, 20, 22, 0)).digests == 0
    assert set(emails("digest-")) == {
        (f"digest-{alice_m.pk}-2026-01-20", "alice@example.com"),  # the owner sees unassigned tasks
        (f"digest-{bob_m.pk}-2026-01-20", "bob@example.com"),
    }
    bob_digest = Email.objects.get(key=f"digest-{bob_m.pk}-2026-01-20")
    assert "Overdue call" in bob_digest.body_text and "Today's report" in bob_digest.body_text
    assert "Tomorrow's" not in bob_digest.body_text and "Unassigned today" not in bob_digest.body_text
    assert "Unassigned today" in Email.objects.get(key=f"digest-{alice_m.pk}-2026-01-20").body_text

    assert run(at(2026, 1, 21, 7, 5)).digests == 2  # a new local day
    assert run(at(2026, 1, 21, 7, 20)).digests == 0


def test_digest_follows_each_workspaces_time_zone(other_workspace, charlie, run):
    # New York is UTC-5 in January: 07:00 there is 12:00 UTC.
    client = factories.ClientFactory(workspace=other_workspace)
    communication.create_task(
        client=client, title="NY task", due_at=at(2026, 1, 20, 18), assignee=charlie, actor=charlie
    )
    assert run(at(2026, 1, 20, 11, 59)).digests == 0
    assert run(at(2026, 1, 20, 12, 0)).digests == 1


def test_member_with_nothing_due_gets_no_digest(workspace, run):
    assert run(at(2026, 1, 20, 8)).digests == 0
    assert not Email.objects.filter(key__startswith="digest-").exists()


# --- The command and the task ------------------------------------------------------------------------


def test_command_accepts_a_date_or_a_datetime(acme, bob, django_capture_on_commit_callbacks, capsys):
    communication.create_task(client=acme, title="Call", due_at=at(2026, 1, 20, 15), assignee=bob, actor=bob)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("send_reminders", "--as-of", "2026-01-20T14:00")  # London wall-clock: not due yet
    assert not Email.objects.filter(key__startswith="task-").exists()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("send_reminders", "--as-of", "2026-01-20")  # the end of that day
        call_command("send_reminders", "--as-of", "2026-01-20")
    assert len(emails("task-")) == 1
    assert "1 task reminder(s)" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01", "2026-01-20T25:00", "20-01-2026"])
def test_command_refuses_a_bad_as_of_in_one_line(value, db):
    with pytest.raises(CommandError) as error:
        call_command("send_reminders", "--as-of", value)
    assert "\n" not in str(error.value) and value in str(error.value)


def test_beat_task_fans_out_to_every_workspace(
    workspace, other_workspace, acme, bob, django_capture_on_commit_callbacks
):
    communication.create_task(client=acme, title="Call", due_at=at(2026, 1, 20, 9), assignee=bob, actor=bob)
    with time_machine.travel(at(2026, 1, 20, 10), tick=False), django_capture_on_commit_callbacks(execute=True):
        tasks.send_reminders.delay()
        tasks.send_reminders.delay()
    assert len(emails("task-")) == 1


@pytest.mark.slow
def test_bad_as_of_exits_non_zero_with_one_line():
    import os
    import subprocess
    import sys
    from pathlib import Path

    result = subprocess.run(
        [sys.executable, "manage.py", "send_reminders", "--as-of", "2026-02-30"],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "CommandError: --as-of must be a date like 2026-03-01 or a date and time like 2026-03-01T09:30, "
        "not '2026-02-30'."
    ]


def test_the_used_up_alert_says_how_far_over_and_what_the_overage_costs(retainer, alice, carol, run):
    """A client 3 hours over read "0 of 10 hours left" and nothing about the charge."""
    deliver(retainer, "13", date(2026, 1, 10), alice)  # 10 h at £150.00 an hour beyond them
    assert run(at(2026, 1, 20, 12)).low_balance_alerts == 2
    alerts = [m for m in mail.outbox if "used" in m.subject.lower()]
    assert sorted(m.to[0] for m in alerts) == ["alice@example.com", "carol@acme.example"]
    for email in alerts:
        assert "0 of 10" not in email.body
        assert "3.00 hours over the 10.00 available" in email.body
        assert "3.00 hours at £150.00 an hour: £450.00 on the next invoice" in email.body
