"""Celery tasks of delivery: the CalDAV calendars (booking reminders are part of communication's reminders
job). Thin wrappers that take ids."""

from __future__ import annotations

from celery import shared_task

from delivery import caldav_sync
from retainers.transient import DATABASE_UNAVAILABLE


@shared_task
def sync_calendars() -> None:
    """Beat, every 15 minutes: one sync task per connected CalDAV calendar."""
    caldav_sync.fan_out()


@shared_task(acks_late=True, autoretry_for=DATABASE_UNAVAILABLE, retry_backoff=True, max_retries=8)
def sync_calendar(connection_id: int) -> None:
    caldav_sync.sync_connection(connection_id)


@shared_task(acks_late=True, autoretry_for=DATABASE_UNAVAILABLE, retry_backoff=True, max_retries=8)
def push_calendar(connection_id: int) -> None:
    """After a booking changed: write it (and anything else behind) to the member's calendar."""
    caldav_sync.push_connection(connection_id)
