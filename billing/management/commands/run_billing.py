"""The billing run by hand: the same code beat runs hourly."""

from typing import Any

from django.core.management.base import CommandError, CommandParser

from billing import services
from retainers.runs import parse_as_of
from retainers.tenancy import TenantCommand


class Command(TenantCommand):
    help = "Close ended periods and issue every invoice that is due, once. Safe to run again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--as-of", help="Bill as if today were this date (YYYY-MM-DD) in every workspace.")

    def handle(self, *args: Any, **options: Any) -> None:
        as_of = parse_as_of(options["as_of"])
        summary = services.run_billing(as_of=as_of, inline=True)
        if not summary.started:
            raise CommandError("Another billing run is in progress; nothing done.")
        self.stdout.write(
            f"Billed {summary.workspaces} workspace(s): {summary.periods_closed} period(s) closed, "
            f"{summary.invoices} invoice(s) issued."
        )
