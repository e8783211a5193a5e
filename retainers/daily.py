"""The daily jobs' clock: beat runs dunning and renewals hourly, and each workspace is processed
once per LOCAL day, after `DAILY_JOBS_LOCAL_HOUR` in its own time zone (a California workspace
gets its overdue notices at 08:00 Pacific, not at a fixed UTC hour that is the previous evening
there).

A workspace's day is claimed with one conditional upsert of its `DailyRun` row: the row's date
moves forward only if it is behind, so two runs at once never both claim the same day. A day
claimed by a run that then fails is not retried that day; the jobs catch up the next day, as they
do after downtime.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.utils import timezone

from retainers.models import DailyRun, Workspace


def local_days(workspace_ids: Iterable[int], *, now: datetime) -> dict[int, date]:
    """The local date of each workspace whose clock has passed `DAILY_JOBS_LOCAL_HOUR` at `now`."""
    hour = settings.DAILY_JOBS_LOCAL_HOUR
    clocks: dict[str, datetime] = {}
    days = {}
    for pk, zone in Workspace.objects.filter(pk__in=list(workspace_ids)).values_list("pk", "timezone"):
        if zone not in clocks:
            clocks[zone] = now.astimezone(ZoneInfo(zone))
        local = clocks[zone]
        if local.hour >= hour:
            days[pk] = local.date()
    return days


def claim_days(job: DailyRun.Job, workspace_ids: Iterable[int], *, now: datetime | None = None) -> dict[int, date]:
    """Claim today's run of `job` in each of these workspaces that is past the local hour and not yet
    processed today: {workspace id: its local date}, for this caller only. Commits nothing itself;
    the upsert is atomic, so a concurrent claim of the same day waits and then gets nothing."""
    now = now or timezone.now()
    by_day: dict[date, list[int]] = {}
    for pk, day in local_days(workspace_ids, now=now).items():
        by_day.setdefault(day, []).append(pk)
    claimed: dict[int, date] = {}
    table = DailyRun._meta.db_table
    with connection.cursor() as cursor:
        for day, ids in sorted(by_day.items()):
            cursor.execute(
                f"INSERT INTO {table} (workspace_id, job, done_on, claimed_at) "
                "SELECT pk, %s, %s, %s FROM unnest(%s::bigint[]) AS pk ORDER BY pk "
                "ON CONFLICT (workspace_id, job) DO UPDATE SET done_on = EXCLUDED.done_on, claimed_at = EXCLUDED.claimed_at "
                f"WHERE {table}.done_on < EXCLUDED.done_on "
                "RETURNING workspace_id",
                [str(job), day, now, sorted(ids)],
            )
            claimed.update({row[0]: day for row in cursor.fetchall()})
    return claimed
