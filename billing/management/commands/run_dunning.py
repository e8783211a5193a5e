"""Dunning by hand: the same code beat runs daily."""

from datetime import date

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing import payments


class Command(BaseCommand):
    help = "Retry failed card charges that are due, send overdue notices and reminders, pause retainers. Safe to run again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--as-of", help="Run as if today were this date (YYYY-MM-DD) in every workspace.")

    def handle(self, *args: object, **options: object) -> None:
        as_of = None
        if options["as_of"]:
            try:
                as_of = date.fromisoformat(options["as_of"])
            except ValueError:
                raise CommandError(f"--as-of must be a date like 2026-03-01, not {options['as_of']!r}") from None
        summary = payments.run_dunning(as_of=as_of, inline=True)
        self.stdout.write(
            f"Dunning: {summary.charges} charge(s) retried, {summary.overdue_notices} overdue notice(s), "
            f"{summary.reminders} reminder(s), {summary.paused} retainer(s) paused"
            + (f", {summary.errors} charge(s) left for the next run (Stripe unavailable)." if summary.errors else ".")
        )
