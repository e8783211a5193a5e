"""The renewals run by hand: the same code beat runs daily."""

from datetime import date

from django.core.management.base import BaseCommand, CommandError, CommandParser

from renewals import services


class Command(BaseCommand):
    help = "Open due renewals, send due reminders, settle unanswered ones at term end. Safe to run again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--as-of", help="Run as if today were this date (YYYY-MM-DD) in every workspace.")

    def handle(self, *args: object, **options: object) -> None:
        as_of = None
        if options["as_of"]:
            try:
                as_of = date.fromisoformat(options["as_of"])
            except ValueError:
                raise CommandError(f"--as-of must be a date like 2026-03-01, not {options['as_of']!r}") from None
        summary = services.run_renewals(as_of=as_of, inline=True)
        if not summary.started:
            raise CommandError("Another renewals run is in progress; nothing done.")
        self.stdout.write(
            f"Renewals in {summary.workspaces} workspace(s): {summary.opened} opened, "
            f"{summary.reminders} reminder(s) queued, {summary.settled} settled."
        )
