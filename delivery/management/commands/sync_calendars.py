"""Sync every connected CalDAV calendar now, in this process: the same code beat runs in tasks."""

from __future__ import annotations

from delivery import caldav_sync
from delivery.models import CalendarConnection
from retainers import tenancy
from retainers.tenancy import TenantCommand


class Command(TenantCommand):
    help = "Read busy times from and write bookings to every connected CalDAV calendar."

    def handle(self, *args: object, **options: object) -> None:
        ok = failed = 0
        with tenancy.cross_tenant("sync_calendars: the connected calendars of every workspace"):
            connection_ids = list(CalendarConnection.objects.order_by("pk").values_list("pk", flat=True))
        for connection_id in connection_ids:
            result = caldav_sync.sync_connection(connection_id)
            if result is None:
                continue
            if result.ok:
                ok += 1
            else:
                failed += 1
                self.stderr.write(f"Calendar {connection_id}: {result.error}")
        self.stdout.write(f"Calendars: {ok} synced, {failed} failed.")
