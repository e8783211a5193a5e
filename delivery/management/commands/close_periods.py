"""Close every period that has ended and open the next: the same service the billing run calls."""

from __future__ import annotations

from django.core.management.base import CommandError, CommandParser

from clients.models import Retainer
from delivery import services
from retainers import tenancy
from retainers.models import Workspace
from retainers.runs import parse_as_of
from retainers.tenancy import TenantCommand


class Command(TenantCommand):
    help = "Close the periods of active retainers that ended on or before --as-of (default: each workspace's today)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--as-of", dest="as_of", metavar="YYYY-MM-DD", help="Close periods ending on or before this day."
        )
        parser.add_argument("--workspace", metavar="SLUG", help="Only this workspace.")

    def handle(self, *args: object, as_of: str | None = None, workspace: str | None = None, **options: object) -> None:
        day = parse_as_of(as_of)
        workspaces = Workspace.objects.order_by("pk")
        if workspace:
            workspaces = workspaces.filter(slug=workspace)
            if not workspaces.exists():
                raise CommandError(f"No workspace with the slug {workspace!r}.")
        closed = retainers = 0
        for ws in list(workspaces):
            with tenancy.use_workspace(ws):
                as_of_here = day or ws.today()
                # Only retainers with an open period that has ended: the service locks each one it is given.
                due = (
                    Retainer.objects.for_workspace(ws)
                    .filter(status=Retainer.Status.ACTIVE, periods__status="open", periods__end_on__lte=as_of_here)
                    .order_by("pk")
                )
                for retainer in due.iterator():
                    done = services.close_and_open_period(retainer=retainer, as_of=as_of_here)
                    if done:
                        retainers += 1
                        closed += len(done)
        noun = "period" if closed == 1 else "periods"
        self.stdout.write(f"Closed {closed} {noun} of {retainers} retainer{'' if retainers == 1 else 's'}.")
