"""Benchmark of the billing run (issue 4): N workspaces × M retainers, billed as the command does.

    .venv/bin/python bench/billing.py --workspaces 10 --retainers-per-workspace 100
    .venv/bin/python bench/billing.py --workspaces 100 --retainers-per-workspace 100 --workers 2

Creates a scratch database (retainers_bench_billing), migrates it, seeds it with `seed_demo`,
marks the seeded history as billed, then times the billing run as of the first day by which
every monthly retainer's open period has ended, and the same-day re-run. Prints invoices
issued, invoices per second, rows written, peak memory and wall times, then times the
invoice PDF on its own. The database is dropped at the end unless --keep. See the README, section Benchmarks.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder is first on sys.path, and this file's name would
# shadow the `billing` app: the project's root takes its place.
ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

import argparse  # noqa: E402
import functools  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import date  # noqa: E402
from typing import Any  # noqa: E402

from bench.common import (  # noqa: E402
    BenchError,
    ScratchRedis,
    default_redis_url,
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
COUNTED = ["billing_invoice", "billing_invoiceline", "delivery_period", "delivery_ledgerentry"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/billing.py",
        description=(
            "Seed N workspaces × M retainers in a scratch database, then time the billing run "
            "(inline, as `manage.py run_billing` does) and its same-day re-run. See the README, section Benchmarks."
        ),
    )
    parser.add_argument("--workspaces", type=int, metavar="N", help="bench workspaces to seed (required)")
    parser.add_argument(
        "--retainers-per-workspace", type=int, metavar="M", help="clients per workspace, one retainer each (required)"
    )
    parser.add_argument("--months", type=int, default=6, metavar="K", help="months of seeded history (6)")
    parser.add_argument(
        "--workers", type=int, default=1, metavar="W",
        help="processes billing a share of the workspaces each (1: services.run_billing inline, as the command)",
    )  # fmt: skip
    parser.add_argument(
        "--as-of", type=date.fromisoformat, metavar="YYYY-MM-DD",
        help="bill as of this date (default: the first day by which every monthly retainer's open period has ended)",
    )  # fmt: skip
    parser.add_argument(
        "--unbilled-history", action="store_true",
        help="leave the seeded history unbilled: the run then catches up every past period (one invoice each)",
    )  # fmt: skip
    parser.add_argument("--pdfs", type=int, default=50, metavar="P", help="invoice PDFs to time (50; 0 skips)")
    parser.add_argument("--jobs", type=int, metavar="J", help="seed_demo --jobs (processes seeding)")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the first run into FILE (needs --workers 1)")
    parser.add_argument("--db", default="retainers_bench_billing", help="scratch database (retainers_bench…)")
    parser.add_argument("--redis-url", default=default_redis_url(), help="an empty Redis database for broker and cache")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database at the end")
    parser.add_argument("--replace", action="store_true", help="drop the scratch database first if it exists")
    parser.add_argument(
        "--save-template", metavar="DB",
        help="after seeding, copy the seeded database to DB (retainers_bench…) for --from-template",
    )  # fmt: skip
    parser.add_argument(
        "--from-template", metavar="DB", help="start from a copy of DB (saved by --save-template): no seeding"
    )
    # Internal: one stage of the run, in its own process.
    parser.add_argument("--stage", choices=["prebill", "bill", "pdf"], help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.stage and not args.from_template:
        for name in ("workspaces", "retainers_per_workspace"):
            if getattr(args, name) is None:
                parser.error(f"--{name.replace('_', '-')} is required")
    for name in ("workspaces", "retainers_per_workspace", "months", "workers"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.profile and args.workers != 1:
        parser.error("--profile needs --workers 1")
    return args


# --- The orchestrating process ---------------------------------------------------------------


def main() -> None:
    args = parse_args()
    if args.stage:
        STAGES[args.stage](args)
        return
    server = find_server()
    redis = ScratchRedis(args.redis_url)
    scratch = Path(tempfile.mkdtemp(prefix="retainers_bench_"))
    env = django_env(database_url=server.url_for(args.db), redis_url=args.redis_url, scratch=scratch)
    created = False
    timings: list[tuple[str, str]] = []
    try:
        say(f"Scratch database {args.db} on {server.url_for(args.db).split('@')[-1]}; broker {args.redis_url}")
        if args.from_template:
            server.create(args.db, template=args.from_template, replace=args.replace)
            created = True
            say(f"Copied from {args.from_template} (no seeding).")
        else:
            server.create(args.db, replace=args.replace)
            created = True
            started = time.monotonic()
            run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], env=env, label="migrate")
            timings.append(("migrate", f"{time.monotonic() - started:.1f} s"))
            started = time.monotonic()
            seed = ["seed_demo", "--workspaces", str(args.workspaces), "--clients", str(args.retainers_per_workspace)]
            seed += ["--months", str(args.months)] + (["--jobs", str(args.jobs)] if args.jobs else [])
            say(f"Seeding: manage.py {' '.join(seed)}")
            run([sys.executable, "manage.py", *seed], env=env, label="seed_demo", echo=True)
            timings.append(("seed_demo", f"{time.monotonic() - started:.1f} s"))
            if not args.unbilled_history:
                started = time.monotonic()
                prebilled = run_stage(SCRIPT, "prebill", [], env=env, label="marking the history billed")
                timings.append((f"history marked billed ({prebilled['invoices']:,} invoices)",
                                f"{time.monotonic() - started:.1f} s"))  # fmt: skip
            if args.save_template:
                server.create(args.save_template, template=args.db, replace=args.replace)
                say(f"Saved the seeded database as {args.save_template}.")
        forwarded = ["--workers", str(args.workers)]
        forwarded += ["--as-of", args.as_of.isoformat()] if args.as_of else []
        forwarded += ["--profile", args.profile] if args.profile else []
        say(f"Billing ({args.workers} process{'es' if args.workers > 1 else ''})…")
        billed = run_stage(SCRIPT, "bill", forwarded, env=env, label="the billing run")
        billed["queued_tasks"] = redis.queued()
        pdfs = None
        if args.pdfs:
            say("Rendering invoice PDFs…")
            pdfs = run_stage(SCRIPT, "pdf", ["--pdfs", str(args.pdfs)], env=env, label="the PDF rendering")
        say()
        say(report(args, billed, pdfs, timings))
    finally:
        redis.flush()
        if created and not args.keep:
            server.drop(args.db)
        elif created:
            say(f"Kept {args.db}: drop it with  dropdb {args.db}  (or psql -c 'DROP DATABASE {args.db}').")
        shutil.rmtree(scratch, ignore_errors=True)


def report(args: argparse.Namespace, billed: dict, pdfs: dict | None, timings: list[tuple[str, str]]) -> str:
    first, again = billed["run"], billed["rerun"]
    pop = billed["population"]
    rate = first["invoices"] / first["wall"] if first["wall"] else 0.0
    out = []
    out.append(
        table(
            f"Billing run as of {billed['as_of']}  ({args.workers} process{'es' if args.workers > 1 else ''}; "
            f"load before the run {billed['load']})",
            [
                ("workspaces billed", f"{first['workspaces']:,}"),
                (
                    "retainers (active / with a period due)",
                    f"{pop['retainers']:,} ({pop['active']:,} / {pop['due']:,})",
                ),
                ("periods closed", f"{first['periods_closed']:,}"),
                ("invoices issued", f"{first['invoices']:,}"),
                ("wall time", f"{first['wall']:.1f} s"),
                ("invoices per second", f"{rate:,.0f}"),
                (
                    "CPU: billing processes / their PostgreSQL backends",
                    f"{first['cpu_python']:.1f} s / {first['cpu_postgres']:.1f} s"
                    + (
                        f"  ({1000 * (first['cpu_python'] + first['cpu_postgres']) / first['invoices']:.2f} ms "
                        "per invoice)"
                        if first["invoices"]
                        else ""
                    ),
                ),
                (
                    "invoices per second the CPU time allows on 2 idle cores",
                    f"{2 * first['invoices'] / (first['cpu_python'] + first['cpu_postgres']):,.0f}"
                    if first["invoices"] and first["cpu_python"] + first["cpu_postgres"]
                    else "-",
                ),
                ("tasks enqueued (invoice delivery, left unread)", f"{billed['queued_tasks']:,}"),
                (
                    "peak RSS: billing process / largest worker",
                    f"{mib(first['maxrss_self'])} / {mib(first['maxrss_children']) if args.workers > 1 else '-'}",
                ),
                ("same-day re-run: wall time", f"{again['wall']:.1f} s"),
                ("same-day re-run: invoices, rows written", f"{again['invoices']}, {again['writes_total']}"),
                (
                    "same-day re-run: CPU, billing processes / PostgreSQL backends",
                    f"{again['cpu_python']:.1f} s / {again['cpu_postgres']:.1f} s",
                ),
            ],
        )  # fmt: skip
    )
    phases = first["phases"]
    if phases:
        busy = sum(phases.values())
        rows: list[tuple[str, ...]] = [(name, f"{seconds:.1f} s", f"{100 * seconds / first['wall']:.0f} %")
                for name, seconds in phases.items() if seconds]  # fmt: skip
        rows.append(("other (queries, commits, workspace loop)", f"{max(first['wall'] - busy, 0):.1f} s", ""))
        title = "Where the run's time goes" + (" (summed over the workers)" if args.workers > 1 else "")
        out.append(table(title, rows))
    rows = [("table", "before", "after", "inserted", "updated", "deleted")]
    for name in sorted(set(COUNTED) | set(first["writes"])):
        before, after = first["rows_before"].get(name, ""), first["rows_after"].get(name, "")
        ins, upd, dele = first["writes"].get(name, (0, 0, 0))
        rows.append((name, _n(before), _n(after), f"{ins:,}", f"{upd:,}", f"{dele:,}"))
    rows.append(("all tables (re-run)", "", "", *(f"{n:,}" for n in again["writes_sum"])))
    out.append(table("Rows written by the run (counts; inserted/updated/deleted from pg_stat_user_tables)", rows))
    if pdfs:
        out.append(
            table(
                "Invoice PDFs (billing.pdf.render_invoice_pdf, in-process; the app renders them in Celery workers)",
                [
                    ("first PDF (imports WeasyPrint, loads fonts)", f"{pdfs['first']:.2f} s"),
                    (f"next {pdfs['count']} PDFs", f"{pdfs['wall']:.1f} s"),
                    ("PDFs per second (one process)", f"{pdfs['count'] / pdfs['wall']:.1f}"),
                    ("median size", f"{pdfs['median_kib']:.0f} KiB"),
                ],
            )
        )
    if timings:
        out.append(table("Set-up (not part of the figures above)", timings))
    return "\n\n".join(out)


def _n(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


# --- Stage: mark the seeded history as billed --------------------------------------------------


def stage_prebill(args: argparse.Namespace) -> None:
    """Give every seeded period that was due when seeded an invoice, as earlier runs would have.

    seed_demo writes delivery history only; without this, the run would first catch up every
    past period. Invoices are written with COPY (paid, one total, no lines: nothing reads
    them but the "already billed" check), numbered per workspace and year like the real ones.
    """
    setup_django()
    from django.db import connection, transaction
    from django.db.models import Q
    from django.utils import timezone

    from billing.models import Invoice, InvoiceSequence
    from delivery.models import Period
    from demo.bench import Table, analyze_tables

    columns = [
        "workspace_id", "client_id", "retainer_id", "period_id", "kind", "number", "status", "currency",
        "issued_on", "due_on", "period_start_on", "period_end_on", "subtotal_minor", "total_minor",
        "paid_minor", "auto_charge", "created_at", "paid_at", "sent_at",
    ]  # fmt: skip
    copy = Table(Invoice, columns)
    now = timezone.now()
    written = 0
    # Workspaces billed for real already (the demo workspace, which seed_demo bills) are left as they are.
    workspace_ids = list(
        Period.objects.exclude(workspace_id__in=Invoice.objects.values("workspace_id"))
        .values_list("workspace_id", flat=True)
        .distinct()
        .order_by("workspace_id")
    )
    for workspace_id in workspace_ids:
        periods = Period.objects.filter(workspace_id=workspace_id).filter(
            Q(billing_timing="advance") | Q(status=Period.Status.CLOSED)
        )
        due = []
        for pk, retainer_id, client_id, auto_charge, currency, timing, start_on, end_on, price in periods.values_list(
            "pk", "retainer_id", "retainer__client_id", "retainer__auto_charge", "currency", "billing_timing",
            "start_on", "end_on", "price_minor",
        ):  # fmt: skip
            issued_on = start_on if timing == "advance" else end_on
            due.append((issued_on, retainer_id, pk, client_id, auto_charge, currency, start_on, end_on, price))
        due.sort()
        numbers: dict[int, int] = {}
        rows = []
        for issued_on, retainer_id, pk, client_id, auto_charge, currency, start_on, end_on, price in due:
            numbers[issued_on.year] = numbers.get(issued_on.year, 0) + 1
            rows.append((
                workspace_id, client_id, retainer_id, pk, "scheduled", f"{issued_on.year}-{numbers[issued_on.year]:04d}",
                "paid", currency, issued_on, issued_on, start_on, end_on, price, price, price, auto_charge,
                now, now, now,
            ))  # fmt: skip
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")
            copy.copy(cursor, rows)
            InvoiceSequence.objects.bulk_create(
                InvoiceSequence(workspace_id=workspace_id, year=year, last_number=last)
                for year, last in numbers.items()
            )
        written += len(rows)
    analyze_tables()  # fresh statistics, as autovacuum would have after months of runs
    write_result(args.result, {"invoices": written})


# --- Stage: the billing run and its re-run -------------------------------------------------------

PHASES: dict[str, float] = {}


def _timed(name: str, function):
    PHASES.setdefault(name, 0.0)

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            PHASES[name] += time.perf_counter() - started

    return wrapper


def _instrument() -> None:
    """Time the parts of the run: closing periods, issuing invoices, enqueueing the tasks."""
    from billing import services, tasks
    from delivery import services as delivery

    delivery.close_and_open_periods = _timed(
        "close periods (delivery.close_and_open_periods)", delivery.close_and_open_periods
    )
    services._issue_due_invoices = _timed("issue invoices (billing._issue_due_invoices)", services._issue_due_invoices)
    task = tasks.deliver_invoices
    task.apply_async = _timed("enqueue invoice delivery after commit", task.apply_async)  # type: ignore[method-assign]  # the timing wraps this task's bound method


def _due_date() -> date:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT max(p.end_on) FROM delivery_period p JOIN clients_retainer r ON r.id = p.retainer_id
               WHERE p.status = 'open' AND r.status = 'active' AND r.cadence = 'monthly'"""
        )
        (day,) = cursor.fetchone()
    if day is None:
        raise BenchError("no active monthly retainer with an open period: nothing to bill")
    return day


def _population(as_of: date) -> dict[str, int]:
    from clients.models import Retainer

    retainers = Retainer.objects.all()
    active = retainers.filter(status=Retainer.Status.ACTIVE)
    due = active.filter(periods__status="open", periods__end_on__lte=as_of).distinct()
    return {"retainers": retainers.count(), "active": active.count(), "due": due.count()}


def _row_counts() -> dict[str, int]:
    from django.db import connection

    counts = {}
    with connection.cursor() as cursor:
        for name in COUNTED:
            cursor.execute(f'SELECT count(*) FROM "{name}"')
            counts[name] = cursor.fetchone()[0]
    return counts


def _flush_stats() -> None:
    """Make this backend's table statistics visible now (PostgreSQL 15+; else within ~1 s)."""
    from django.db import connection

    with connection.cursor() as cursor:
        try:
            cursor.execute("SELECT pg_stat_force_next_flush()")
        except Exception:
            time.sleep(1.1)


def _write_stats() -> dict[str, tuple[int, int, int]]:
    from django.db import connection

    _flush_stats()
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables")
        return {name: (ins, upd, dele) for name, ins, upd, dele in cursor.fetchall()}


def _diff(before: dict, after: dict) -> dict[str, tuple[int, int, int]]:
    changed = {}
    for name, now in after.items():
        then = before.get(name, (0, 0, 0))
        delta = tuple(a - b for a, b in zip(now, then, strict=True))
        if any(delta):
            changed[name] = delta
    return changed


def _cpu_seconds() -> tuple[float, float]:
    """CPU time used so far by this process, and by its PostgreSQL backend when the server runs on
    this machine (read from /proc; 0 when it cannot be read). Unlike wall time, it hardly depends
    on what else the machine is doing: the figure to compare across runs on a busy machine."""
    from django.db import connection

    python = time.process_time()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        backend = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        backend = 0.0
    return python, backend


def _bill_inline(as_of: date) -> dict:
    from billing import services

    cpu_before = _cpu_seconds()
    summary = services.run_billing(as_of=as_of, inline=True)
    if not summary.started:
        raise BenchError("another billing run holds the run's advisory lock")
    cpu_after = _cpu_seconds()
    return {"workspaces": summary.workspaces, "invoices": summary.invoices, "periods_closed": summary.periods_closed,
            "skipped": 0, "cpu_python": cpu_after[0] - cpu_before[0],
            "cpu_postgres": cpu_after[1] - cpu_before[1]}  # fmt: skip


def _bill_share(workspace_ids: list[int], as_of: date, next_index, results) -> None:
    """A worker process: bill the next workspace nobody has taken, until none is left."""
    from django.db import connections

    from billing import services

    totals: dict[str, Any] = {"workspaces": 0, "invoices": 0, "periods_closed": 0, "skipped": 0, "error": ""}
    cpu_before = _cpu_seconds()
    try:
        while True:
            with next_index.get_lock():
                index = next_index.value
                next_index.value += 1
            if index >= len(workspace_ids):
                break
            result = services.bill_workspace(workspace_id=workspace_ids[index], as_of=as_of)
            totals["workspaces"] += 1
            totals["invoices"] += len(result.invoices)
            totals["periods_closed"] += result.periods_closed
            totals["skipped"] += bool(result.skipped)
        cpu_after = _cpu_seconds()
        totals["cpu_python"] = cpu_after[0] - cpu_before[0]
        totals["cpu_postgres"] = cpu_after[1] - cpu_before[1]
        _flush_stats()
    except Exception as exc:  # reported by the parent as one line
        totals["error"] = f"{type(exc).__name__}: {exc}"
    totals["phases"] = dict(PHASES)
    connections.close_all()
    results.put(totals)


def _bill_parallel(as_of: date, workers: int) -> dict:
    import multiprocessing
    import queue

    from django.db import connections

    from billing import services

    workspace_ids = services.workspaces_to_bill()
    connections.close_all()  # forked workers must not share this connection
    context = multiprocessing.get_context("fork")
    next_index, results = context.Value("q", 0), context.Queue()
    before = dict(PHASES)
    processes = [context.Process(target=_bill_share, args=(workspace_ids, as_of, next_index, results))
                 for _ in range(workers)]  # fmt: skip
    for process in processes:
        process.start()
    shares: list[dict[str, Any]] = []
    while len(shares) < workers:
        try:
            shares.append(results.get(timeout=1))
        except queue.Empty:
            if not any(p.is_alive() for p in processes) and results.empty():
                raise BenchError("a billing worker died without a result") from None
    for process in processes:
        process.join()
    errors = [share["error"] for share in shares if share["error"]]
    if errors:
        raise BenchError(f"a billing worker failed: {errors[0]}")
    for name in PHASES:
        PHASES[name] = before[name] + sum(share["phases"][name] - before[name] for share in shares)
    keys = ("workspaces", "invoices", "periods_closed", "skipped", "cpu_python", "cpu_postgres")
    return {key: sum(share.get(key, 0.0) for share in shares) for key in keys}


def _measured_run(as_of: date, workers: int, profile: str | None = None) -> dict:
    rows_before, writes_before = _row_counts(), _write_stats()
    phases_before = dict(PHASES)
    started = time.perf_counter()
    if workers > 1:
        totals = _bill_parallel(as_of, workers)
    elif profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        totals = profiler.runcall(_bill_inline, as_of)
        profiler.dump_stats(profile)
        stats = pstats.Stats(profiler).sort_stats("tottime")
        say(f"cProfile written to {profile}; the top functions by own time:")
        stats.print_stats(25)
    else:
        totals = _bill_inline(as_of)
    wall = time.perf_counter() - started
    usage_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    usage_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    writes = _diff(writes_before, _write_stats())
    return {
        **totals,
        "wall": wall,
        "maxrss_self": usage_self,
        "maxrss_children": usage_children,
        "rows_before": rows_before,
        "rows_after": _row_counts(),
        "writes": writes,
        "writes_sum": [sum(w[i] for w in writes.values()) for i in range(3)],
        "writes_total": sum(sum(w) for w in writes.values()),
        "phases": {name: PHASES[name] - phases_before.get(name, 0.0) for name in PHASES},
    }


def stage_bill(args: argparse.Namespace) -> None:
    setup_django()
    as_of = args.as_of or _due_date()
    population = _population(as_of)
    say(f"  as of {as_of}: {population['due']:,} of {population['active']:,} active retainers have a period to close")
    _instrument()
    load = load_average()
    first = _measured_run(as_of, args.workers, args.profile)
    say(f"  run: {first['invoices']:,} invoices in {first['wall']:.1f} s")
    again = _measured_run(as_of, args.workers)
    say(f"  same-day re-run: {again['invoices']} invoices in {again['wall']:.1f} s")
    write_result(args.result, {"as_of": as_of, "population": population, "load": load, "run": first, "rerun": again})


# --- Stage: invoice PDFs -----------------------------------------------------------------------


def stage_pdf(args: argparse.Namespace) -> None:
    setup_django()
    from billing.models import Invoice
    from billing.paylinks import pay_url
    from billing.pdf import render_invoice_pdf

    invoices = list(
        Invoice.objects.select_related("workspace", "client")
        .filter(kind=Invoice.Kind.SCHEDULED, lines__isnull=False)
        .distinct()
        .order_by("-pk")[: args.pdfs + 1]
    )
    if len(invoices) < 2:
        raise BenchError("fewer than two issued invoices with lines to render")
    started = time.perf_counter()
    render_invoice_pdf(invoices[0], pay_url=pay_url(invoices[0]))
    first = time.perf_counter() - started
    sizes = []
    started = time.perf_counter()
    for invoice in invoices[1:]:
        sizes.append(len(render_invoice_pdf(invoice, pay_url=pay_url(invoice))))
    wall = time.perf_counter() - started
    sizes.sort()
    write_result(
        args.result,
        {"first": first, "count": len(sizes), "wall": wall, "median_kib": sizes[len(sizes) // 2] / 1024},
    )


STAGES = {"prebill": stage_prebill, "bill": stage_bill, "pdf": stage_pdf}


if __name__ == "__main__":
    os.chdir(ROOT)
    run_main(main)
