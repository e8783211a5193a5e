"""Booking reminders and nudges by hand: the same code beat runs every 15 minutes."""

from __future__ import annotations

from datetime import UTC, datetime, time

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from delivery import booking_reminders
from retainers.runs import parse_as_of_moment


class Command(BaseCommand):
    help = "Email reminders before bookings and 'book your next session' nudges. Safe to run again: each goes once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--as-of",
            dest="as_of",
            metavar="YYYY-MM-DD[THH:MM]",
            help="Run as of this moment (UTC when no offset is given; a date means the end of that day).",
        )

    def handle(self, *args: object, as_of: str | None = None, **options: object) -> None:
        moment = None
        if as_of:
            parsed = parse_as_of_moment(as_of)
            if not isinstance(parsed, datetime):
                parsed = datetime.combine(parsed, time.max)
            moment = parsed if timezone.is_aware(parsed) else parsed.replace(tzinfo=UTC)
        summary = booking_reminders.send_booking_reminders(as_of=moment)
        self.stdout.write(f"Bookings: {summary.reminders} reminder(s), {summary.nudges} nudge(s).")
