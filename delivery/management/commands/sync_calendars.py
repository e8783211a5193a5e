"""Sync every connected CalDAV calendar now, in this process: the same code beat runs in tasks."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from delivery import caldav_sync
from delivery.models import CalendarConnection


class Command(BaseCommand):
    help = "Read busy times from and write bookings to every connected CalDAV calendar."

    def handle(self, *args: object, **options: object) -> None:
        ok = failed = 0
        for connection_id in CalendarConnection.objects.order_by("pk").values_list("pk", flat=True):
            result = caldav_sync.sync_connection(connection_id)
            if result is None:
                continue
            if result.ok:
                ok += 1
            else:
                failed += 1
                self.stderr.write(f"Calendar {connection_id}: {result.error}")
        self.stdout.write(f"Calendars: {ok} synced, {failed} failed.")
