"""Which Celery queue a task goes to (CELERY_TASK_ROUTES names `route_task`).

Two queues: the default one (`celery`: the billing run, the invoices' delivery batches, every
scheduled job) and the outbox's (OUTBOX_QUEUE, `email` by default): the sends of emails, which are
short and wait on SMTP. On the default queue they would wait behind every delivery batch (on
billing day, behind minutes of PDF rendering); on their own, a worker that takes only them sends
each as soon as it is queued. Every worker should consume both (`-Q celery,email`) unless another
worker takes the email queue; README, "Celery queues and workers". The outbox's sweep
(`send_due_emails`, on beat) stays on the default queue: a deployment whose workers forgot the
email queue still sends every email, late (at the sweep's next run), never not at all.

Decided at each send from the setting (not a table Celery builds once), so a test or a worker app
can put everything on one queue: OUTBOX_QUEUE empty sends the emails to the default queue.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

OUTBOX_TASKS = frozenset({"retainers.tasks.send_email"})


def route_task(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any) -> dict[str, str] | None:
    if name in OUTBOX_TASKS and settings.OUTBOX_QUEUE:
        return {"queue": settings.OUTBOX_QUEUE}
    return None  # the default queue
