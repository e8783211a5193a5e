"""Celery tasks of communication: thin wrappers that take ids and call one function each."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from communication import reminders
from retainers.models import Workspace
from retainers.transient import DATABASE_UNAVAILABLE


@shared_task
def send_reminders() -> None:
    """Beat, every 15 minutes: one reminders task per workspace."""
    reminders.fan_out()


@shared_task(acks_late=True, autoretry_for=DATABASE_UNAVAILABLE, retry_backoff=True, max_retries=8)
def remind_workspace(workspace_id: int) -> None:
    workspace = Workspace.objects.filter(pk=workspace_id).first()
    if workspace is not None:  # deleted since the sweep
        reminders.remind_workspace(workspace=workspace, now=timezone.now())
