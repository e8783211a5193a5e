"""Celery tasks of billing: thin wrappers that take ids and call one service each."""

from __future__ import annotations

from datetime import date

from celery import shared_task

from billing import dunning, sending, services, stripe_api


@shared_task
def run_billing() -> None:
    """Beat, hourly: fan out one task per workspace (each bills as of its own local date)."""
    services.run_billing()


@shared_task(acks_late=True)
def bill_workspace(workspace_id: int, as_of: str | None = None) -> None:
    services.bill_workspace(workspace_id=workspace_id, as_of=date.fromisoformat(as_of) if as_of else None)


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def deliver_invoice(invoice_id: int) -> None:
    """Render the PDF, then charge the saved card or email the invoice."""
    sending.deliver_invoice(invoice_id)


# --- Stripe payments and dunning (billing/charges.py, billing/dunning.py) ----------------------


@shared_task
def run_dunning() -> None:
    """Beat, daily: retry due charges (one task each) and send the overdue notices and reminders."""
    dunning.run_dunning()


@shared_task(acks_late=True, autoretry_for=stripe_api.RETRYABLE, retry_backoff=True, max_retries=5)
def retry_charge(invoice_id: int, as_of: str | None = None) -> None:
    """Retry one due charge; a retry after a timeout sends the same idempotency key."""
    dunning.retry_charge(invoice_id, as_of=date.fromisoformat(as_of) if as_of else None)
