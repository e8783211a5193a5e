"""Celery tasks of renewals: thin wrappers that take ids and call one service each."""

from __future__ import annotations

from datetime import date

from celery import shared_task

from renewals import services
from retainers.transient import DATABASE_UNAVAILABLE


@shared_task
def run_renewals() -> None:
    """Beat, daily: fan out one task per workspace (each works on its own local date)."""
    services.run_renewals()


@shared_task(acks_late=True, autoretry_for=DATABASE_UNAVAILABLE, retry_backoff=True, max_retries=8)
def process_workspace(workspace_id: int, as_of: str | None = None) -> None:
    services.process_workspace(workspace_id=workspace_id, as_of=date.fromisoformat(as_of) if as_of else None)
