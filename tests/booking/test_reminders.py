"""Reminders before bookings and the "book your next session" nudge (delivery.booking_reminders), run as
part of the reminders job (communication.reminders)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.core.management import call_command

from communication import reminders as reminders_job
from communication import tasks
from delivery import booking, booking_setup
from retainers.models import Email
from tests.booking.conftest import NOW, at

pytestmark = pytest.mark.django_db


def reminders() -> list[tuple[str, str]]:
    return sorted(Email.objects.filter(key__contains="-remind-").values_list("to", "subject").order_by("to", "subject"))


@dataclass
class Sent:
    reminders: int
    nudges: int


def run(workspace, moment) -> Sent:
    """The reminders job for one workspace as of `moment`: what it sent of bookings."""
    summary = reminders_job.remind_workspace(workspace=workspace, now=moment)
    return Sent(reminders=summary.booking_reminders, nudges=summary.booking_nudges)


@pytest.fixture
def made(now, session_type, retainer, carol):
    """A booking on Thursday 12 March 10:00, made on Monday; offsets 24 h and 1 h."""
    return booking.book(
        session_type=session_type, retainer=retainer, starts_at=at(12, 10), actor=carol.user, contact=carol
    )


def test_each_offset_reminds_both_sides_once(workspace, made, carol, bob):
    assert run(workspace, at(11, 9)).reminders == 0  # 25 hours before
    assert run(workspace, at(11, 10)).reminders == 2
    assert run(workspace, at(11, 10, 15)).reminders == 0  # ran again: nothing twice
    assert run(workspace, at(12, 9, 1)).reminders == 2  # the one-hour reminder
    assert run(workspace, at(12, 9, 30)).reminders == 0
    assert run(workspace, at(12, 11)).reminders == 0  # it has started
    sent = reminders()
    assert [to for to, _ in sent] == [bob.email, bob.email, carol.email, carol.email]
    to_carol = Email.objects.filter(to=carol.email, key__contains="-remind-").first()
    assert "Thursday 12 March 2026, 06:00–07:00 (America/New_York)" in to_carol.body_text


def test_after_downtime_only_the_nearest_offset_is_sent(workspace, made):
    assert run(workspace, at(12, 9, 30)).reminders == 2  # both offsets have passed: the 1-hour one only
    assert run(workspace, at(12, 9, 45)).reminders == 0
    assert {
        key.split("-remind-")[1].split("-")[0]
        for key in Email.objects.values_list("key", flat=True)
        if "-remind-" in key
    } == {"60"}


def test_an_offset_already_passed_when_booked_is_skipped(workspace, now, session_type, retainer, carol):
    booking.book(session_type=session_type, retainer=retainer, starts_at=at(10, 9), actor=carol.user, contact=carol,
                 now=at(9, 10))  # fmt: skip
    assert run(workspace, at(9, 10, 15)).reminders == 0  # the 24-hour mark was before it was booked
    assert run(workspace, at(10, 8)).reminders == 2  # the 1-hour one still goes


def test_a_moved_booking_is_reminded_for_its_new_time(workspace, made, bob):
    run(workspace, at(11, 10))
    booking.reschedule(booking=made, starts_at=at(13, 10), actor=bob, now=at(11, 11))
    assert run(workspace, at(12, 10)).reminders == 2
    assert run(workspace, at(12, 10, 15)).reminders == 0


def test_cancelled_bookings_are_not_reminded(workspace, made, bob):
    booking.cancel(booking=made, actor=bob)
    assert run(workspace, at(11, 10)).reminders == 0


def test_the_reminders_beat_task_and_command_remind_of_bookings(workspace, made, capsys, settings):
    # One beat entry runs every reminder; bookings have no entry of their own any more.
    assert "booking-reminders" not in settings.CELERY_BEAT_SCHEDULE
    assert settings.CELERY_BEAT_SCHEDULE["reminders"]["task"] == "communication.tasks.send_reminders"
    tasks.send_reminders.delay()  # eager: fans out to remind_workspace, as of the (travelled) now, 9 March
    assert reminders() == []
    call_command("send_reminders", "--as-of", "2026-03-11T10:30")  # London wall-clock: the 24-hour mark
    assert len(reminders()) == 2
    assert "2 booking reminder(s), 0 booking nudge(s)" in capsys.readouterr().out
    call_command("send_reminders", "--as-of", "2026-03-11T10:45")
    assert len(reminders()) == 2


# --- Nudges --------------------------------------------------------------------------------------------


@pytest.fixture
def nudging(retainer):
    return booking_setup.save_policy(
        retainer=retainer, cancel_window_hours=24, late_cancel="keep", no_show="consume", nudge_after_days=14
    )


def nudges() -> list[str]:
    return list(Email.objects.filter(key__startswith="booking-nudge-").values_list("to", flat=True))


def test_a_quiet_client_is_nudged_once_per_quiet_spell(now, workspace, nudging, session_type, retainer, carol):
    retainer.created_at = NOW - timedelta(days=20)
    retainer.save(update_fields=["created_at"])
    assert run(workspace, NOW).nudges == 1
    assert run(workspace, NOW + timedelta(days=1)).nudges == 0
    assert nudges() == [carol.email]
    # A booking ends the spell; after it, a new quiet spell is nudged again.
    made = booking.book(
        session_type=session_type, retainer=retainer, starts_at=at(10, 9), actor=carol.user, contact=carol
    )
    assert run(workspace, NOW + timedelta(days=2)).nudges == 0  # something is booked ahead
    booking.mark_held(booking=made, actor=carol.user, now=at(10, 10))
    assert run(workspace, at(20, 9)).nudges == 0  # quiet for 11 days only
    assert run(workspace, at(24, 9)).nudges == 1
    assert nudges() == [carol.email, carol.email]


def test_no_nudge_without_a_policy_or_anything_to_book(now, workspace, session_type, retainer, carol, nudging):
    retainer.created_at = NOW - timedelta(days=20)
    retainer.save(update_fields=["created_at"])
    booking_setup.set_session_type_active(session_type=session_type, active=False)
    assert run(workspace, NOW).nudges == 0
    booking_setup.set_session_type_active(session_type=session_type, active=True)
    booking_setup.save_policy(
        retainer=retainer, cancel_window_hours=24, late_cancel="keep", no_show="consume", nudge_after_days=None
    )
    assert run(workspace, NOW).nudges == 0
