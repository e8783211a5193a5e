from celery import shared_task

from retainers import outbox
from retainers.transient import DATABASE_UNAVAILABLE


# SMTP failures are the outbox's own to retry (with backoff, counted on the row); the database
# away is the task's.
@shared_task(autoretry_for=DATABASE_UNAVAILABLE, retry_backoff=True, max_retries=8)
def send_email(email_id: int) -> None:
    outbox.send_email(email_id)


@shared_task
def send_due_emails() -> None:
    outbox.send_due_emails()


@shared_task
def prune_outbox() -> None:
    outbox.prune_outbox()
