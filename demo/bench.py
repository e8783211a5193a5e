"""Bench workspaces: many tenants with months of history, written in bulk with COPY.

Each bench workspace is "Bench 0001", "Bench 0002"… with one owner (bench0001@example.com)
and `clients` clients, each with a contact and one retainer on one of the catalog's plans.
A retainer's history is played by `demo.story.play` into `demo.mirror.MemoryBooks`, the
in-memory mirror of the delivery services, and the rows are written with PostgreSQL COPY:
one transaction per workspace, so memory stays bounded and an interrupted run leaves only
whole workspaces behind. Workspace n draws from its own `random.Random(f"{seed}:{n}")`, so
it comes out the same whether it is seeded alone, in a big run, or after an interruption;
a workspace whose slug exists is skipped, which makes a re-run add nothing.

Primary keys are taken from the tables' own sequences in blocks before the rows are
written (children must know their parents' ids); a block's unused ids are simply gaps.
"""

from __future__ import annotations

import multiprocessing
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from allauth.account.models import EmailAddress
from django.contrib.auth.hashers import make_password
from django.db import connection, connections, models, transaction
from django.utils.text import slugify

from clients.models import Amendment, Client, Contact, Plan, Retainer, RetainerTerms
from delivery.models import Deliverable, LedgerEntry, Period, WorkItem
from delivery.periods import Cadence, add_months
from demo import catalog
from demo.mirror import COLUMNS, MemoryBooks, term_values
from demo.story import Story, play
from retainers import tenancy
from retainers.models import Membership, User, Workspace

ID_BLOCK = 5000

OWN_COLUMNS: dict[type[models.Model], list[str]] = {
    User: ["id", "password", "email", "name", "is_active", "is_staff", "is_superuser", "date_joined"],
    EmailAddress: ["id", "user_id", "email", "verified", "primary"],
    Workspace: ["id", "name", "slug", "timezone", "currency", "created_at"],
    Membership: ["id", "workspace_id", "user_id", "role", "created_at"],
    Plan: ["id", "workspace_id", "name", "description", "archived", "created_at", *RetainerTerms.TERM_FIELDS],
    Client: ["id", "workspace_id", "name", "status", "billing_email", "address", "tax_id", "created_at"],
    Contact: ["id", "workspace_id", "client_id", "name", "email", "role", "portal_access", "created_at"],
    **COLUMNS,
}
# Parents before children; the foreign keys are deferred to commit anyway.
WRITE_ORDER = [User, EmailAddress, Workspace, Membership, Plan, Client, Contact, Retainer, Amendment, Period,
               Deliverable, WorkItem, LedgerEntry]  # fmt: skip


class Table:
    """How one model is written with COPY: our columns, then any other column at its default.

    Columns we do not know of (a field added since) get the model field's default, so a
    new nullable or defaulted field does not break the seeding.
    """

    def __init__(self, model: type[models.Model], attnames: list[str]) -> None:
        fields = {f.attname: f for f in model._meta.concrete_fields}
        others = [f for f in model._meta.concrete_fields if f.attname not in attnames and not f.primary_key]
        columns = [fields[name].column for name in attnames] + [f.column for f in others]
        quote = connection.ops.quote_name
        table, names = quote(model._meta.db_table), ", ".join(quote(c) for c in columns)  # type: ignore[arg-type]  # django-stubs: a concrete field's column is never None
        # PostgreSQL refuses COPY into a table under row-level security (docs/tenancy.md): tenant
        # tables are copied into a temporary table of the same columns (no policy, no index), then
        # moved with one INSERT … SELECT, which the policy checks like any insert.
        self.held = any(f.attname == "workspace_id" for f in model._meta.concrete_fields)
        staging = quote(f"bench_copy_{model._meta.db_table}")
        self.prepare_sql = f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} AS SELECT {names} FROM {table} WITH NO DATA"
        self.sql = f"COPY {staging if self.held else table} ({names}) FROM STDIN"
        self.move_sql = f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging}; TRUNCATE {staging}"
        self.tail = tuple(f.get_db_prep_save(f.get_default(), connection) for f in others)
        self.sequence_sql = "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)"
        self.sequence_args = (model._meta.db_table, model._meta.pk.column)

    def copy(self, cursor, rows: list[tuple]) -> None:
        if not rows:
            return
        tail = self.tail
        if self.held:
            cursor.execute(self.prepare_sql)
        with cursor.copy(self.sql) as copy:
            if tail:
                for row in rows:
                    copy.write_row(row + tail)
            else:
                for row in rows:
                    copy.write_row(row)
        if self.held:
            cursor.execute(self.move_sql)


class Ids:
    """Primary keys drawn from each table's sequence, a block at a time, in ascending order."""

    def __init__(self, tables: dict[type[models.Model], Table]) -> None:
        self.tables = tables
        self.free: dict[type[models.Model], list[int]] = {model: [] for model in tables}

    def take(self, model: type[models.Model]) -> int:
        free = self.free[model]
        if not free:
            table = self.tables[model]
            with connection.cursor() as cursor:
                cursor.execute(table.sequence_sql, [*table.sequence_args, ID_BLOCK])
                free.extend(sorted((row[0] for row in cursor.fetchall()), reverse=True))
        return free.pop()


class Writer:
    """Writes batches with COPY, one transaction each. Holds the id blocks between batches."""

    def __init__(self) -> None:
        self.tables = {model: Table(model, columns) for model, columns in OWN_COLUMNS.items()}
        self.ids = Ids(self.tables)

    def batch(self) -> Batch:
        return Batch(self.ids)

    def write(self, batch: Batch) -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            # Seed data needs no wait for the WAL flush: a workspace lost in a crash is all or
            # nothing, and the next run adds it again.
            cursor.execute("SET LOCAL synchronous_commit = off")
            for model in WRITE_ORDER:
                self.tables[model].copy(cursor, batch.rows.get(model, []))


@dataclass
class Batch:
    """The rows of one workspace, waiting to be written."""

    ids: Ids
    rows: dict[type[models.Model], list[tuple]] = field(default_factory=dict)

    def next_id(self, model: type[models.Model]) -> int:
        return self.ids.take(model)

    def add(self, model: type[models.Model], row: tuple) -> None:
        self.rows.setdefault(model, []).append(row)

    def extend(self, model: type[models.Model], rows: Iterable[tuple]) -> None:
        self.rows.setdefault(model, []).extend(rows)


@dataclass
class Options:
    workspaces: int
    clients: int
    months: int
    seed: int


def number_of(index: int) -> str:
    """0001, 0002 … 9999, 10000: the same for a workspace whatever the size of the run."""
    return f"{index:04d}"


def amendment_for(rng: random.Random, terms: dict[str, Any]) -> dict[str, object]:
    """A plausible change of terms: more or fewer units, or one more deliverable."""
    if terms["model"] == RetainerTerms.Model.DELIVERABLES:
        return {"deliverables": [*terms["deliverables"], "Quarterly strategy memo"]}
    step = (
        Decimal(rng.choice([1, 2]))
        if terms["unit"] == RetainerTerms.Unit.SESSIONS
        else Decimal(rng.choice([5, -5, 10]))
    )
    units = max(terms["units_per_period"] + step, Decimal("1"))
    price = terms["price_minor"] * units / terms["units_per_period"]
    return {"units_per_period": units, "price_minor": int(price.quantize(Decimal("1")))}


def client_names(rng: random.Random, count: int) -> list[str]:
    names = [f"{word} {kind}" for word in catalog.COMPANY_WORDS for kind in catalog.COMPANY_KINDS]
    if count <= len(names):
        return rng.sample(names, count)
    return [f"{rng.choice(names)} {n + 1}" for n in range(count)]


def local_time(day: date, hour: int, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, clock_time(hour), tzinfo=zone)


def build_workspace(
    batch: Batch,
    *,
    index: int,
    options: Options,
    today_in: Callable[[str], date],
    password_hash: str,
    owner_id: int | None,
) -> None:
    """Generate one bench workspace into `batch`: owner, plans, clients, contacts, retainers and their history."""
    rng = random.Random(f"{options.seed}:{index}")
    zone_name, currency = catalog.ZONES_AND_CURRENCIES[(index - 1) % len(catalog.ZONES_AND_CURRENCIES)]
    zone, today = ZoneInfo(zone_name), today_in(zone_name)
    first_of_month = today.replace(day=1)
    anchor = add_months(first_of_month, -options.months)
    opened_at = local_time(anchor - timedelta(days=14), 10, zone)
    number = number_of(index)
    slug = f"bench-{number}"

    if owner_id is None:
        owner_id = batch.next_id(User)
        email = f"bench{number}@example.com"
        batch.add(User, (owner_id, password_hash, email, f"Bench Owner {number}", True, False, False, opened_at))
        batch.add(EmailAddress, (batch.next_id(EmailAddress), owner_id, email, True, True))
    workspace_id = batch.next_id(Workspace)
    batch.add(Workspace, (workspace_id, f"Bench {number}", slug, zone_name, currency, opened_at))
    batch.add(Membership, (batch.next_id(Membership), workspace_id, owner_id, Membership.Role.OWNER, opened_at))

    plans: dict[str, tuple[int, dict[str, Any]]] = {}
    for key, template in catalog.PLANS.items():
        plan_id, terms = batch.next_id(Plan), catalog.plan_terms(key, currency)
        plans[key] = (plan_id, terms)
        batch.add(
            Plan,
            (plan_id, workspace_id, template["name"], template["description"], False, opened_at, *term_values(terms)),
        )

    keys, weights = list(catalog.PLAN_WEIGHTS), list(catalog.PLAN_WEIGHTS.values())
    history_days = (today - anchor).days
    for n, name in enumerate(client_names(rng, options.clients)):
        client_id = batch.next_id(Client)
        domain = f"{slugify(name)}-{n + 1}.example"
        batch.add(
            Client, (client_id, workspace_id, name, Client.Status.ACTIVE, f"accounts@{domain}", "", "", opened_at)
        )
        first, last = rng.choice(catalog.FIRST_NAMES), rng.choice(catalog.LAST_NAMES)
        batch.add(
            Contact,
            (batch.next_id(Contact), workspace_id, client_id, f"{first} {last}", f"{first.lower()}@{domain}",
             rng.choice(catalog.ROLES), False, opened_at),
        )  # fmt: skip

        key = rng.choices(keys, weights)[0]
        plan_id, terms = plans[key]
        # Most retainers were running when the history starts; the rest were signed since.
        offset = rng.randint(0, 27) if rng.random() < 0.75 else rng.randint(0, max(history_days, 0))
        periods = options.months // Cadence(terms["cadence"]).months + 1
        story = Story(starts_on=anchor + timedelta(days=offset), intensity=rng.uniform(0.45, 1.25))
        roll = rng.random()
        if roll < 0.06:
            story.amend_in, story.amend_changes = rng.randint(1, periods), amendment_for(rng, terms)
            story.amend_reason = rng.choice(catalog.AMENDMENT_REASONS)
        elif roll < 0.10:
            story.cancel_in = rng.randint(1, periods)
        elif roll < 0.13:
            story.pause = True
        books = MemoryBooks(
            batch=batch,
            workspace_id=workspace_id,
            client_id=client_id,
            plan_id=plan_id,
            name=f"{name}: {catalog.PLANS[key]['name']}",
            terms=terms,
            actor_id=owner_id,
            zone=zone,
        )
        play(books, story, rng, today=today)
        books.write(batch)


@dataclass
class Totals:
    workspaces: int = 0
    rows: dict[type[models.Model], int] = field(default_factory=dict)

    def add(self, counts: dict[type[models.Model], int]) -> None:
        self.workspaces += 1
        for model, count in counts.items():
            self.rows[model] = self.rows.get(model, 0) + count

    @property
    def total(self) -> int:
        return sum(self.rows.values())

    def of(self, model: type[models.Model]) -> int:
        return self.rows.get(model, 0)


class Seeder:
    """Seeds bench workspaces one by one, each in its own transaction, in this process."""

    def __init__(self, options: Options, *, password_hash: str, todays: dict[str, date]) -> None:
        self.options, self.password_hash, self.todays = options, password_hash, todays
        self.writer = Writer()

    @tenancy.scan("seed_demo: one bench workspace (a worker process has a connection of its own)")
    def seed(self, index: int) -> dict[type[models.Model], int]:
        email = f"bench{number_of(index)}@example.com"
        owner_id = User.objects.filter(email=email).values_list("id", flat=True).first()
        batch = self.writer.batch()
        build_workspace(
            batch, index=index, options=self.options, today_in=self.todays.__getitem__,
            password_hash=self.password_hash, owner_id=owner_id,
        )  # fmt: skip
        self.writer.write(batch)
        return {model: len(rows) for model, rows in batch.rows.items()}


_worker: Seeder | None = None


def _start_worker(options: Options, password_hash: str, todays: dict[str, date]) -> None:
    global _worker
    connections.close_all()  # never share the parent's connection
    _worker = Seeder(options, password_hash=password_hash, todays=todays)


def _seed_in_worker(index: int) -> dict[type[models.Model], int]:
    assert _worker is not None  # made by the pool's initializer
    return _worker.seed(index)


def seed_bench(options: Options, *, password: str, jobs: int, say: Callable[[str], None]) -> Totals:
    """Seed the bench workspaces that do not exist yet, `jobs` at a time. Returns what was written.

    The owners share one password, hashed once here: hashing per user would take longer than
    the seeding. Workspaces are independent, so worker processes seed them side by side (the
    database's work overlaps the generating); inside an outer transaction (tests) other
    connections could not see its rows, so there it runs in this process.
    """
    started = time.monotonic()
    wanted = {f"bench-{number_of(n)}": n for n in range(1, options.workspaces + 1)}
    existing = set(Workspace.objects.filter(slug__in=list(wanted)).values_list("slug", flat=True))
    todo = [n for slug, n in wanted.items() if slug not in existing]
    totals = Totals()
    if not todo:
        say(f"Bench: all {options.workspaces} workspaces already exist; nothing added.")
        return totals
    if existing:
        say(f"Bench: {len(existing)} of {options.workspaces} workspaces already exist and are left as they are.")
    if connection.in_atomic_block or "fork" not in multiprocessing.get_all_start_methods():
        jobs = 1
    jobs = min(jobs, len(todo))
    say(
        f"Bench: seeding {len(todo)} workspaces × {options.clients} clients, {options.months} months of history"
        f" ({jobs} process{'es' if jobs > 1 else ''})…"
    )
    # One "today" per zone for the whole run, so a run across midnight stays consistent.
    todays = {zone: datetime.now(ZoneInfo(zone)).date() for zone, _ in catalog.ZONES_AND_CURRENCIES}
    password_hash = make_password(password)
    step = max(1, len(todo) // 20)

    def progress(done: int) -> None:
        if done % step == 0 or done == len(todo):
            say(f"  {done}/{len(todo)} workspaces, {totals.total:,} rows, {time.monotonic() - started:.1f} s")

    if jobs == 1:
        seeder = Seeder(options, password_hash=password_hash, todays=todays)
        for done, index in enumerate(todo, start=1):
            totals.add(seeder.seed(index))
            progress(done)
        analyze_tables()
        return totals
    connections.close_all()  # the workers are forked: they must not inherit an open connection
    pool = multiprocessing.get_context("fork").Pool(
        jobs, initializer=_start_worker, initargs=(options, password_hash, todays)
    )
    with pool:
        for done, counts in enumerate(pool.imap_unordered(_seed_in_worker, todo), start=1):
            totals.add(counts)
            progress(done)
    analyze_tables()
    return totals


def analyze_tables() -> None:
    """Refresh the planner's statistics of the project's tables after a bulk load.

    Autovacuum gets there on its own, but only after a while: until then PostgreSQL plans with
    the row counts of empty tables (nested loops over thousands of rows), and the pages and
    benchmarks that run right after seeding would measure that instead of the real plans.
    """
    tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE " + ", ".join(connection.ops.quote_name(t) for t in sorted(tables)))


def describe(totals: Totals) -> str:
    return (
        f"{totals.workspaces:,} workspaces, {totals.of(Client):,} clients, {totals.of(Retainer):,} retainers, "
        f"{totals.of(Period):,} periods, {totals.of(LedgerEntry):,} ledger entries, "
        f"{totals.of(WorkItem):,} work items, {totals.of(Deliverable):,} deliverables, "
        f"{totals.of(Amendment):,} amendments: {totals.total:,} rows"
    )
