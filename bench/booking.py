"""Benchmark of booking slots (issue 13): a month of free start times for one session type.

    .venv/bin/python bench/booking.py
    .venv/bin/python bench/booking.py --bookings 200 --events 500 --runs 50

Creates a scratch database (retainers_bench_booking), migrates it, and gives one member a busy
month: availability 07:00-21:00 every day in Europe/London, 30-minute sessions every 15 minutes
with 10-minute buffers, `--bookings` active bookings and `--events` busy blocks read from a
calendar, all in the month measured. Then times `delivery.booking.available_starts` over that
month (the database reads and the arithmetic, as a booking page pays them), `--runs` times, and
prints the median, the 95th percentile and the queries. The goal is under 50 ms. The database is
dropped at the end unless --keep.
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/booking.py",
        description="Time a month of booking slots for one session type with many bookings and calendar events.",
    )
    parser.add_argument("--bookings", type=int, default=200, metavar="B", help="active bookings in the month (200)")
    parser.add_argument("--events", type=int, default=500, metavar="E", help="calendar busy blocks in the month (500)")
    parser.add_argument("--runs", type=int, default=50, metavar="R", help="timed computations (50)")
    parser.add_argument("--db", default="retainers_bench_booking", help="scratch database (retainers_bench…)")
    parser.add_argument("--redis-url", default=default_redis_url(), help="an empty Redis database")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database at the end")
    parser.add_argument("--replace", action="store_true", help="drop the scratch database first if it exists")
    parser.add_argument("--stage", choices=["measure"], help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("bookings", "events", "runs"):
        if getattr(args, name) < (1 if name == "runs" else 0):
            parser.error(f"--{name} is too small")
    if args.bookings > 1000:
        parser.error("--bookings: at most 1000 fit in the month's free half-hours")
    return args


def main() -> None:
    args = parse_args()
    if args.stage:
        measure(args)
        return
    forwarded = ["--bookings", str(args.bookings), "--events", str(args.events), "--runs", str(args.runs)]
    measure_in_scratch_database(args, SCRIPT, forwarded, report)


def report(result: dict) -> str:
    verdict = "met" if result["p50_ms"] < GOAL_MS else "MISSED"
    return table(
        f"A month of slots for one session type (load before: {result['load']})",
        [
            ("active bookings / calendar busy blocks in the month", f"{result['bookings']} / {result['events']}"),
            ("days computed / free starts found", f"{result['days']} / {result['slots']}"),
            ("queries per computation", result["queries"]),
            ("median", f"{result['p50_ms']:.1f} ms"),
            ("95th percentile", f"{result['p95_ms']:.1f} ms"),
            ("fastest", f"{result['min_ms']:.1f} ms"),
            (f"goal: median under {GOAL_MS} ms", verdict),
        ],
    )


def measure(args: argparse.Namespace) -> None:
    setup_django()
    from datetime import datetime, timedelta
    from datetime import time as wall
    from decimal import Decimal
    from zoneinfo import ZoneInfo

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from clients.models import Client
    from delivery import booking, booking_setup, services
    from delivery.models import Booking, BusyBlock, CalendarConnection
    from retainers.models import Membership, User, Workspace

    rng = random.Random(13)
    zone = ZoneInfo("Europe/London")
    workspace = Workspace.objects.create(name="Bench", slug="bench-booking", timezone="Europe/London")
    member = User.objects.create_user(email="member@bench.example", name="Bench Member")
    Membership.objects.create(workspace=workspace, user=member, role=Membership.Role.OWNER)
    booking_setup.save_schedule(
        workspace=workspace,
        member=member,
        settings={
            "timezone": "",
            "buffer_before_minutes": 10,
            "buffer_after_minutes": 10,
            "min_notice_minutes": 0,
            "horizon_days": 60,
            "daily_cap": 40,
            "step_minutes": 15,
        },
        weekly={day: [(wall(7), wall(12)), (wall(12, 30), wall(21))] for day in range(7)},
    )
    session_type = booking_setup.save_session_type(
        workspace=workspace, session_type=None, member=member, name="Call", duration_minutes=30, hours=Decimal("0.5"),
        sessions=1, location="", reminder_minutes=[], all_retainers=True, retainers=[],
    )  # fmt: skip
    client = Client.objects.create(workspace=workspace, name="Bench client")
    retainer = services.create_retainer(
        client=client, name="Bench", starts_on=workspace.today(), terms={"units_per_period": Decimal("1000")}
    )

    first = workspace.today() + timedelta(days=1)
    last = first + timedelta(days=29)
    # Bookings on distinct half-hours (with their buffers, they must not overlap: the constraint says so).
    grid = [
        datetime.combine(first + timedelta(days=d), wall(7), tzinfo=zone) + timedelta(minutes=50 * k)
        for d in range(30)
        for k in range(16)
    ]
    starts = rng.sample(grid, args.bookings)
    Booking.objects.bulk_create(
        Booking(
            workspace=workspace, session_type=session_type, retainer=retainer, client=client, member=member,
            starts_at=start, ends_at=start + timedelta(minutes=30), blocked_from=start - timedelta(minutes=10),
            blocked_until=start + timedelta(minutes=40), units=Decimal("0.5"), unit="hours", uid=f"bench-{n}@bench",
        )
        for n, start in enumerate(starts)
    )  # fmt: skip
    calendar = CalendarConnection.objects.create(
        workspace=workspace, member=member, url="https://cal.example.com/", username="m", password_sealed="-"
    )
    BusyBlock.objects.bulk_create(
        BusyBlock(workspace=workspace, connection=calendar, member=member, starts_at=start, ends_at=start + length)
        for start, length in (
            (
                datetime.combine(first + timedelta(days=rng.randrange(30)), wall(6), tzinfo=zone)
                + timedelta(minutes=5 * rng.randrange(12 * 16)),
                timedelta(minutes=rng.choice([15, 30, 45, 60, 90])),
            )
            for _ in range(args.events)
        )
    )

    now = timezone.now()
    booking.available_starts(session_type=session_type, first=first, last=last, now=now)  # warm up
    timings, slots, queries = [], [], 0
    for _ in range(args.runs):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            found = booking.available_starts(session_type=session_type, first=first, last=last, now=now)
            timings.append((time.perf_counter() - started) * 1000)
        slots, queries = found, len(captured)
    timings.sort()
    write_result(
        args.result,
        {
            "bookings": args.bookings,
            "events": args.events,
            "days": (last - first).days + 1,
            "slots": len(slots),
            "queries": queries,
            "p50_ms": statistics.median(timings),
            "p95_ms": timings[max(int(len(timings) * 0.95) - 1, 0)],
            "min_ms": timings[0],
            "load": load_average(),
        },
    )


if __name__ == "__main__":
    run_main(main)
