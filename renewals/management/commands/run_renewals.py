"""The renewals run by hand: the same code beat runs daily."""

from typing import Any

from django.core.management.base import CommandError, CommandParser

from renewals import services
from retainers.runs import parse_as_of
from retainers.tenancy import TenantCommand


class Command(TenantCommand):
    help = "Open due renewals, send due reminders, settle unanswered ones at term end. Safe to run again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--as-of",
            help="Run as if today were this date (YYYY-MM-DD) in every workspace, whatever the hour. Without it, "
            "as beat does: each workspace once per local day, after DAILY_JOBS_LOCAL_HOUR in its time zone.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        as_of = parse_as_of(options["as_of"])
        summary = services.run_renewals(as_of=as_of, inline=True)
        if not summary.started:
            raise CommandError("Another renewals run is in progress; nothing done.")
        self.stdout.write(
            f"Renewals in {summary.workspaces} workspace(s): {summary.opened} opened, "
            f"{summary.reminders} reminder(s) queued, {summary.settled} settled."
        )
