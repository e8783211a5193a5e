"""Fixtures of the browser tests: the app on loopback, a real Celery worker, Debian's Chromium.

- `app_server`: the app served by Django's threaded live server on 127.0.0.1 (a free port),
  static files included, against the test database. Tests that use it need committed data
  (`transactional_db`, or a module fixture that writes with the blocker lifted).
- `celery_worker` (for the package) and `worker` (per test): a `celery worker --pool solo` subprocess on
  the same test database, with a queue of its own in Redis database 14; `worker` switches the
  app from eager tasks to that queue for the test, so what the app enqueues (PDFs, emails)
  is done by the real worker, as in production.
- `browser` (for the package): headless Chromium from /usr/bin/chromium (Debian's package; never a
  browser downloaded by Playwright), driven by Playwright's Python API.
- `page` (per test): a fresh context (1280×900) whose console errors, uncaught exceptions and
  Content-Security-Policy violations are recorded in `watch`; a test that passes with any of
  them recorded fails at teardown.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
import redis
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope
from django.db import connection
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from pytest_django.live_server_helper import LiveServer

from retainers.models import Email
from tests.e2e.support import ARTIFACTS, BrowserWatch, wait_until

CHROMIUM = Path(os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium"))
# Background networking off: this machine's network is closed, and Chromium would otherwise
# keep trying to reach Google's services (slow starts, refused connections).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 900}
WORKER_REDIS_DB = 14  # the test cache uses 15 (tests/conftest.py), make run uses 0
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="package", autouse=True)
def _sync_playwright_and_django() -> Iterator[None]:
    # Playwright's sync API keeps an asyncio loop in the test's thread, which Django takes for an
    # async context and refuses ORM calls in (SynchronousOnlyOperation). The test code is
    # synchronous; the live server runs in threads of its own. Only while this package runs.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


@pytest.fixture(scope="session")
def media_root(tmp_path_factory) -> Path:
    """Shared by the live server and the worker: invoice PDFs written by one are read by the other."""
    return tmp_path_factory.mktemp("e2e-media")


@pytest.fixture(scope="session")
def app_server(django_db_setup) -> Iterator[LiveServer]:
    server = LiveServer("127.0.0.1:0")  # port 0: a free one
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _e2e_settings(_test_settings, settings, app_server, media_root) -> None:
    settings.SITE_URL = app_server.url  # absolute links in emails point at the live server
    settings.MEDIA_ROOT = str(media_root)


# --- The Celery worker -------------------------------------------------------------------------


def _database_url(db: dict) -> str:
    user = quote(db["USER"] or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    host = quote(db["HOST"] or "", safe="")  # a unix-socket directory is percent-encoded
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{user}{password}@{host}{port}/{quote(db['NAME'])}"


def _redis_db_url(url: str, db: int) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{db}"))


class Mailbox:
    """What the worker sent, received by an SMTP server on loopback: the outbox table keeps no
    working link or code once a secret email is sent (retainers.outbox), the mailbox does."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        # With the default policy the parser builds EmailMessage objects (typeshed says Message).
        self.messages.append(
            cast(email.message.EmailMessage, email.message_from_bytes(content, policy=email.policy.default))
        )
        return "250 OK"

    def text_of(self, row: Email) -> str:
        """The text part of the message sent for an outbox row."""
        for message in reversed(self.messages):
            if message["Message-ID"] == row.message_id:
                body = message.get_body(preferencelist=("plain",))
                assert body is not None, row.subject
                return str(body.get_content())
        raise AssertionError(f"{row.subject!r} to {row.to} was not received")


class Worker:
    """A `celery worker` subprocess; its output goes to artifacts/e2e-worker.log, its email to `mailbox`."""

    def __init__(self, process: subprocess.Popen, log: Path, broker_url: str, queue: str, mailbox: Mailbox) -> None:
        self.process, self.log, self.broker_url, self.queue = process, log, broker_url, queue
        self.mailbox = mailbox

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(f"the Celery worker exited with code {self.process.returncode}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def wait_until(self, what: str, probe, *, timeout: float = 30):
        """Wait for something the worker does, failing early (with its log) if it died."""
        try:
            return wait_until(what, probe, timeout=timeout, check=self.check_alive)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nworker log (last lines):\n{self.log_tail()}") from None


@pytest.fixture(scope="package")
def celery_worker(django_db_setup, app_server, media_root) -> Iterator[Worker]:
    from django.conf import settings

    db = connection.settings_dict  # the test database's name by now
    # A queue of its own per test database: two test runs on one machine (or xdist workers)
    # never take each other's tasks.
    queue = f"e2e-{db['NAME']}"
    broker_url = _redis_db_url(settings.REDIS_URL, WORKER_REDIS_DB)
    broker = redis.Redis.from_url(broker_url)
    broker.delete(queue)  # what an interrupted earlier run left
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / "e2e-worker.log"
    mailbox = Mailbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        smtp_port = probe.getsockname()[1]
    smtp = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "retainers.settings",
        "DATABASE_URL": _database_url(db),
        "REDIS_URL": broker_url,
        "CELERY_BROKER_URL": broker_url,  # not the memory:// every other test process has (tests/conftest.py)
        "E2E_CELERY_QUEUE": queue,
        "OUTBOX_QUEUE": "",  # the emails too go to the test's queue, which is all this worker takes
        "EMAIL_URL": f"smtp://127.0.0.1:{smtp_port}",  # the tests read what was sent from `mailbox`
        "SITE_URL": app_server.url,
        "MEDIA_ROOT": str(media_root),
        "DEBUG": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tests.e2e.worker_app",
                "worker",
                "--pool",
                "solo",
                "--loglevel",
                "warning",
                "--queues",
                queue,
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = Worker(process, log, broker_url, queue, mailbox)
    yield worker
    smtp.stop()
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    broker.delete(queue)


@pytest.fixture
def worker(celery_worker, settings, monkeypatch) -> Iterator[Worker]:
    """Tasks the app enqueues during the test go to the real worker instead of running eagerly."""
    from retainers.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = celery_worker.broker_url
    # Celery prefers the CELERY_BROKER_URL environment variable to the setting, and tests/conftest.py
    # sets it to memory:// for the whole run: point it at the worker's broker too, for this test only.
    monkeypatch.setenv("CELERY_BROKER_URL", celery_worker.broker_url)
    settings.CELERY_TASK_DEFAULT_QUEUE = celery_worker.queue
    settings.OUTBOX_QUEUE = ""  # the emails too (retainers/queues.py)
    _forget_broker_connections(app)
    celery_worker.check_alive()
    yield celery_worker
    _forget_broker_connections(app)  # the next tests publish (if at all) to their own broker


def _forget_broker_connections(app) -> None:
    # Celery caches its producer pool per broker URL on first use; the broker URL just changed.
    app._pool = None
    app.__dict__.get("amqp") and setattr(app.amqp, "_producer_pool", None)


# --- The browser -------------------------------------------------------------------------------


# Package scope, not session: Playwright's sync API keeps an asyncio loop running in the main
# thread while it is started, and Django refuses ORM calls from the tests that come after.
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: the browser tests use Debian's package "
            "(apt-get install chromium; `make test` installs it through scripts/bootstrap.sh), "
            "or set E2E_CHROMIUM to another Chromium binary",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def watch() -> BrowserWatch:
    return BrowserWatch()


@pytest.fixture
def browser_context(request, browser, app_server, watch) -> Iterator[Callable[..., BrowserContext]]:
    """A factory of fresh browser contexts (two people: two contexts), all watched by `watch`.
    Keyword arguments go to Playwright's `new_context` (`color_scheme`, `storage_state`…)."""
    contexts: list[BrowserContext] = []

    def new_context(**options) -> BrowserContext:
        options = {"viewport": VIEWPORT, "base_url": app_server.url, "accept_downloads": True, **options}
        context = browser.new_context(**options)
        context.set_default_timeout(10_000)
        watch.attach(context)
        contexts.append(context)
        return context

    yield new_context
    for context in contexts:
        context.close()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.passed:
        watch.assert_clean()


@pytest.fixture
def page(browser_context) -> Page:
    return browser_context().new_page()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Lets `page` know at teardown whether the test itself passed.
    report = yield
    if report.when == "call":
        item.rep_call = report
    return report
