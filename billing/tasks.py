"""Celery tasks of billing: thin wrappers that take ids and call one service each."""

from __future__ import annotations

from datetime import date

from celery import shared_task

from billing import charges, dunning, sending, services, stripe_api
from retainers.transient import DATABASE_UNAVAILABLE, TRANSIENT_ERRORS


@shared_task
def run_billing() -> None:
    """Beat, hourly: fan out one task per workspace (each bills as of its own local date)."""
    services.run_billing()


@shared_task(acks_late=True, autoretry_for=DATABASE_UNAVAILABLE, retry_backoff=True, max_retries=8)
def bill_workspace(workspace_id: int, as_of: str | None = None) -> None:
    services.bill_workspace(workspace_id=workspace_id, as_of=date.fromisoformat(as_of) if as_of else None)


def _day(as_of: str | None) -> date | None:
    return date.fromisoformat(as_of) if as_of else None


@shared_task(acks_late=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=True, max_retries=8)
def deliver_invoice(invoice_id: int, as_of: str | None = None) -> None:
    """Render the PDF, then charge the saved card or email the invoice, as of the run's business date."""
    sending.deliver_invoice(invoice_id, as_of=_day(as_of))


@shared_task(acks_late=True, autoretry_for=DATABASE_UNAVAILABLE, retry_backoff=True, max_retries=8)
def deliver_invoices(invoice_ids: list[int], as_of: str | None = None) -> None:
    """Deliver a batch of invoices (the billing run queues one task per DELIVERY_BATCH). One that
    meets an OSError (Stripe or storage unreachable) gets a task of its own, which retries; the
    database unreachable retries the batch (what it already did is not done twice)."""
    for invoice_id in invoice_ids:
        try:
            sending.deliver_invoice(invoice_id, as_of=_day(as_of))
        except OSError:
            deliver_invoice.delay(invoice_id, as_of)


@shared_task(acks_late=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=True, max_retries=8)
def follow_up_invoice(invoice_id: int) -> None:
    """After money moved: render the PDF again, then send the receipts it must go with (left to the
    invoice's delivery while one is under way)."""
    sending.follow_up_unless_delivering(invoice_id)


@shared_task
def sweep_deliveries() -> None:
    """Beat, every 10 minutes: deliver (or follow up) what a lost task left behind."""
    sending.deliver_due()


# --- Stripe payments and dunning (billing/charges.py, billing/dunning.py) ----------------------


@shared_task
def run_dunning() -> None:
    """Beat, daily: retry due charges (one task each) and send the overdue notices and reminders."""
    dunning.run_dunning()


@shared_task(
    acks_late=True, autoretry_for=stripe_api.RETRYABLE + DATABASE_UNAVAILABLE, retry_backoff=True, max_retries=5
)
def retry_charge(invoice_id: int, as_of: str | None = None) -> None:
    """Retry one due charge; a retry after a timeout sends the same idempotency key."""
    dunning.retry_charge(invoice_id, as_of=_day(as_of))


@shared_task(
    acks_late=True, autoretry_for=stripe_api.RETRYABLE + DATABASE_UNAVAILABLE, retry_backoff=True, max_retries=5
)
def charge_with_new_card(client_id: int, seen: dict[str, int]) -> None:
    """A card was saved: charge the client's open auto-charge invoices, each once (`seen` holds the
    attempts each had then, so running twice charges nothing more)."""
    charges.charge_with_new_card(client_id, seen={int(pk): attempts for pk, attempts in seen.items()})
