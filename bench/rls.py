"""What the second wall costs (issue 16): pages and a billing run with the row-level policies forced
and with them off, in the same run.

    .venv/bin/python bench/rls.py
    .venv/bin/python bench/rls.py --workspaces 2 --clients 200 --months 3 --requests 20 --rounds 3

Creates a scratch database (retainers_bench_rls), migrates it and seeds it with `seed_demo
--workspaces W --clients C --months M`, then, in one process with production settings:

1. pages: the dashboard, the clients list, a client's page and the invoices page of "Bench 0001"
   as its owner (Django's test Client in-process, so the request runs the middleware and the
   decorators that set the workspace), `--requests` warm requests each, alternating the policies
   on (`ENABLE` + `FORCE ROW LEVEL SECURITY`, as migrated) and off (`DISABLE`) for `--rounds`
   rounds so both see the same machine load; median and p95 of each;
2. the billing run (`services.run_billing(inline=True)`, as `manage.py run_billing` runs it) as of
   a month from today, once in a copy of the database with the policies on and once in a copy with
   them off (each copy bills the same periods).

It prints each figure, the ratio on/off and the load average. The databases are dropped at the
end unless --keep. See the README, section Benchmarks, and docs/tenancy.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

import argparse  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import timedelta  # noqa: E402

from bench.common import (  # noqa: E402
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
DB = "retainers_bench_rls"
SLUG = "bench-0001"
OWNER = "bench0001@example.com"
PAGES = ["dashboard", "clients:client_list", "dashboard:client_detail", "billing:invoice_list"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspaces", type=int, default=2, help="bench workspaces seeded (2)")
    parser.add_argument("--clients", type=int, default=200, help="clients per workspace (200)")
    parser.add_argument("--months", type=int, default=3, help="months of history (3)")
    parser.add_argument("--requests", type=int, default=20, help="warm requests per page, mode and round (20)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of on/off (3)")
    parser.add_argument("--redis-url", default=default_redis_url())
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases")
    parser.add_argument("--stage", choices=["pages", "billing"], help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["on", "off"], help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --- In the stage process ------------------------------------------------------------------------


def set_policies(on: bool) -> None:
    """Force the policies on every table that has them (as migrated), or switch them off."""
    from django.db import connection

    from retainers import tenancy

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT tablename FROM pg_policies WHERE schemaname = current_schema() AND policyname = %s",
            [tenancy.POLICY_NAME],
        )
        tables = [name for (name,) in cursor.fetchall()]
        for name in tables:
            if on:
                cursor.execute(f'ALTER TABLE "{name}" ENABLE ROW LEVEL SECURITY')
                cursor.execute(f'ALTER TABLE "{name}" FORCE ROW LEVEL SECURITY')
            else:
                cursor.execute(f'ALTER TABLE "{name}" DISABLE ROW LEVEL SECURITY')
    assert tables, "no table has the workspace policy: is the database migrated?"


def _ms(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[max(0, round(0.95 * len(ordered)) - 1)] * 1000


def stage_pages(args: argparse.Namespace) -> None:
    setup_django()
    from django.test import Client as Browser
    from django.urls import reverse

    from clients.models import Client
    from retainers import tenancy
    from retainers.models import User, Workspace

    with tenancy.cross_tenant("bench/rls.py: the pages to time"):
        workspace = Workspace.objects.get(slug=SLUG)
        owner = User.objects.get(email=OWNER)
        client_id = Client.objects.for_workspace(workspace).order_by("pk").values_list("pk", flat=True).first()
    browser = Browser()
    browser.force_login(owner, backend="django.contrib.auth.backends.ModelBackend")
    urls = {}
    for name in PAGES:
        kwargs: dict[str, object] = {"workspace_slug": SLUG}
        if name == "dashboard:client_detail":
            kwargs["client_id"] = client_id
        urls[name] = reverse(name, kwargs=kwargs)
    samples: dict[str, dict[str, list[float]]] = {mode: {name: [] for name in PAGES} for mode in ("on", "off")}
    try:
        for _ in range(args.rounds):
            for mode in ("on", "off"):
                set_policies(mode == "on")
                for name, url in urls.items():
                    for _ in range(2):  # warm: templates, the page cache
                        assert browser.get(url).status_code == 200, url
                    for _ in range(args.requests):
                        started = time.perf_counter()
                        response = browser.get(url)
                        samples[mode][name].append(time.perf_counter() - started)
                        assert response.status_code == 200, url
    finally:
        set_policies(True)
    write_result(
        args.result, {mode: {name: _ms(values) for name, values in pages.items()} for mode, pages in samples.items()}
    )


def stage_billing(args: argparse.Namespace) -> None:
    setup_django()
    from django.utils import timezone

    from billing import services

    set_policies(args.mode == "on")
    as_of = timezone.localdate() + timedelta(days=32)
    started = time.perf_counter()
    summary = services.run_billing(as_of=as_of, inline=True)
    elapsed = time.perf_counter() - started
    write_result(args.result, {"seconds": elapsed, "invoices": summary.invoices, "workspaces": summary.workspaces})


# --- The driver ----------------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    if args.stage == "pages":
        return stage_pages(args)
    if args.stage == "billing":
        return stage_billing(args)
    server = find_server()
    redis = ScratchRedis(args.redis_url)
    scratch = Path(tempfile.mkdtemp(prefix="bench-rls-"))
    copies = {mode: f"{DB}_{mode}" for mode in ("on", "off")}
    try:
        server.create(DB, replace=True)
        env = django_env(database_url=server.url_for(DB), redis_url=args.redis_url, scratch=scratch)
        say(
            f"Seeding {args.workspaces} workspaces × {args.clients} clients, {args.months} months… (load {load_average()})"
        )
        run([sys.executable, "manage.py", "migrate", "-v", "0"], env=env, label="migrate")
        seed = ["seed_demo", "--workspaces", str(args.workspaces), "--clients", str(args.clients)]
        run([sys.executable, "manage.py", *seed, "--months", str(args.months)], env=env, label="seed_demo", echo=True)
        run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], env=env, label="collectstatic")
        for name in copies.values():
            server.create(name, template=DB, replace=True)

        forwarded = ["--requests", str(args.requests), "--rounds", str(args.rounds)]
        pages = run_stage(SCRIPT, "pages", forwarded, env=env, label="pages")
        rows = [["page", "on: median", "p95", "off: median", "p95", "on / off"]]
        for name in PAGES:
            (on_median, on_p95), (off_median, off_p95) = pages["on"][name], pages["off"][name]
            rows.append([
                name, f"{on_median:.1f} ms", f"{on_p95:.1f} ms", f"{off_median:.1f} ms", f"{off_p95:.1f} ms",
                f"{on_median / off_median:.2f}",
            ])  # fmt: skip
        say(table(f"Pages, {args.rounds} rounds × {args.requests} requests per mode (load {load_average()})", rows))

        billed = {}
        for mode, name in copies.items():
            copy_env = django_env(database_url=server.url_for(name), redis_url=args.redis_url, scratch=scratch)
            billed[mode] = run_stage(SCRIPT, "billing", ["--mode", mode], env=copy_env, label=f"billing run ({mode})")
        say(
            table(
                f"Billing run as of a month from today (load {load_average()})",
                [
                    ["policies", "invoices", "time"],
                    *[[mode, billed[mode]["invoices"], f"{billed[mode]['seconds']:.1f} s"] for mode in ("on", "off")],
                    ["on / off", "", f"{billed['on']['seconds'] / billed['off']['seconds']:.2f}"],
                ],
            )
        )
    finally:
        redis.flush()
        shutil.rmtree(scratch, ignore_errors=True)
        if not args.keep:
            for name in (DB, *copies.values()):
                server.drop(name)


if __name__ == "__main__":
    run_main(main)
