"""Benchmark of the busiest pages (issues 6 and 15): a workspace of 1,000 clients with 15 months of history.

    .venv/bin/python bench/pages.py                 # 1,000 clients, 15 months, then 2 × 30 s of wrk
    .venv/bin/python bench/pages.py --skip-load     # only the in-process server times

Creates a scratch database (retainers_bench_pages), seeds it with `seed_demo --workspaces 1
--clients 1000 --months 15` ("Bench 0001"), bills its history (so there are invoices to show: about
10,500, for the invoices page's goal at 10k), gives one client's contact portal access, then:

1. server time of the consultant pages (dashboard, clients list, a client's page, invoices, plans,
   bookings, tasks, renewals) and of every portal page that takes only the workspace (overview,
   messages, …) with Django's test Client in-process: median and p95 over warm requests, and the
   queries per request; every consultant page and the portal overview also "after a change": the
   workspace's data version moved before each request, so every cached part is built again
   (retainers.pagecache), which is what the first view after any write costs. Each page is set
   beside its goal (issue 15 goal 4: under 50 ms median, the invoices page under 100 ms at 10k
   invoices). That the query counts do not grow with the data is checked by
   tests/dashboard/test_page_queries.py (the same counts on a small and a bigger workspace);
2. under load: gunicorn on 127.0.0.1 (DEBUG=0), `wrk` with 16 connections for 30 s, first on
   `/healthz` (the anchor: the cheapest answer the same server gives) and then on the portal overview:
   requests per second, p50/p95/p99 latency, errors and non-200 responses of each, and the ratio of
   the two rates (goal: the overview at least half of /healthz's, with p95 under 100 ms).

Pages are found by URL name when the script runs, so it measures whatever exists then.
The database is dropped at the end unless --keep. See the README, section Benchmarks.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

import argparse  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.error  # noqa: E402
import urllib.request  # noqa: E402

from bench.common import (  # noqa: E402
    BenchError,
    ScratchRedis,
    default_redis_url,
    django_env,
    find_server,
    load_average,
    run,
    run_main,
    run_stage,
    say,
    setup_django,
    table,
    write_result,
)

SCRIPT = Path(__file__).resolve()
SLUG = "bench-0001"
OWNER = "bench0001@example.com"

# Consultant pages: URL name and the extra URL arguments the script fills in. Missing names are
# reported as "not there yet" (the dashboard and portal are being rebuilt).
CONSULTANT_PAGES = [
    ("dashboard", {}),
    ("clients:client_list", {}),
    ("dashboard:client_detail", {"client_id": None}),
    # The client page's other tabs (the bare URL above is the summary and the Work tab).
    *((f"dashboard:client_{tab}", {"client_id": None}) for tab in ("billing", "communication", "renewals", "timeline")),
    ("billing:invoice_list", {}),
    ("clients:plan_list", {}),
    ("delivery:booking_list", {}),
    ("communication:task_list", {}),
    ("renewals:renewal_list", {}),
]
PORTAL_FIRST = "portal:overview"
# Timed twice: as mostly served (cached parts warm) and "after a change" (the workspace's data version
# moved before each request, so every cached part is built again: the first view after any write).
# Every consultant page (issue 15 goal 4: under 50 ms either way), and the portal overview.
CACHED_PAGES = {name for name, _ in CONSULTANT_PAGES} | {PORTAL_FIRST}
# The goals the report checks each page against (issue 15 goal 4), in seconds of median server time.
GOAL_MEDIAN = 0.050
GOAL_INVOICES_MEDIAN = 0.100
GOAL_INVOICES_AT = 10_000

# wrk reports p50/75/90/99 only; this script asks its own percentiles, and counts non-200s
# (a redirect to the sign-in page is a 302, which wrk alone would count as a success).
WRK_SCRIPT = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) non200 = 0 end
function response(status, headers, body) if status ~= 200 then non200 = non200 + 1 end end
function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get("non200") end
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d non200=%d " ..
    "p50=%d p90=%d p95=%d p99=%d max=%d mean=%d\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout, bad,
    latency:percentile(50), latency:percentile(90), latency:percentile(95), latency:percentile(99),
    latency.max, latency.mean))
end
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/pages.py",
        description=(
            "Seed one workspace with many clients and a year of history in a scratch database, then "
            "measure the server time of the dashboard, clients list and portal pages, and the portal "
            "overview under load (gunicorn + wrk). See the README, section Benchmarks."
        ),
    )
    parser.add_argument("--clients", type=int, default=1000, metavar="N", help="clients in the workspace (1000)")
    parser.add_argument("--months", type=int, default=15, metavar="K", help="months of history (15)")
    parser.add_argument("--requests", type=int, default=50, metavar="R", help="timed requests per page (50)")
    parser.add_argument("--warmup", type=int, default=5, metavar="W", help="untimed requests per page first (5)")
    parser.add_argument("--skip-load", action="store_true", help="skip the gunicorn + wrk part (no wrk needed)")
    parser.add_argument("--duration", type=int, default=30, metavar="S", help="seconds of load (30)")
    parser.add_argument("--connections", type=int, default=16, metavar="C", help="concurrent wrk connections (16)")
    parser.add_argument("--threads", type=int, default=2, metavar="T", help="wrk threads (2)")
    parser.add_argument("--gunicorn-workers", type=int, default=3, metavar="G",
                        help="gunicorn sync workers (3: the Dockerfile's WEB_CONCURRENCY)")  # fmt: skip
    parser.add_argument("--no-invoices", action="store_true", help="do not bill the seeded history")
    parser.add_argument("--db", default="retainers_bench_pages", help="scratch database (retainers_bench…)")
    parser.add_argument("--redis-url", default=default_redis_url(), help="an empty Redis database for cache and broker")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database at the end")
    parser.add_argument("--replace", action="store_true", help="drop the scratch database first if it exists")
    parser.add_argument("--save-template", metavar="DB", help="after preparing, copy the database to DB")
    parser.add_argument("--from-template", metavar="DB", help="start from a copy of DB (saved by --save-template)")
    parser.add_argument("--stage", choices=["prepare", "measure"], help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("clients", "months", "requests", "duration", "connections", "threads", "gunicorn_workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.threads > args.connections:
        parser.error("--threads must not exceed --connections")
    return args


# --- The orchestrating process ---------------------------------------------------------------


def main() -> None:
    args = parse_args()
    if args.stage:
        {"prepare": stage_prepare, "measure": stage_measure}[args.stage](args)
        return
    wrk = None
    if not args.skip_load:
        wrk = shutil.which("wrk")
        if wrk is None:
            raise BenchError("wrk is not installed: apt-get install -y wrk (or pass --skip-load)")
        try:
            import gunicorn  # noqa: F401
        except ImportError:
            raise BenchError("gunicorn is not installed in this Python: use the project's venv") from None
    server = find_server()
    redis = ScratchRedis(args.redis_url)
    scratch = Path(tempfile.mkdtemp(prefix="retainers_bench_"))
    env = django_env(database_url=server.url_for(args.db), redis_url=args.redis_url, scratch=scratch)
    created = False
    setup: list[tuple[str, str]] = []
    try:
        say(f"Scratch database {args.db} on {server.url_for(args.db).split('@')[-1]}; cache {args.redis_url}")
        if args.from_template:
            server.create(args.db, template=args.from_template, replace=args.replace)
            created = True
            # A template saved by an older checkout lacks this one's new migrations (indexes): apply them.
            run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], env=env, label="migrate")
        else:
            server.create(args.db, replace=args.replace)
            created = True
            started = time.monotonic()
            run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], env=env, label="migrate")
            seed = ["seed_demo", "--workspaces", "1", "--clients", str(args.clients), "--months", str(args.months)]
            say(f"Seeding: manage.py {' '.join(seed)}")
            run([sys.executable, "manage.py", *seed], env=env, label="seed_demo", echo=True)
            setup.append(("migrate + seed_demo", f"{time.monotonic() - started:.1f} s"))
        started = time.monotonic()
        prepared = run_stage(SCRIPT, "prepare", ["--no-invoices"] if args.no_invoices else [], env=env,
                             label="preparing the workspace")  # fmt: skip
        setup.append((f"history billed ({prepared['invoices']:,} invoices) and portal access",
                      f"{time.monotonic() - started:.1f} s"))  # fmt: skip
        if args.save_template:
            server.create(args.save_template, template=args.db, replace=args.replace)
            say(f"Saved the prepared database as {args.save_template}.")
        started = time.monotonic()
        run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], env=env, label="collectstatic")
        setup.append(("collectstatic (into a scratch folder)", f"{time.monotonic() - started:.1f} s"))
        say("Timing pages in-process…")
        measured = run_stage(SCRIPT, "measure", ["--requests", str(args.requests), "--warmup", str(args.warmup)],
                             env=env, label="timing the pages")  # fmt: skip
        load = None
        if wrk:
            load = load_test(args, wrk, env, prepared, scratch)
        say()
        say(report(args, prepared, measured, load, setup))
    finally:
        redis.flush()
        if created and not args.keep:
            server.drop(args.db)
        elif created:
            say(f"Kept {args.db}: drop it with  dropdb {args.db}")
        shutil.rmtree(scratch, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_test(args: argparse.Namespace, wrk: str, env: dict[str, str], prepared: dict, scratch: Path) -> dict:
    """`/healthz` (the anchor: the cheapest answer the same gunicorn gives) and then the portal
    overview, each under `--connections` concurrent clients for `--duration` seconds, in one run."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    url = base + prepared["portal_overview"]
    cookie = f"sessionid={prepared['contact_session']}"
    gunicorn = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "retainers.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", str(args.gunicorn_workers), "--log-level", "warning", "--error-logfile", "-"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until_up(gunicorn, base + "/healthz")
        # The page must really be the portal (200), not the sign-in page it redirects to.
        request = urllib.request.Request(url, headers={"Cookie": cookie})

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *a, **k):
                return None

        try:
            with urllib.request.build_opener(NoRedirect).open(request, timeout=10) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        if status != 200:
            raise BenchError(f"the portal overview answers {status} under gunicorn, not 200: nothing to load-test")
        lua = scratch / "bench.lua"
        lua.write_text(WRK_SCRIPT)
        return {
            "healthz": run_wrk(args, wrk, lua, base + "/healthz", cookie=None),
            "overview": run_wrk(args, wrk, lua, url, cookie=cookie),
        }
    finally:
        gunicorn.send_signal(signal.SIGTERM)
        try:
            gunicorn.wait(timeout=15)
        except subprocess.TimeoutExpired:
            gunicorn.kill()
            gunicorn.wait()


def run_wrk(args: argparse.Namespace, wrk: str, lua: Path, url: str, *, cookie: str | None) -> dict:
    say(f"Load: wrk -t{args.threads} -c{args.connections} -d{args.duration}s {url} (gunicorn, "
        f"{args.gunicorn_workers} workers)…")  # fmt: skip
    load = load_average()
    headers = ["-H", f"Cookie: {cookie}"] if cookie else []
    proc = subprocess.run(
        [wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "--latency",
         *headers, "-s", str(lua), url],
        capture_output=True, text=True, timeout=args.duration + 60,
    )  # fmt: skip
    line = next((x for x in proc.stdout.splitlines() if x.startswith("BENCH ")), None)
    if proc.returncode != 0 or line is None:
        raise BenchError(f"wrk failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-300:]}")
    figures: dict[str, int | str | float] = {key: int(value) for key, value in re.findall(r"(\w+)=(-?\d+)", line)}
    figures["load"] = load
    figures["rate"] = int(figures["requests"]) / (int(figures["duration_us"]) / 1e6)
    return figures


def wait_until_up(process: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = (process.stderr.read() if process.stderr else "").strip().splitlines()
            raise BenchError(f"gunicorn exited ({process.returncode}): {error[-1] if error else 'no output'}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.3)
    raise BenchError(f"gunicorn did not answer {url} within 60 s")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def goal_of(name: str, invoices: int) -> str:
    """The page's goal (issue 15 goal 4) and whether its median meets it, or "" for pages without one."""
    if name.startswith("portal:") and not name.startswith(PORTAL_FIRST):
        return ""
    if name.startswith("billing:invoice_list"):
        note = "" if invoices >= GOAL_INVOICES_AT else f" (only {invoices:,} invoices)"
        return f"< {GOAL_INVOICES_MEDIAN * 1000:.0f} ms{note}"
    return f"< {GOAL_MEDIAN * 1000:.0f} ms"


def meets(page: dict, invoices: int) -> str:
    goal = goal_of(page["name"], invoices)
    if not goal:
        return ""
    limit = GOAL_INVOICES_MEDIAN if page["name"].startswith("billing:invoice_list") else GOAL_MEDIAN
    return f"{goal}: {'yes' if page['median'] < limit else 'NO'}"


def report(args, prepared: dict, measured: dict, load: dict | None, setup: list[tuple[str, str]]) -> str:
    out = []
    rows = [("page", "median", "p95", "queries", "size", "goal (median)")]
    for page in measured["pages"]:
        if page["status"] == 200:
            rows.append((f"{page['name']}  {page['path']}", ms(page["median"]), ms(page["p95"]), page["queries"],
                         f"{page['size'] / 1024:.0f} KiB", meets(page, prepared["invoices"])))  # fmt: skip
    out.append(
        table(
            f"Server time, in-process (Django test Client, DEBUG=0; {args.requests} warm requests each after "
            f"{args.warmup}; {prepared['clients']:,} clients, {prepared['invoices']:,} invoices; "
            f"load before {measured['load']})",
            rows,
        )
    )
    skipped = [page for page in measured["pages"] if page["status"] != 200]
    if skipped:
        out.append(table("Not measured", [(p["name"], p["path"] or "", p["note"]) for p in skipped]))
    if load:
        health, overview = load["healthz"], load["overview"]

        def column(figures: dict) -> list[str]:
            errors = sum(figures[key] for key in ("connect", "read", "write", "timeout"))
            return [
                f"{figures['requests']:,}",
                f"{figures['rate']:,.1f}",
                f"{figures['p50'] / 1000:.1f} / {figures['p90'] / 1000:.1f} ms",
                f"{figures['p95'] / 1000:.1f} / {figures['p99'] / 1000:.1f} ms",
                f"{figures['max'] / 1000:.1f} ms",
                f"{errors}",
                f"{figures['non200']}",
                str(figures["load"]),
            ]

        labels = ["requests", "requests per second", "latency p50 / p90", "latency p95 / p99", "latency max",
                  "socket errors (connect/read/write/timeout)", "non-200 responses", "load before"]  # fmt: skip
        load_rows: list[tuple[str, str, str]] = [("", "/healthz (anchor)", "portal overview")]
        load_rows += list(zip(labels, column(health), column(overview), strict=True))
        ratio = overview["rate"] / health["rate"] if health["rate"] else 0.0
        load_rows.append(
            ("overview ÷ /healthz rate (goal ≥ 0.5)", "", f"{ratio:.2f}: {'yes' if ratio >= 0.5 else 'NO'}")
        )
        p95_ok = overview["p95"] < 100_000
        load_rows.append(
            ("overview p95 (goal < 100 ms)", "", f"{overview['p95'] / 1000:.1f} ms: {'yes' if p95_ok else 'NO'}")
        )
        out.append(
            table(
                f"Under load, one after the other in the same run (gunicorn {args.gunicorn_workers} sync workers, "
                f"wrk {args.connections} connections × {args.duration} s each on 127.0.0.1)",
                load_rows,
            )
        )
    out.append(table("Set-up (not part of the figures above)", setup))
    return "\n\n".join(out)


# --- Stage: prepare the workspace ---------------------------------------------------------------


def stage_prepare(args: argparse.Namespace) -> None:
    """Bill the seeded history, give one contact portal access, and sign both people in."""
    setup_django()
    from django.test import Client as HttpClient
    from django.urls import reverse

    from billing import services as billing
    from billing.models import Invoice
    from clients import services as clients
    from clients.models import Client, Contact
    from demo.bench import analyze_tables
    from retainers.models import User, Workspace

    workspace = Workspace.objects.filter(slug=SLUG).first()
    if workspace is None:
        raise BenchError(f"no workspace {SLUG}: was seed_demo run with --workspaces 1?")
    if not args.no_invoices and not Invoice.objects.filter(workspace=workspace).exists():
        billing.bill_workspace(workspace_id=workspace.pk)  # every period of the history, as of today
        analyze_tables()  # 9,000 new invoices: plan with their statistics, as autovacuum would
    # The contact of the client with the most history: the heaviest portal there is.
    contact = (
        Contact.objects.filter(workspace=workspace, client__status=Client.Status.ACTIVE)
        .order_by("client__retainers__starts_on", "pk")
        .first()
    )
    if contact is None:
        raise BenchError(f"no contact of an active client in {SLUG}: was seed_demo run with --workspaces 1?")
    contact = clients.set_portal_access(contact=contact, enabled=True)
    assert contact.user is not None  # portal access gives the contact a login
    sessions = {}
    for key, user in (("owner", User.objects.get(email=OWNER)), ("contact", contact.user)):
        http = HttpClient()
        http.force_login(user)
        sessions[key] = http.cookies["sessionid"].value
    write_result(
        args.result,
        {
            "invoices": Invoice.objects.filter(workspace=workspace).count(),
            "clients": Client.objects.filter(workspace=workspace).count(),
            "client_id": contact.client_id,
            "contact_email": contact.email,
            "owner_session": sessions["owner"],
            "contact_session": sessions["contact"],
            "portal_overview": reverse(PORTAL_FIRST, kwargs={"workspace_slug": SLUG}),
        },
    )


# --- Stage: time the pages in-process ------------------------------------------------------------


def portal_pages() -> list[str]:
    """Every portal URL name that takes only the workspace: the overview first, then the others."""
    from django.urls import URLPattern, URLResolver, get_resolver

    names = []
    for pattern in get_resolver().url_patterns:
        if not isinstance(pattern, URLResolver) or pattern.namespace != "portal":
            continue
        for inner in pattern.url_patterns:
            converters = getattr(inner.pattern, "converters", {})
            if isinstance(inner, URLPattern) and inner.name and set(converters) == {"workspace_slug"}:
                names.append(f"portal:{inner.name}")
    names.sort(key=lambda name: (name != PORTAL_FIRST, name))
    return names or [PORTAL_FIRST]


def time_page(http, name: str, path: str, *, requests: int, warmup: int, before_each=None) -> dict:
    """Median and p95 of `requests` GETs after `warmup`; `before_each` runs untimed before each one."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    before_each = before_each or (lambda: None)
    page = {"name": name, "path": path, "status": 0, "note": ""}
    response = http.get(path)
    page["status"] = response.status_code
    if response.status_code != 200:
        where = response.headers.get("Location", "")
        page["note"] = f"answers {response.status_code}" + (f" → {where}" if where else "") + "; not timed"
        return page
    for _ in range(warmup):
        before_each()
        http.get(path)
    times = []
    for _ in range(requests):
        before_each()
        started = time.perf_counter()
        response = http.get(path)
        times.append(time.perf_counter() - started)
        if response.status_code != 200:
            page["status"], page["note"] = response.status_code, f"answered {response.status_code} while timed"
            return page
    before_each()
    with CaptureQueriesContext(connection) as queries:  # separately: capturing slows each query down
        http.get(path)
    times.sort()
    page.update(
        median=statistics.median(times),
        p95=times[max(math.ceil(0.95 * len(times)) - 1, 0)],
        queries=len(queries),
        size=len(response.content),
    )
    return page


def stage_measure(args: argparse.Namespace) -> None:
    import logging

    setup_django()
    # POST-only portal views answer GET with 405 and a warning: expected here, not news.
    logging.getLogger("django.request").setLevel(logging.ERROR)
    from django.conf import settings
    from django.db.models import F
    from django.test import Client as HttpClient
    from django.urls import NoReverseMatch, reverse

    from clients.models import Contact
    from retainers.models import User, Workspace

    contact = Contact.objects.filter(workspace__slug=SLUG, portal_access=True).select_related("user").first()
    assert contact is not None and contact.user is not None  # the prepare stage gave one a login

    def workspace_changed() -> None:
        # A write that changes nothing, but is a write: its trigger moves the workspace's data version.
        Workspace.objects.filter(pk=contact.workspace_id).update(name=F("name"))

    owner_http, contact_http = HttpClient(), HttpClient()
    owner_http.force_login(User.objects.get(email=OWNER))
    contact_http.force_login(contact.user)
    load = load_average()
    pages = []
    wanted = [(name, {"workspace_slug": SLUG, **{k: contact.client_id for k in extra}}, owner_http)
              for name, extra in CONSULTANT_PAGES]  # fmt: skip
    wanted += [(name, {"workspace_slug": SLUG}, contact_http) for name in portal_pages()]
    for name, kwargs, http in wanted:
        try:
            path = reverse(name, kwargs=kwargs)
        except NoReverseMatch:
            pages.append({"name": name, "path": "", "status": 0, "note": "no such URL name yet"})
            continue
        say(f"  {name} {path}")
        pages.append(time_page(http, name, path, requests=args.requests, warmup=args.warmup))
        if name in CACHED_PAGES:
            # The same page when something changed in the workspace since it was last shown: its
            # cached parts (retainers.pagecache) are all built again.
            say(f"  {name} {path}, after a change")
            pages.append(time_page(http, f"{name} (after a change)", path, requests=args.requests,
                                   warmup=args.warmup, before_each=workspace_changed))  # fmt: skip
    write_result(args.result, {"pages": pages, "load": load, "debug": settings.DEBUG})


if __name__ == "__main__":
    os.chdir(ROOT)
    run_main(main)
