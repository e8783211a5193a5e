"""The project's Celery app as the soak test's worker runs it: `celery -A tests.soak_worker_app`.

The same app, tasks and settings, with two differences: the default queue is the one named in
SOAK_CELERY_QUEUE (nothing else on the machine takes its tasks; the emails go to it too, as
OUTBOX_QUEUE is empty in the worker's environment), and a task a killed worker held
unacknowledged goes back to the queue after seconds, not after Redis's default hour, so the test
sees the redelivery within its time.
"""

import os

from retainers.celery import app

app.conf.task_default_queue = os.environ["SOAK_CELERY_QUEUE"]
app.conf.broker_transport_options = {"visibility_timeout": int(os.environ.get("SOAK_VISIBILITY_TIMEOUT", "20"))}

__all__ = ["app"]
