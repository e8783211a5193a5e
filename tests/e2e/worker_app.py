"""The project's Celery app as the browser tests' worker runs it: `celery -A tests.e2e.worker_app`.

The same app, tasks and settings, with one difference: the default queue is the one named in
E2E_CELERY_QUEUE, so what this worker enqueues (an email after an invoice) comes back to it, and
a test run never takes the tasks of another run (or of `make run`) on the same Redis. The emails
go to it too: OUTBOX_QUEUE is empty in the worker's environment (retainers/queues.py).
"""

import os

from retainers.celery import app

app.conf.task_default_queue = os.environ["E2E_CELERY_QUEUE"]

__all__ = ["app"]
