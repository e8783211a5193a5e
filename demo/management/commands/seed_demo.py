"""Deterministic demo data with logins printed, and bench workspaces for load tests. Safe to run again.

    manage.py seed_demo                                  the demo workspace (once), then its logins
    manage.py seed_demo --workspaces 1000 --clients 100  plus bench workspaces, written in bulk

--months K sets the history (default 6) of whatever is seeded by this run; --seed S the
random draws (default 42); --jobs J how many processes write bench workspaces.

See demo/northwind.py (the demo, through the services) and demo/bench.py (bulk writing).
"""

from __future__ import annotations

import os
import time

from django.core.management.base import CommandError, CommandParser

from demo import bench, northwind
from retainers.tenancy import TenantCommand

LIMITS = {
    "workspaces": (1, 100_000),
    "clients": (1, 10_000),
    "months": (1, 120),
    "seed": (0, 2**31 - 1),
    "jobs": (1, 32),
}
DEFAULTS = {"clients": 100, "months": 6, "seed": 42, "jobs": min(4, os.cpu_count() or 1)}


def whole_number(options: dict[str, object], name: str) -> int | None:
    """The option as an int within its limits; a bad value is one clear CommandError line."""
    value = options.get(name)
    if value is None:
        return None
    low, high = LIMITS[name]
    text = str(value).strip()
    if not text.isdigit() or not low <= int(text) <= high:
        raise CommandError(f"--{name} must be a whole number from {low:,} to {high:,}, not {value!r}.")
    return int(text)


class Command(TenantCommand):
    cross_tenant_reason = "seed_demo: demo data for several workspaces"
    help = (
        "Seed the demo workspace (once) and print its logins. "
        "With --workspaces N, also seed N bench workspaces for load tests (also once)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        # Taken as text and checked in handle(), so a bad value is one line, not argparse's usage dump.
        parser.add_argument("--workspaces", metavar="N", help="Also seed N bench workspaces (Bench 0001…).")
        parser.add_argument("--clients", metavar="M", help="Clients per bench workspace, one retainer each (100).")
        parser.add_argument("--months", metavar="K", help="Months of history before today (6).")
        parser.add_argument("--seed", metavar="S", help="Seed of the random draws (42).")
        parser.add_argument(
            "--jobs", metavar="J", help=f"Processes seeding bench workspaces side by side ({DEFAULTS['jobs']})."
        )

    def handle(self, *args: object, **options: object) -> None:
        workspaces = whole_number(options, "workspaces")
        clients, months, seed, jobs = (whole_number(options, name) for name in ("clients", "months", "seed", "jobs"))
        if (clients is not None or jobs is not None) and workspaces is None:
            raise CommandError("--clients and --jobs apply to bench workspaces: give --workspaces too.")
        clients = clients or DEFAULTS["clients"]
        months = months or DEFAULTS["months"]
        seed = DEFAULTS["seed"] if seed is None else seed
        jobs = jobs or DEFAULTS["jobs"]

        if northwind.is_seeded():
            self.stdout.write("Demo data already there.")
        else:
            started = time.monotonic()
            northwind.seed_northwind(months=months, seed=seed)
            self.stdout.write(self.style.SUCCESS(f"Demo data created in {time.monotonic() - started:.1f} s."))

        if workspaces is not None:
            started = time.monotonic()
            run = bench.Options(workspaces=workspaces, clients=clients, months=months, seed=seed)
            totals = bench.seed_bench(run, password=northwind.PASSWORD, jobs=jobs, say=self.stdout.write)
            if totals.workspaces:
                self.stdout.write(
                    self.style.SUCCESS(f"Bench seeded: {bench.describe(totals)} in {time.monotonic() - started:.1f} s.")
                )

        self.stdout.write(
            "Demo logins:\n"
            f"  consultant (owner):  {northwind.OWNER} / {northwind.PASSWORD}   -> /\n"
            f"  consultant (member): {northwind.TEAMMATE} / {northwind.PASSWORD}\n"
            f"  client portal:       {northwind.CONTACT} -> /portal/ (the sign-in code is printed by the worker)"
        )
        if workspaces is not None:
            first, last = bench.number_of(1), bench.number_of(workspaces)
            self.stdout.write(
                f"  bench owners:        bench{first}@example.com … bench{last}@example.com / {northwind.PASSWORD}"
            )
