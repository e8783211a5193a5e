"""Celery tasks of delivery: bookings' reminders and the CalDAV calendars. Thin wrappers that take ids."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from delivery import booking_reminders, caldav_sync
from retainers.models import Workspace


@shared_task
def send_booking_reminders() -> None:
    """Beat, every 15 minutes: one booking-reminders task per workspace with bookings or nudges."""
    booking_reminders.fan_out()


@shared_task(acks_late=True)
def remind_bookings(workspace_id: int) -> None:
    workspace = Workspace.objects.filter(pk=workspace_id).first()
    if workspace is not None:
        booking_reminders.remind_workspace(workspace=workspace, now=timezone.now())


@shared_task
def sync_calendars() -> None:
    """Beat, every 15 minutes: one sync task per connected CalDAV calendar."""
    caldav_sync.fan_out()


@shared_task(acks_late=True)
def sync_calendar(connection_id: int) -> None:
    caldav_sync.sync_connection(connection_id)


@shared_task(acks_late=True)
def push_calendar(connection_id: int) -> None:
    """After a booking changed: write it (and anything else behind) to the member's calendar."""
    caldav_sync.push_connection(connection_id)
