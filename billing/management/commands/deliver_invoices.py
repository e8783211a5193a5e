"""The delivery sweep by hand: the same code beat runs every 10 minutes."""

from datetime import timedelta

from django.core.management.base import CommandError, CommandParser

from billing import sending
from retainers.tenancy import TenantCommand


class Command(TenantCommand):
    help = (
        "Deliver every issued invoice whose email or card charge never happened (and render again the PDFs, "
        "send the receipts a lost task left behind). Safe to run again: nothing is sent or charged twice."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            default="15",
            help="Only what has waited more than this many minutes (default 15: younger ones have their own task).",
        )
        parser.add_argument("--inline", action="store_true", help="Deliver in this process instead of queueing tasks.")

    def handle(self, *args: object, **options: object) -> None:
        text = str(options["older_than"]).strip()
        if not text.isdigit():
            raise CommandError(f"--older-than must be a whole number of minutes, not {text!r}.")
        summary = sending.deliver_due(older_than=timedelta(minutes=int(text)), inline=bool(options["inline"]))
        if not options["inline"]:
            self.stdout.write(f"Queued the delivery of {summary.invoices} invoice(s).")
            return
        self.stdout.write(
            f"{summary.invoices} invoice(s) to deliver or follow up: {summary.delivered} delivered, "
            f"{summary.failed} failed (see each invoice's page)."
        )
        if summary.failed:
            raise CommandError(f"{summary.failed} invoice(s) could not be delivered; the next run tries again.")
