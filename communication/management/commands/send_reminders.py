"""Reminders by hand: the same code beat runs every 15 minutes."""

from __future__ import annotations

from django.core.management.base import CommandParser

from communication import reminders
from retainers.runs import parse_as_of_moment
from retainers.tenancy import TenantCommand


class Command(TenantCommand):
    help = (
        "Open check-in tasks, email due-task reminders, low-balance alerts, daily digests, reminders before "
        "bookings and 'book your next session' nudges. Safe to run again: each email goes once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--as-of",
            dest="as_of",
            metavar="YYYY-MM-DD[THH:MM]",
            help="Run as of this moment: a date means the end of that day, a time without an offset "
            "is read in each workspace's time zone.",
        )

    def handle(self, *args: object, as_of: str | None = None, **options: object) -> None:
        moment = parse_as_of_moment(as_of) if as_of else None
        summary = reminders.send_reminders(as_of=moment)
        self.stdout.write(
            f"Reminders: {summary.check_ins} check-in task(s) opened, {summary.task_reminders} task reminder(s), "
            f"{summary.low_balance_alerts} low-balance alert(s), {summary.digests} digest(s), "
            f"{summary.booking_reminders} booking reminder(s), {summary.booking_nudges} booking nudge(s)."
        )
