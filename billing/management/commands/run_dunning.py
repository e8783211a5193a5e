"""Dunning by hand: the same code beat runs daily."""

from typing import Any

from django.core.management.base import CommandParser

from billing import dunning
from retainers.runs import parse_as_of
from retainers.tenancy import TenantCommand


class Command(TenantCommand):
    help = "Retry failed card charges that are due, send overdue notices and reminders, pause retainers. Safe to run again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--as-of",
            help="Run as if today were this date (YYYY-MM-DD) in every workspace, whatever the hour. Without it, "
            "as beat does: each workspace once per local day, after DAILY_JOBS_LOCAL_HOUR in its time zone.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        as_of = parse_as_of(options["as_of"])
        summary = dunning.run_dunning(as_of=as_of, inline=True)
        self.stdout.write(
            f"Dunning: {summary.charges} charge(s) retried, {summary.overdue_notices} overdue notice(s), "
            f"{summary.reminders} reminder(s), {summary.paused} retainer(s) paused"
            + (f", {summary.errors} charge(s) left for the next run (Stripe unavailable)." if summary.errors else ".")
        )
