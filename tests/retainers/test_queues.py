"""The outbox's emails go to a Celery queue of their own (retainers/queues.py), and every worker the
project starts takes it: `make run`'s, docker-compose's."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from retainers import queues
from retainers.celery import app

ROOT = Path(__file__).resolve().parents[2]


def queue_of(name: str) -> str:
    return app.amqp.router.route({}, name)["queue"].name


def test_emails_go_to_the_email_queue_and_everything_else_to_the_default_one(settings):
    assert queue_of("retainers.tasks.send_email") == "email"
    # The sweep stays on the default queue: a worker that takes only that one still sends every email.
    assert queue_of("retainers.tasks.send_due_emails") == "celery"
    assert queue_of("billing.tasks.deliver_invoices") == "celery"
    assert queue_of("billing.tasks.bill_workspace") == "celery"


def test_an_empty_outbox_queue_puts_the_emails_on_the_default_queue(settings):
    settings.OUTBOX_QUEUE = ""  # what the test workers (e2e, soak) run with: one queue of their own
    assert queues.route_task("retainers.tasks.send_email", (), {}, {}) is None
    assert queue_of("retainers.tasks.send_email") == "celery"
    settings.OUTBOX_QUEUE = "mail"
    assert queue_of("retainers.tasks.send_email") == "mail"


def test_the_workers_the_project_starts_take_both_queues():
    spec = importlib.util.spec_from_file_location("dev_script", ROOT / "scripts" / "dev.py")
    assert spec is not None and spec.loader is not None
    dev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev)
    [worker] = [command for name, command, _ in dev.run_commands(schedule=Path("/tmp/schedule")) if name == "worker"]
    assert worker[worker.index("-Q") + 1].split(",") == ["celery", "email"]
    compose = (ROOT / "docker-compose.yml").read_text()
    [command] = re.findall(r'command: \["celery", "-A", "retainers", "worker", [^\]]*\]', compose)
    assert '"-Q", "celery,email"' in command
