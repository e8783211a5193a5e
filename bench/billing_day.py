"""Benchmark of billing day end to end (issue 15, goal 3): from the billing run's start until the
last invoice email is accepted by an SMTP server and the last auto-charge is recorded.

    .venv/bin/python bench/billing_day.py --workspaces 5 --retainers-per-workspace 20
    .venv/bin/python bench/billing_day.py --workspaces 100 --retainers-per-workspace 100 --celery-workers 2

Creates a scratch database (retainers_bench_billing_day), seeds it with `seed_demo`, marks the
seeded history billed (bench/billing.py's stage), gives every workspace a connected Stripe account
and a share of the retainers (--auto-charge, 30 %) a saved card. Then, everything on loopback and
the run's own: a private `redis-server` (broker), an SMTP sink (aiosmtpd), the project's fake
Stripe (tests/billing/stripe_fake.py) answering after --stripe-latency (150 ms), W Celery worker
processes on the default queue (`--pool threads`, two tasks at once each, or `--pool solo`) and E
on the email queue (`--email-workers`, 1). The run is what beat starts: one `bill_workspace` task
per workspace; the workers issue, render, charge and email.

Prints time to first and last delivery, throughput per stage, peak RSS per worker and checks
(every invoice emailed once, every auto-charge invoice charged once, nothing left claimed);
exits 1 when a check fails. The database is dropped at the end unless --keep.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder is first on sys.path: the project's root takes its place.
ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

import argparse  # noqa: E402
import collections  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import date  # noqa: E402
from typing import Any  # noqa: E402

from bench.common import (  # noqa: E402
    BenchError,
    django_env,
    find_server,
    load_average,
    mib,
    run,
    run_main,
    run_stage,
    say,
    setup_django,
    table,
    write_result,
)

SCRIPT = Path(__file__).resolve()
BILLING_SCRIPT = SCRIPT.parent / "billing.py"
GOAL = "10k retainers on 2 cores: everything delivered in under 10 minutes"
GOAL_SECONDS = 600
STRIPE_KEY = "sk_test_bench_billing_day"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/billing_day.py",
        description=(
            "Time billing day end to end: the billing run, the PDFs, the emails (to an SMTP sink) and "
            "the auto-charges (to the fake Stripe), in real Celery workers. See the README, section Benchmarks."
        ),
    )
    parser.add_argument("--workspaces", type=int, default=100, metavar="N", help="bench workspaces (100)")
    parser.add_argument(
        "--retainers-per-workspace", type=int, default=100, metavar="M", help="clients per workspace, one retainer each (100)"
    )  # fmt: skip
    parser.add_argument("--months", type=int, default=3, metavar="K", help="months of seeded history (3)")
    parser.add_argument(
        "--celery-workers", type=int, default=2, metavar="W",
        help="Celery worker processes taking the default queue: the run, the delivery batches (2)",
    )  # fmt: skip
    parser.add_argument(
        "--pool", choices=["solo", "threads"], default="threads",
        help="their pool: threads overlap one task's waits on Stripe with another's rendering (threads)",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=int, default=2, metavar="T", help="tasks at once in each of them with --pool threads (2)"
    )
    parser.add_argument(
        "--email-workers", type=int, default=1, metavar="E",
        help="worker processes taking only the email queue (threads pool, 4 at once); 0: the others take it too (1)",
    )  # fmt: skip
    parser.add_argument(
        "--auto-charge", type=float, default=0.3, metavar="SHARE", help="share of retainers paid by saved card (0.3)"
    )
    parser.add_argument(
        "--stripe-latency", type=float, default=0.15, metavar="S", help="seconds the fake Stripe takes per request (0.15)"
    )  # fmt: skip
    parser.add_argument("--timeout", type=float, default=1800, metavar="S", help="give up after S seconds (1800)")
    parser.add_argument("--jobs", type=int, metavar="J", help="seed_demo --jobs (processes seeding)")
    parser.add_argument("--db", default="retainers_bench_billing_day", help="scratch database (retainers_bench…)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database at the end")
    parser.add_argument("--replace", action="store_true", help="drop the scratch database first if it exists")
    parser.add_argument(
        "--save-template", metavar="DB", help="after seeding, copy the seeded database to DB for --from-template"
    )
    parser.add_argument(
        "--from-template", metavar="DB", help="start from a copy of DB (saved by --save-template): no seeding"
    )
    parser.add_argument("--stage", choices=["prepare", "start", "inspect"], help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--as-of", type=date.fromisoformat, help=argparse.SUPPRESS)
    parser.add_argument("--since", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("workspaces", "retainers_per_workspace", "months", "celery_workers", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if not 0 <= args.auto_charge <= 1:
        parser.error("--auto-charge must be between 0 and 1")
    if args.email_workers < 0:
        parser.error("--email-workers must not be negative")
    if args.stripe_latency < 0:
        parser.error("--stripe-latency must not be negative")
    return args


# --- Loopback services of the run ---------------------------------------------------------------


def _services(latency: float):
    """The private broker, the SMTP sink and the fake Stripe (the project's test doubles)."""
    import importlib

    try:  # imported by name: the test doubles are not type-checked (mypy's files)
        FakeStripe: Any = importlib.import_module("tests.billing.stripe_fake").FakeStripe
        faults: Any = importlib.import_module("tests.faults")
        RedisServer: Any = faults.RedisServer
        SmtpSink: Any = faults.SmtpSink
    except ImportError as exc:
        raise BenchError(f"the test doubles are missing ({exc}): install the dev dependencies (aiosmtpd)") from None

    class TimedSink(SmtpSink):
        """Keeps, for every message, when it was accepted and its Message-ID."""

        def __init__(self) -> None:
            super().__init__()
            self.accepted: list[tuple[float, str]] = []
            recorder = self._recorder
            handle = recorder.handle_DATA

            async def handle_data(server: object, session: object, envelope: Any) -> str:
                answer = await handle(server, session, envelope)
                with recorder.lock:
                    message = recorder.messages.pop()  # only the ids are kept: 10k PDFs would fill memory
                    self.accepted.append((time.time(), str(message.get("Message-ID", ""))))
                return answer

            recorder.handle_DATA = handle_data  # the sink's hook, timed

    class SlowStripe(FakeStripe):
        """Stripe as far away as the real one: every request answered after `latency` seconds."""

        def __post_init__(self) -> None:
            super().__post_init__()
            self.intents: list[tuple[float, str]] = []  # (when created, invoice id)

        def _handle(self, handler: Any) -> None:
            time.sleep(latency)
            super()._handle(handler)

        def _new(self, prefix: str, object_type: str, **fields: Any) -> dict[str, Any]:
            obj = super()._new(prefix, object_type, **fields)
            if object_type == "payment_intent":
                self.intents.append((time.time(), str((fields.get("metadata") or {}).get("invoice_id", ""))))
            return obj

    return RedisServer, TimedSink, SlowStripe


class Worker:
    """`celery worker --pool solo` or `--pool threads`: one process doing the tasks of `queues`,
    whose peak RSS is the worker's."""

    def __init__(
        self, index: int, env: dict[str, str], log: Path, *, queues: str, pool: str = "solo", concurrency: int = 1
    ) -> None:
        self.index, self.env, self.log = index, env, log
        self.queues, self.pool, self.concurrency = queues, pool, concurrency
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def label(self) -> str:
        pool = f"{self.pool} ×{self.concurrency}" if self.pool == "threads" else self.pool
        return f"worker {self.index} (-Q {self.queues}, {pool})"

    def start(self) -> None:
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "retainers", "worker", "--pool", self.pool,
                 "--concurrency", str(self.concurrency), "--queues", self.queues,
                 "--hostname", f"bench{self.index}@%h", "--loglevel", "info",
                 "--without-heartbeat", "--without-gossip", "--without-mingle"],
                cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def ready(self) -> bool:
        self.check()
        return " ready." in self.log.read_text(errors="replace")

    def check(self) -> None:
        if self.process is None or self.process.poll() is not None:
            raise BenchError(f"Celery worker {self.index} exited: {self.tail()}")

    def tail(self) -> str:
        lines = [line for line in self.log.read_text(errors="replace").splitlines() if line.strip()]
        return lines[-1].strip() if lines else "no output"

    def peak_rss_kib(self) -> int:
        """The process's high-water mark (VmHWM); psutil's current RSS where /proc has none."""
        assert self.process is not None
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        except OSError:
            pass
        try:
            import psutil

            return int(psutil.Process(self.process.pid).memory_info().rss // 1024)
        except Exception:
            return 0

    def errors(self) -> int:
        text = self.log.read_text(errors="replace")
        return text.count("] ERROR/") + text.count("Traceback (most recent call last)")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


QUEUES = ("celery", "email")  # the default queue and the outbox's (retainers/queues.py)


def _workers(args: argparse.Namespace, env: dict[str, str], scratch: Path) -> list[Worker]:
    """W workers on the default queue (and on the email queue too without email workers), then E
    on the email queue only: threads, as sending an email is mostly waiting on SMTP."""
    threads = args.threads if args.pool == "threads" else 1
    default = "celery" if args.email_workers else ",".join(QUEUES)
    workers = [
        Worker(i + 1, env, scratch / f"worker{i + 1}.log", queues=default, pool=args.pool, concurrency=threads)
        for i in range(args.celery_workers)
    ]
    for i in range(args.celery_workers, args.celery_workers + args.email_workers):
        workers.append(
            Worker(i + 1, env, scratch / f"worker{i + 1}.log", queues="email", pool="threads", concurrency=4)
        )
    return workers


def _wait(what: str, probe, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


# --- The orchestrating process ---------------------------------------------------------------


def main() -> None:
    args = parse_args()
    if args.stage:
        STAGES[args.stage](args)
        return
    RedisServer, TimedSink, SlowStripe = _services(args.stripe_latency)
    server = find_server()
    scratch = Path(tempfile.mkdtemp(prefix="retainers_bench_"))
    redis_server = RedisServer(scratch)
    redis_server.start()
    sink = TimedSink().start()
    stripe = SlowStripe().start()
    env = django_env(
        database_url=server.url_for(args.db), redis_url=redis_server.url, scratch=scratch,
        CELERY_BROKER_URL=redis_server.url, EMAIL_URL=f"{sink.url}?timeout=30",
        STRIPE_SECRET_KEY=STRIPE_KEY, STRIPE_API_BASE=stripe.url, STRIPE_TIMEOUT_SECONDS="30",
        STORAGE_URL="", CONN_MAX_AGE="60",
    )  # fmt: skip
    workers = _workers(args, env, scratch)
    created = False
    timings: list[tuple[str, str]] = []
    try:
        say(f"Scratch database {args.db}; private broker {redis_server.url}; SMTP sink {sink.url}; "
            f"fake Stripe {stripe.url} ({args.stripe_latency * 1000:.0f} ms a request)")  # fmt: skip
        if args.from_template:
            server.create(args.db, template=args.from_template, replace=args.replace)
            created = True
        else:
            server.create(args.db, replace=args.replace)
            created = True
            started = time.monotonic()
            run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], env=env, label="migrate")
            seed = ["seed_demo", "--workspaces", str(args.workspaces), "--clients", str(args.retainers_per_workspace)]
            seed += ["--months", str(args.months)] + (["--jobs", str(args.jobs)] if args.jobs else [])
            say(f"Seeding: manage.py {' '.join(seed)}")
            run([sys.executable, "manage.py", *seed], env=env, label="seed_demo", echo=True)
            run_stage(BILLING_SCRIPT, "prebill", [], env=env, label="marking the history billed")
            timings.append(("migrate, seed, history billed", f"{time.monotonic() - started:.1f} s"))
            if args.save_template:
                server.create(args.save_template, template=args.db, replace=args.replace)
                say(f"Saved the seeded database as {args.save_template}.")
        prepared = run_stage(
            SCRIPT, "prepare", ["--auto-charge", str(args.auto_charge)], env=env, label="Stripe accounts and cards"
        )
        say(f"  as of {prepared['as_of']}: {prepared['due']:,} retainers due, {prepared['auto_charge']:,} "
            f"paying by saved card, in {prepared['workspaces']:,} workspaces")  # fmt: skip
        started = time.monotonic()
        for worker in workers:
            worker.start()
        for worker in workers:
            _wait(f"Celery worker {worker.index} to be ready", worker.ready, timeout=120)
        timings.append((f"{len(workers)} Celery workers ready", f"{time.monotonic() - started:.1f} s"))
        load = load_average()
        say(f"Billing day ({len(workers)} Celery worker{'s' if len(workers) > 1 else ''})…")
        t0 = time.time()
        start = run_stage(SCRIPT, "start", ["--as-of", prepared["as_of"]], env=env, label="starting the run")
        finished = _follow(args, env, workers, redis_server.url, t0, prepared)
        rss = [(worker.label, worker.peak_rss_kib()) for worker in workers]
        errors = sum(worker.errors() for worker in workers)
        inspected = run_stage(
            SCRIPT,
            "inspect",
            ["--since", str(t0), "--as-of", prepared["as_of"]],
            env=env,
            label="reading the outcome from the database",
        )
        figures = _figures(t0, finished, inspected, sink.accepted, stripe.intents)
        checks = _checks(inspected, prepared["due"], sink.accepted, stripe.intents, errors)
        say()
        say(report(args, prepared, start, figures, checks, rss, load, timings))
        if not all(ok for _, ok, _ in checks):
            for worker in workers:
                say(f"(worker {worker.index} log: last line: {worker.tail()})")
            sys.exit(1)
    finally:
        for worker in workers:
            worker.stop()
        stripe.stop()
        sink.stop()
        redis_server.kill()
        if created and not args.keep:
            server.drop(args.db)
        elif created:
            say(f"Kept {args.db}: drop it with  dropdb {args.db}")
        shutil.rmtree(scratch, ignore_errors=True)


def _follow(args, env, workers: list[Worker], redis_url: str, t0: float, prepared: dict) -> float:
    """Wait until the run's work is done: the broker's queue empty, every invoice of the run
    delivered and the outbox empty, stable over two looks. Returns when it was seen done."""
    import psycopg
    import redis

    broker = redis.Redis.from_url(redis_url)
    last_report = time.monotonic()
    stable = 0
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        while True:
            for worker in workers:
                worker.check()
            queued = sum(int(broker.llen(queue)) for queue in QUEUES)
            invoices, undelivered = _one(
                conn,
                "SELECT count(*), count(*) FILTER (WHERE delivered_at IS NULL) FROM billing_invoice "
                "WHERE created_at >= to_timestamp(%s)",
                [t0],
            )
            (outbox,) = _one(
                conn,
                "SELECT count(*) FROM retainers_email WHERE status IN ('queued', 'sending') "
                "AND created_at >= to_timestamp(%s)",
                [t0],
            )
            busy = sum(1 for worker in workers if _busy(worker))
            done = invoices and not undelivered and not outbox and not queued and not busy
            stable = stable + 1 if done else 0
            if stable >= 2:
                return time.time()
            if time.monotonic() - last_report > 10:
                last_report = time.monotonic()
                say(f"  {time.time() - t0:6.0f} s: {invoices:,} invoices, {invoices - undelivered:,} delivered, "
                    f"{outbox:,} emails waiting, {queued:,} tasks queued, {busy} worker(s) busy")  # fmt: skip
            if time.time() - t0 > args.timeout:
                say(f"  gave up after {args.timeout:.0f} s")
                return time.time()
            time.sleep(0.5)


def _one(conn: Any, query: str, params: list[Any]) -> tuple[Any, ...]:
    row = conn.execute(query, params).fetchone()
    assert row is not None  # an aggregate has one row
    return tuple(row)


def _busy(worker: Worker) -> bool:
    """Whether the worker's log shows a task received and not yet finished."""
    text = worker.log.read_text(errors="replace")
    received = len(re.findall(r"\] Task \S+ received$", text, re.MULTILINE))
    ended = text.count(" succeeded in ") + text.count(" raised unexpected: ") + text.count(" retry: ")
    return received > ended


def _figures(t0: float, finished: float, inspected: dict, accepted: list, intents: list) -> dict[str, Any]:
    emails = sorted(when for when, _ in accepted)
    charges = sorted(when for when, _ in intents)
    charged = sorted(inspected["charged_at"])
    issued_last = inspected["last_invoice_at"]
    deliveries = emails + charged
    return {
        "invoices": inspected["invoices"],
        "run_seconds": (issued_last - t0) if issued_last else 0.0,
        "emails": len(emails),
        "email_seconds": (emails[-1] - t0) if emails else 0.0,
        "charges": len(charges),
        "charge_seconds": (charged[-1] - t0) if charged else 0.0,
        "first": (min(deliveries) - t0) if deliveries else None,
        "first_email": (emails[0] - t0) if emails else None,
        "first_charge": (charged[0] - t0) if charged else None,
        "last": (max(deliveries) - t0) if deliveries else None,
        "waited": finished - t0,
    }


def _checks(inspected: dict, due: int, accepted: list, intents: list, errors: int) -> list[tuple[str, bool, str]]:
    by_message = collections.Counter(message_id for _, message_id in accepted)
    keys = inspected["keys"]  # Message-ID -> outbox key
    per_key: collections.Counter[str] = collections.Counter()
    unknown = 0
    for message_id, count in by_message.items():
        key = keys.get(message_id)
        if key is None:
            unknown += count
        else:
            per_key[key] += count
    emailed, charged = inspected["emailed"], inspected["auto_charge"]
    invoice_mails = [per_key[f"invoice-{pk}-issued"] for pk in emailed]
    stray = [pk for pk in charged if per_key[f"invoice-{pk}-issued"]]
    intents_per = collections.Counter(invoice_id for _, invoice_id in intents)
    charge_counts = [intents_per[str(pk)] for pk in charged]
    not_ours = sum(n for invoice_id, n in intents_per.items() if int(invoice_id or 0) not in set(charged))
    receipts = [per_key[f"payment-{pk}-receipt"] for pk in inspected["payments"]]
    twice = sum(1 for count in per_key.values() if count > 1)
    return [
        ("every due period closed and billed", inspected["invoices"] > 0 and not inspected["left_due"],
         f"{inspected['invoices']:,} invoices for {due:,} retainers due; {inspected['left_due']} periods left due"),
        ("every emailed invoice emailed exactly once", bool(emailed) and all(n == 1 for n in invoice_mails),
         f"{sum(n == 1 for n in invoice_mails):,} of {len(emailed):,} once; "
         f"{sum(n == 0 for n in invoice_mails)} never, {sum(n > 1 for n in invoice_mails)} more than once"),
        ("no auto-charge invoice emailed as well", not stray, f"{len(stray)}"),
        ("every auto-charge invoice charged exactly once (fake Stripe's PaymentIntents)",
         all(n == 1 for n in charge_counts) and not not_ours,
         f"{sum(n == 1 for n in charge_counts):,} of {len(charged):,} once; "
         f"{sum(n == 0 for n in charge_counts)} never, {sum(n > 1 for n in charge_counts)} more than once, "
         f"{not_ours} for other invoices"),
        ("every charge's receipt emailed exactly once", all(n == 1 for n in receipts),
         f"{sum(n == 1 for n in receipts):,} of {len(receipts):,}"),
        ("no email sent twice, none unknown", not twice and not unknown, f"{twice} twice, {unknown} unknown"),
        ("nothing left claimed (invoices, outbox, charge attempts)", not inspected["claimed"],
         ", ".join(f"{name} {n}" for name, n in inspected["claimed"].items()) or "none"),
        ("no task failed (worker logs)", not errors, f"{errors} errors"),
    ]  # fmt: skip


def _seconds(value: float | None) -> str:
    return f"{value:.1f} s" if value is not None else "-"


def _describe(args: argparse.Namespace) -> str:
    """The workers in words: "2 Celery workers (threads ×2) + 1 email worker"."""
    pool = f"threads ×{args.threads}" if args.pool == "threads" else args.pool
    text = f"{args.celery_workers} Celery worker{'s' if args.celery_workers > 1 else ''} ({pool})"
    if args.email_workers:
        text += f" + {args.email_workers} email worker{'s' if args.email_workers > 1 else ''}"
    return text


def report(args, prepared, start, figures, checks, rss, load, timings) -> str:
    out = []
    last = figures["last"]
    retainers = args.workspaces * args.retainers_per_workspace  # 10k seeded: about 9,100 due that day
    if retainers < 10_000:
        verdict = f"not judged at {retainers:,} retainers"
    else:
        verdict = "met" if last is not None and last < GOAL_SECONDS else "NOT met"
    n = figures["invoices"]

    def rate(count: int, seconds: float) -> str:
        return f"{count / seconds:,.1f}/s" if seconds else "-"

    out.append(
        table(
            f"Billing day as of {prepared['as_of']}: {prepared['due']:,} retainers in {prepared['workspaces']:,} "
            f"workspaces, {_describe(args)}, Stripe at "
            f"{args.stripe_latency * 1000:.0f} ms (load before: {load})",
            [
                ("time to first delivery", f"{figures['first']:.1f} s" if figures["first"] is not None else "-"),
                (
                    "  first email accepted / first charge recorded",
                    " / ".join(_seconds(figures[key]) for key in ("first_email", "first_charge")),
                ),
                (
                    "time to last delivery (email accepted or charge recorded)",
                    f"{last:.1f} s" if last is not None else "-",
                ),
                (f"goal: {GOAL}", verdict),
                (
                    "run: invoices issued, to the last one",
                    f"{n:,} in {figures['run_seconds']:.1f} s",
                    rate(n, figures["run_seconds"]),
                ),
                (
                    "emails accepted by SMTP (invoices and receipts), to the last one",
                    f"{figures['emails']:,} in {figures['email_seconds']:.1f} s",
                    rate(figures["emails"], figures["email_seconds"]),
                ),
                (
                    "auto-charges recorded, to the last one",
                    f"{figures['charges']:,} in {figures['charge_seconds']:.1f} s",
                    rate(figures["charges"], figures["charge_seconds"]),
                ),
                ("bill_workspace tasks queued by the run", f"{start['workspaces']:,}"),
                *[(f"peak RSS, {label}", mib(kib)) for label, kib in rss],
            ],
        )  # fmt: skip
    )
    out.append(table("Checks", [(name, "ok" if ok else "FAILED", detail) for name, ok, detail in checks]))
    if timings:
        out.append(table("Set-up (not part of the figures above)", timings))
    return "\n\n".join(out)


# --- Stage: Stripe accounts, saved cards, billing emails ------------------------------------------


def stage_prepare(args: argparse.Namespace) -> None:
    """Every workspace takes payments through a connected account; every `1/share`-th retainer is
    paid by the client's saved card; every client has a billing email."""
    setup_django()
    from django.db import connection, transaction
    from django.utils import timezone

    from bench.billing import _due_date, _population
    from billing.models import StripeAccount, StripeCustomer
    from clients.models import Client, Retainer
    from retainers.models import Workspace

    as_of = _due_date()
    population = _population(as_of)
    now = timezone.now()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE clients_client SET billing_email = 'ap-' || id || '@example.com' WHERE billing_email = ''"
            )
        StripeAccount.objects.bulk_create(
            [StripeAccount(workspace_id=pk, account_id=f"acct_bench{pk}", charges_enabled=True,
                           details_submitted=True, created_at=now, updated_at=now)
             for pk in Workspace.objects.exclude(pk__in=StripeAccount.objects.values("workspace_id")).values_list("pk", flat=True)]
        )  # fmt: skip
        retainers = list(
            Retainer.objects.filter(status=Retainer.Status.ACTIVE).order_by("pk").values_list("pk", "client_id")
        )
        step = round(1 / args.auto_charge) if args.auto_charge else 0
        chosen = [(pk, client_id) for i, (pk, client_id) in enumerate(retainers) if step and i % step == 0]
        chosen = chosen[: round(len(retainers) * args.auto_charge)] if step else []
        Retainer.objects.update(auto_charge=False)
        Retainer.objects.filter(pk__in=[pk for pk, _ in chosen]).update(auto_charge=True)
        workspaces = dict(Client.objects.values_list("pk", "workspace_id"))
        StripeCustomer.objects.all().delete()
        StripeCustomer.objects.bulk_create(
            [StripeCustomer(workspace_id=workspaces[client_id], client_id=client_id, customer_id=f"cus_bench{client_id}",
                            payment_method_id=f"pm_bench{client_id}", card_brand="visa", card_last4="4242",
                            card_exp="12/2030")
             for client_id in {client_id for _, client_id in chosen}]
        )  # fmt: skip
    write_result(
        args.result,
        {"as_of": as_of.isoformat(), "due": population["due"], "auto_charge": len(chosen),
         "workspaces": Workspace.objects.count()},
    )  # fmt: skip


# --- Stage: start the run as beat does --------------------------------------------------------


def stage_start(args: argparse.Namespace) -> None:
    setup_django()
    from billing import services

    summary = services.run_billing(as_of=args.as_of)  # one bill_workspace task per workspace
    if not summary.started:
        raise BenchError("another billing run holds the run's advisory lock")
    write_result(args.result, {"workspaces": summary.workspaces})


# --- Stage: what the run left in the database ----------------------------------------------------


def stage_inspect(args: argparse.Namespace) -> None:
    setup_django()
    from datetime import UTC, datetime

    from django.db.models import Max

    from billing.models import Invoice, Payment
    from clients.models import Retainer
    from delivery.models import Period
    from retainers.models import Email

    since = datetime.fromtimestamp(args.since, tz=UTC)
    invoices = Invoice.objects.filter(created_at__gte=since)
    charged = list(invoices.filter(auto_charge=True).values_list("pk", flat=True))
    payments = Payment.objects.filter(invoice__in=invoices, kind=Payment.Kind.PAYMENT)
    charged_at = [
        dt.timestamp()
        for dt in invoices.filter(auto_charge=True).exclude(delivered_at=None).values_list("delivered_at", flat=True)
        if dt is not None
    ]
    claimed = {
        "invoices claimed, not delivered": Invoice.objects.exclude(delivery_claimed_at=None)
        .filter(delivered_at=None)
        .count(),
        "emails queued or sending": Email.objects.filter(
            status__in=[Email.Status.QUEUED, Email.Status.SENDING]
        ).count(),
        "charges pending": payments.filter(status=Payment.Status.PENDING).count(),
    }
    last = invoices.aggregate(last=Max("created_at"))["last"]
    left_due = Period.objects.filter(
        status=Period.Status.OPEN, retainer__status=Retainer.Status.ACTIVE, end_on__lte=args.as_of
    ).count()
    write_result(
        args.result,
        {
            "invoices": invoices.count(),
            "left_due": left_due,
            "emailed": list(invoices.filter(auto_charge=False).values_list("pk", flat=True)),
            "auto_charge": charged,
            "payments": list(payments.filter(status=Payment.Status.SUCCEEDED).values_list("pk", flat=True)),
            "charged_at": charged_at,
            "claimed": {name: n for name, n in claimed.items() if n},
            "last_invoice_at": last.timestamp() if last else None,
            "keys": dict(Email.objects.filter(created_at__gte=since).values_list("message_id", "key")),
        },
    )


STAGES = {"prepare": stage_prepare, "start": stage_start, "inspect": stage_inspect}


if __name__ == "__main__":
    os.chdir(ROOT)
    run_main(main)
