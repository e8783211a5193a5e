"""Soak with faults (issue 16, "State on more than one host"): the billing run and the outbox run
in a real Celery worker while the test kills the worker mid-batch, restarts Redis (the broker, with
its queue) and makes PostgreSQL refuse connections for a few seconds. Afterwards, and after the
sweeps that beat would run next (`run_billing`, `deliver_invoices`, the outbox's), every period is
billed once, every invoice delivered once, every email handed to SMTP once, every card charged
once, and nothing is left claimed.

Everything the faults touch is the test's own (tests/faults.py): a private redis-server, a TCP
proxy in front of the test database, an SMTP sink and the fake Stripe, all on loopback.
"""

from __future__ import annotations

import collections
import io
import os
import secrets
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from billing import connect
from billing import services as billing
from billing.models import Invoice, Payment, StripeCustomer
from clients.models import Retainer
from delivery.models import Period
from retainers.models import Email
from tests import factories
from tests.billing.conftest import ACCOUNT, SECRET_KEY
from tests.billing.stripe_fake import FakeStripe
from tests.faults import CeleryWorker, RedisServer, SmtpSink, TcpProxy, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[1]
WORKSPACES, CLIENTS, MONTHS = 3, 3, 4  # 9 retainers, 4 or 5 periods each: about 40 invoices
OUTAGE_SECONDS = 4


@pytest.fixture
def stack(tmp_path, settings, monkeypatch) -> Iterator[dict]:
    """The worker and what it talks to; the test process publishes to the same private broker."""
    from retainers.celery import app

    redis_server = RedisServer(tmp_path)
    redis_server.start()
    db = connection.settings_dict
    proxy = TcpProxy(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)).start()
    smtp = SmtpSink().start()
    stripe = FakeStripe().start()
    media = tmp_path / "media"
    queue = f"soak-{secrets.token_hex(4)}"
    password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "retainers.settings",
        "PYTHONPATH": str(ROOT),  # this tree's modules, not those of the editable install
        "DATABASE_URL": f"postgres://{quote(db['USER'])}{password}@127.0.0.1:{proxy.port}/{quote(db['NAME'])}",
        "REDIS_URL": redis_server.url,
        "CELERY_BROKER_URL": redis_server.url,
        "SOAK_CELERY_QUEUE": queue,
        "OUTBOX_QUEUE": "",  # the emails too go to the test's queue, which is all its worker takes
        "EMAIL_URL": f"{smtp.url}?timeout=5",
        "STRIPE_SECRET_KEY": SECRET_KEY,
        "STRIPE_API_BASE": stripe.url,
        "STRIPE_TIMEOUT_SECONDS": "5",
        "MEDIA_ROOT": str(media),
        "STORAGE_URL": "",
        "DEBUG": "1",
        "CONN_MAX_AGE": "60",
        "PYTHONUNBUFFERED": "1",
    }
    worker = CeleryWorker(app="tests.soak_worker_app", env=env, log=tmp_path / "worker.log")

    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = redis_server.url
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    settings.OUTBOX_QUEUE = ""  # the emails too (retainers/queues.py)
    monkeypatch.setenv("CELERY_BROKER_URL", redis_server.url)
    settings.MEDIA_ROOT = media
    settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE = SECRET_KEY, stripe.url
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": smtp.port, "timeout": 5},
        }
    }
    _forget_broker_connections(app)
    try:
        yield {"redis": redis_server, "proxy": proxy, "smtp": smtp, "stripe": stripe, "worker": worker}
    finally:
        worker.stop()
        _forget_broker_connections(app)
        proxy.stop()
        smtp.stop()
        stripe.stop()
        redis_server.kill()


def _forget_broker_connections(app) -> None:
    # Celery caches its producer pool per broker URL on first use; the broker URL changed.
    app._pool = None
    app.__dict__.get("amqp") and setattr(app.amqp, "_producer_pool", None)


def make_books(stripe: FakeStripe, today: date) -> list[Retainer]:
    """Workspaces with retainers that began MONTHS ago; every other client pays by saved card."""
    starts_on = date(today.year, today.month, 1) - timedelta(days=28 * MONTHS)
    starts_on = starts_on.replace(day=1)
    retainers = []
    for w in range(WORKSPACES):
        workspace = factories.WorkspaceFactory(name=f"Soak {w}", timezone="UTC", currency="GBP")
        billing.profile_for(workspace)
        connect.use_test_account(workspace=workspace, account_id=f"{ACCOUNT}{w}")  # one account per workspace
        for c in range(CLIENTS):
            client = factories.ClientFactory(
                workspace=workspace, name=f"Client {w}-{c}", billing_email=f"ap-{w}-{c}@example.com"
            )
            retainer = factories.make_retainer(client=client, starts_on=starts_on, price_minor=100000 + c)
            if c % 2 == 0:
                StripeCustomer.objects.create(
                    workspace_id=workspace.pk,
                    client=client,
                    customer_id=f"cus_soak{w}{c}",
                    payment_method_id=stripe.add_card(),
                    card_brand="visa",
                    card_last4="4242",
                    card_exp="12/2030",
                )
                Retainer.objects.filter(pk=retainer.pk).update(auto_charge=True)
            retainers.append(retainer)
    return retainers


def progress() -> tuple[int, int, int]:
    return (
        Invoice.objects.count(),
        Invoice.objects.exclude(delivered_at=None).count(),
        Email.objects.filter(status=Email.Status.SENT).count(),
    )


def settle(worker: CeleryWorker, *, quiet_for: float = 8, timeout: float = 120) -> None:
    """Wait until the worker has stopped changing anything for `quiet_for` seconds."""
    deadline = time.monotonic() + timeout
    last, since = progress(), time.monotonic()
    while time.monotonic() - since < quiet_for:
        if worker.keep_running():
            since = time.monotonic()
        if time.monotonic() > deadline:
            raise AssertionError(f"the worker did not settle within {timeout} s:\n{worker.log_tail()}")
        time.sleep(1)
        now = progress()
        if now != last:
            last, since = now, time.monotonic()


def test_billing_and_outbox_survive_a_killed_worker_a_redis_restart_and_a_database_outage(stack):
    worker, redis_server, proxy = stack["worker"], stack["redis"], stack["proxy"]
    smtp, stripe = stack["smtp"], stack["stripe"]
    today = timezone.localdate()
    retainers = make_books(stripe, today)

    worker.start()
    summary = billing.run_billing(as_of=today)  # what beat does: one task per workspace, to the worker
    assert summary.workspaces == WORKSPACES

    # 1. SIGKILL the worker mid-batch: invoices issued, their delivery under way.
    wait_for("the first invoice delivered", lambda: progress()[1] >= 1, timeout=120)
    worker.kill()
    killed_at = progress()
    print("worker killed at (invoices, delivered, emails sent):", killed_at)
    time.sleep(1)
    worker.start()

    # 2. Restart Redis: the queue and the tasks the worker held are lost with it.
    wait_for("more progress after the restart", lambda: progress() != killed_at, timeout=120)
    redis_server.restart()
    print("redis restarted at", progress())

    # 3. PostgreSQL refuses connections for a few seconds, open connections cut.
    time.sleep(2)
    proxy.cut()
    cut_at = progress()
    print("database cut off at", cut_at)
    time.sleep(OUTAGE_SECONDS)
    proxy.restore()

    settle(worker)
    worker.stop()
    during = progress()
    print("settled at", during)

    # The next beats, once the leases of what the killed worker held are over: the billing run
    # (it bills a workspace whose task the Redis restart lost: the worker may be killed before it
    # took it, now that a charged invoice counts as delivered before its PDF is rendered), then
    # the delivery sweep (`deliver_invoices`, which leaves invoices younger than 15 minutes to their
    # own task, lost here with the stopped worker) and the outbox sweep, here run inline by hand.
    later = timezone.now()
    with time_machine.travel(later + timedelta(minutes=20), tick=True):
        call_command("run_billing", "--as-of", today.isoformat(), stdout=io.StringIO())
    with time_machine.travel(later + timedelta(minutes=40), tick=True):
        call_command("deliver_invoices", "--inline", stdout=io.StringIO())
        from retainers import outbox

        while outbox.send_due_emails():
            pass

    # Every period that has begun is billed, once.
    periods = Period.objects.filter(retainer__in=retainers, start_on__lte=today)
    assert periods.count() >= len(retainers) * MONTHS
    billed = collections.Counter(Invoice.objects.filter(period__in=periods).values_list("period_id", flat=True))
    assert set(billed) == set(periods.values_list("pk", flat=True)) and set(billed.values()) == {1}, billed
    invoices = Invoice.objects.filter(period__in=periods)

    # Every invoice delivered: charged (auto-charge) or emailed; nothing left claimed or failed.
    assert not invoices.filter(delivered_at=None).exists()
    assert not invoices.exclude(delivery_error="").exists()
    assert not Email.objects.exclude(status=Email.Status.SENT).exists()
    assert not Email.objects.exclude(claimed_until=None).exists()

    # Every card charged once: one PaymentIntent and one succeeded payment per auto-charge invoice.
    charged = invoices.filter(auto_charge=True)
    intents = collections.Counter(pi["metadata"].get("invoice_id") for pi in stripe.of_type("payment_intent"))
    assert sorted(intents) == sorted(str(pk) for pk in charged.values_list("pk", flat=True))
    assert set(intents.values()) == {1}, intents
    for invoice in charged:
        assert Payment.objects.filter(invoice=invoice, status="succeeded").count() == 1
        assert invoice.status == "paid"

    # Every email handed to SMTP once: the invoices by email, the receipts of the charged ones.
    handed = collections.Counter(message["Message-ID"] for message in smtp.messages)
    expected = set(Email.objects.values_list("message_id", flat=True))
    assert set(handed) == expected, (len(handed), len(expected))
    assert set(handed.values()) == {1}, [mid for mid, n in handed.items() if n > 1]
    for invoice in invoices.filter(auto_charge=False):
        assert Email.objects.filter(key=f"invoice-{invoice.pk}-issued").count() == 1

    # The faults really happened while there was work to do. (That the worker goes on after the
    # database is back, rather than dropping its tasks, is tests/retainers/test_transient.py.)
    assert worker.starts >= 2  # ours, and any the supervisor made after the worker exited on its own
    assert killed_at[1] < invoices.count() and cut_at[1] < invoices.count(), (killed_at, cut_at)
