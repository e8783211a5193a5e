from celery import shared_task

from retainers import outbox


@shared_task
def send_email(email_id: int) -> None:
    outbox.send_email(email_id)


@shared_task
def send_due_emails() -> None:
    outbox.send_due_emails()


@shared_task
def prune_outbox() -> None:
    outbox.prune_outbox()
