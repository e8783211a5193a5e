"""Benchmark of search (issue 17, item 6): the top bar's search at 1,000 clients and 100k notes and messages.

    .venv/bin/python bench/search.py
    .venv/bin/python bench/search.py --clients 1000 --texts 100000 --runs 30

Creates a scratch database (retainers_bench_search), migrates it, and bulk-writes one workspace
with `--clients` clients (each with a contact, a retainer and 12 invoices) and `--texts` notes and
messages (half each) of 10 to 60 words drawn from a 5,000-word vocabulary with a Zipf-like
spread, so some words are in a third of all texts and most in a handful; a second workspace gets
a tenth as much, so every query also has rows to leave out. Then times
`dashboard.search.search_workspace` (what the search page runs: every kind's query and the
results' links) for a mix of queries — a client's name, a contact's surname, an invoice number,
a rare word, a common word, two words, a one-letter prefix — `--runs` times each, and prints the
median, the 95th percentile, the queries and the plan each kind used. The goal is a median
under 50 ms. The database is dropped at the end unless --keep.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder is first on sys.path: the project's root takes its place.
ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

import argparse  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

from bench.common import (  # noqa: E402
    default_redis_url,
    load_average,
    measure_in_scratch_database,
    run_main,
    setup_django,
    table,
    write_result,
)

SCRIPT = Path(__file__).resolve()
GOAL_MS = 50
SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "do", "fe", "gu", "hi", "ja", "be"]
COMMON = ["meeting", "call", "plan", "review", "budget", "invoice", "hours", "report", "team", "roadmap"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/search.py", description="Time the workspace search at 1,000 clients and 100k notes and messages."
    )
    parser.add_argument("--clients", type=int, default=1000, metavar="C", help="clients in the workspace (1000)")
    parser.add_argument("--texts", type=int, default=100_000, metavar="T", help="notes + messages (100000)")
    parser.add_argument("--runs", type=int, default=30, metavar="R", help="timed searches per query (30)")
    parser.add_argument("--db", default="retainers_bench_search", help="scratch database (retainers_bench…)")
    parser.add_argument("--redis-url", default=default_redis_url(), help="an empty Redis database")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database at the end")
    parser.add_argument("--replace", action="store_true", help="drop the scratch database first if it exists")
    parser.add_argument("--stage", choices=["measure"], help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("clients", "texts", "runs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} is too small")
    if args.clients > 9999:
        parser.error("--clients: at most 9999")
    return args


def main() -> None:
    args = parse_args()
    if args.stage:
        measure(args)
        return
    forwarded = ["--clients", str(args.clients), "--texts", str(args.texts), "--runs", str(args.runs)]
    measure_in_scratch_database(args, SCRIPT, forwarded, report)


def report(result: dict) -> str:
    rows: list[tuple[object, ...]] = [
        (
            "data",
            f"{result['clients']} clients, {result['invoices']} invoices, {result['notes']} notes, "
            f"{result['messages']} messages (load before: {result['load']})",
        )
    ]
    for query in result["queries"]:
        rows.append(
            (
                f"“{query['q']}” ({query['found']} found)",
                f"median {query['p50_ms']:.1f} ms, p95 {query['p95_ms']:.1f} ms, {query['queries']} queries",
            )
        )
    rows.append(("all queries", f"median {result['p50_ms']:.1f} ms, p95 {result['p95_ms']:.1f} ms"))
    rows.append(("plans", "; ".join(f"{kind}: {plan}" for kind, plan in result["plans"].items())))
    rows.append((f"goal: median under {GOAL_MS} ms", "met" if result["p50_ms"] < GOAL_MS else "MISSED"))
    return table("Search in one workspace", rows)


def vocabulary(rng: random.Random, size: int) -> list[str]:
    """Made-up words by rank, COMMON among the frequent ones (ranks 8-17: each in about a third of
    the texts), the rest rarer and rarer."""
    made: set[str] = set()
    while len(made) < size:
        made.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    ranked = sorted(made, key=lambda _: rng.random())
    return ranked[:8] + COMMON + ranked[8:]


def measure(args: argparse.Namespace) -> None:
    setup_django()
    import re
    from collections.abc import Iterator
    from datetime import date, timedelta
    from decimal import Decimal
    from itertools import accumulate

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from billing.models import Invoice
    from clients.models import Client, Contact, Retainer
    from communication.models import Message, Note
    from dashboard.search import search_workspace
    from retainers.models import Workspace

    rng = random.Random(17)
    words = vocabulary(rng, 5000)
    weights = list(accumulate(1 / (rank + 1) ** 1.05 for rank in range(len(words))))  # Zipf-like: few words common

    def text() -> str:
        return " ".join(rng.choices(words, cum_weights=weights, k=rng.randint(10, 60))).capitalize() + "."

    now = timezone.now()

    def fill(workspace: Workspace, clients: int, texts: int) -> None:
        made = Client.objects.bulk_create(
            Client(workspace=workspace, name=f"{rng.choice(words).title()} {rng.choice(words).title()} {n:04d}")
            for n in range(clients)
        )
        Contact.objects.bulk_create(
            Contact(
                workspace=workspace,
                client=client,
                name=f"{rng.choice(words).title()} {rng.choice(words).title()}",
                email=f"person{n}@{client.name.split()[0].lower()}.example",
                role=rng.choice(["Finance director", "Founder", "Head of operations", ""]),
            )
            for n, client in enumerate(made)
        )
        Retainer.objects.bulk_create(
            Retainer(
                workspace=workspace,
                client=client,
                name=f"{rng.choice(['Advisory', 'Coaching', 'Support', 'Growth'])} retainer",
                starts_on=date(2025, 1, 1),
                anchor_on=date(2025, 1, 1),
                term_ends_on=date(2026, 1, 1),
                units_per_period=Decimal("10"),
                currency=workspace.currency,
            )
            for client in made
        )
        serial = iter(range(1, 100_000))
        Invoice.objects.bulk_create(
            Invoice(
                workspace=workspace,
                client=client,
                number=f"{2025 + month // 12}-{next(serial):04d}",
                status=Invoice.Status.PAID,
                currency=workspace.currency,
                issued_on=date(2025, 1, 1) + timedelta(days=30 * month),
                due_on=date(2025, 1, 15) + timedelta(days=30 * month),
            )
            for month in range(12)
            for client in made
        )

        def texts_of(count: int) -> Iterator[list[dict[str, object]]]:
            for start in range(0, count, 5000):
                yield [
                    {
                        "workspace": workspace,
                        "client": rng.choice(made),
                        "body": text(),
                        "created_at": now - timedelta(minutes=rng.randrange(525_600)),
                    }
                    for _ in range(min(5000, count - start))
                ]

        for chunk in texts_of(texts // 2):
            Note.objects.bulk_create(Note(**row) for row in chunk)
        for chunk in texts_of(texts - texts // 2):
            Message.objects.bulk_create(Message(**row) for row in chunk)

    workspace = Workspace.objects.create(name="Bench", slug="bench-search", timezone="Europe/London", currency="GBP")
    other = Workspace.objects.create(name="Other", slug="bench-other", timezone="Europe/London", currency="GBP")
    fill(workspace, args.clients, args.texts)
    fill(other, max(args.clients // 10, 1), max(args.texts // 10, 1))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")

    client = Client.objects.for_workspace(workspace).order_by("pk")[args.clients // 2]
    contact = Contact.objects.for_workspace(workspace).order_by("pk")[args.clients // 3]
    invoice = Invoice.objects.for_workspace(workspace).order_by("pk")[args.clients * 5]
    rare = next(word for word in reversed(words) if Note.objects.filter(body__contains=f" {word} ").exists())
    queries = [
        client.name.split()[0] + " " + client.name.split()[1][:3],  # a client's name as typed
        contact.name.split()[1],  # a contact's surname
        invoice.number,  # an invoice by number
        invoice.number.split("-")[1].lstrip("0"),  # by its serial alone
        rare,  # a word in a few texts
        COMMON[0],  # a word in a third of them
        f"{COMMON[1]} {COMMON[2]}",  # two words
        "k",  # a one-letter prefix: the worst case
    ]

    def plans() -> dict[str, str]:
        """The access path of each kind's main query, as EXPLAIN tells it."""
        found: dict[str, str] = {}
        with CaptureQueriesContext(connection) as captured:
            search_workspace(workspace, f"{COMMON[3]} 2025-01")
        for query in captured.captured_queries:
            sql = query["sql"]
            match = re.search(r'FROM "(\w+)"', sql)
            if not match or "search" not in sql.lower() and "LIKE" not in sql:
                continue
            with connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN {sql}")
                plan = "\n".join(row[0] for row in cursor.fetchall())
            indexes = sorted(set(re.findall(r"Index Scan using (\w+)|Bitmap Index Scan on (\w+)", plan)))
            names = sorted({name for pair in indexes for name in pair if name})
            found[match.group(1)] = ", ".join(names) or ("Seq Scan" if "Seq Scan" in plan else "other")
        return found

    results, everything = [], []
    for q in queries:
        search_workspace(workspace, q)  # warm up
        timings, count, found = [], 0, 0
        for _ in range(args.runs):
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                groups = search_workspace(workspace, q)
                timings.append((time.perf_counter() - started) * 1000)
            count, found = len(captured), sum(group.total for group in groups)
        timings.sort()
        everything.extend(timings)
        results.append(
            {
                "q": q,
                "found": found,
                "queries": count,
                "p50_ms": statistics.median(timings),
                "p95_ms": timings[max(int(len(timings) * 0.95) - 1, 0)],
            }
        )
    everything.sort()
    write_result(
        args.result,
        {
            "clients": args.clients,
            "invoices": Invoice.objects.for_workspace(workspace).count(),
            "notes": Note.objects.for_workspace(workspace).count(),
            "messages": Message.objects.for_workspace(workspace).count(),
            "queries": results,
            "p50_ms": statistics.median(everything),
            "p95_ms": everything[max(int(len(everything) * 0.95) - 1, 0)],
            "plans": plans(),
            "load": load_average(),
        },
    )


if __name__ == "__main__":
    run_main(main)
