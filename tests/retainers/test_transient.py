"""Tasks retry when the database is away for a moment (found by the soak test, tests/test_soak.py):
Django's OperationalError and InterfaceError are not OSErrors, so a task that retried only on
OSError failed outright, was acknowledged, and its work waited for the next sweep or was lost.

The database really refuses here: the test's connection goes through a TCP proxy (tests/faults.py)
that is cut, no part of the ORM is patched.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery.signals import task_retry
from django.db import connection

from billing import tasks as billing_tasks
from communication import tasks as communication_tasks
from delivery import tasks as delivery_tasks
from renewals import tasks as renewals_tasks
from retainers import tasks as retainers_tasks
from retainers.transient import DATABASE_UNAVAILABLE
from tests.faults import TcpProxy

pytestmark = pytest.mark.django_db(transaction=True)

# Every task that takes ids and does a workspace's work: each must outlive a database outage.
TASKS = [
    (billing_tasks.bill_workspace, [1]),
    (billing_tasks.deliver_invoice, [1]),
    (billing_tasks.deliver_invoices, [[1, 2]]),
    (billing_tasks.follow_up_invoice, [1]),
    (billing_tasks.retry_charge, [1]),
    (billing_tasks.charge_with_new_card, [1, {"7": 0}]),
    (retainers_tasks.send_email, [1]),
    (renewals_tasks.process_workspace, [1]),
    (communication_tasks.remind_workspace, [1]),
    (delivery_tasks.sync_calendar, [1]),
    (delivery_tasks.push_calendar, [1]),
]


@pytest.fixture
def database_refusing() -> Iterator[None]:
    """The test's connection now goes through a proxy that refuses every connection."""
    proxy = TcpProxy(connection.settings_dict["HOST"] or "127.0.0.1", int(connection.settings_dict["PORT"] or 5432))
    proxy.start()
    host, port = connection.settings_dict["HOST"], connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["HOST"], connection.settings_dict["PORT"] = "127.0.0.1", proxy.port
    proxy.cut()
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["HOST"], connection.settings_dict["PORT"] = host, port
        proxy.stop()


@pytest.mark.parametrize(("task", "args"), TASKS, ids=[task.name for task, _ in TASKS])
def test_a_task_retries_when_the_database_refuses_connections(database_refusing, task, args):
    retries: list[BaseException] = []

    def retried(sender: object, reason: BaseException, **kwargs: object) -> None:
        retries.append(reason)

    task_retry.connect(retried)
    try:
        # Run eagerly, a retry is made at once rather than later, so the task retries until it has
        # no retries left; on a worker it waits (with backoff) for the database to be back.
        result = task.apply(args=args)
    finally:
        task_retry.disconnect(retried)
    assert retries, f"{task.name} failed without a retry: {result.result!r}"
    assert all(isinstance(getattr(reason, "exc", reason), DATABASE_UNAVAILABLE) for reason in retries), retries
    assert len(retries) == task.max_retries
