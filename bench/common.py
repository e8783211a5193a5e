"""What the benchmarks share: scratch PostgreSQL and Redis databases, the environment Django
runs in, one-line errors and compact tables.

Scratch databases are only ever named `retainers_bench…`: the PostgreSQL server is shared,
and nothing here touches a database by another name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DB_PREFIX = "retainers_bench"
APP_URL = "postgres://retainers@127.0.0.1:5432/retainers"  # scripts/dev.py's local default
SUPERUSER_URL = "postgres://postgres@127.0.0.1:5432/postgres"
# Tests clear Redis database 15 all the time, and the app uses 0: a quiet one in between.
REDIS_DB = 11


class BenchError(Exception):
    """A failure told to the user in one line, without a traceback."""


def run_main(main: Callable[[], None]) -> None:
    prog = Path(sys.argv[0]).name
    try:
        main()
    except BenchError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr, flush=True)
        sys.exit(130)


def say(message: str = "") -> None:
    print(message, flush=True)


# --- PostgreSQL -------------------------------------------------------------------------


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
    return urlunsplit(parts)


def _psycopg():
    try:
        import psycopg
    except ImportError:
        raise BenchError(
            "psycopg is not installed in this Python: run the benchmark with the project's venv "
            "(.venv/bin/python bench/…)"
        ) from None
    return psycopg


class Server:
    """A PostgreSQL server and a login on it that may create databases."""

    def __init__(self, url: str) -> None:
        self.url = url

    def connect(self, database: str = "postgres"):
        return _psycopg().connect(with_database(self.url, database), autocommit=True, connect_timeout=5)

    def url_for(self, name: str) -> str:
        return with_database(self.url, name)

    def exists(self, name: str) -> bool:
        with self.connect() as conn:
            return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None

    def create(self, name: str, *, template: str | None = None, replace: bool = False) -> None:
        """Create scratch database `name` (empty, or a copy of `template`)."""
        check_name(name)
        sql = _psycopg().sql
        if self.exists(name):
            if not replace:
                raise BenchError(
                    f"database {name} already exists (kept by an earlier --keep run?): "
                    f"pass --replace to drop and recreate it, or --db to use another name"
                )
            self.drop(name)
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            check_name(template)
            if not self.exists(template):
                raise BenchError(f"template database {template} does not exist")
            query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
        with self.connect() as conn:
            conn.execute(query)

    def drop(self, name: str) -> None:
        check_name(name)
        sql = _psycopg().sql
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def check_name(name: str) -> None:
    if not re.fullmatch(rf"{DB_PREFIX}[a-z0-9_]*", name):
        raise BenchError(f"scratch database names must match {DB_PREFIX}[a-z0-9_]*, not {name!r}")


def find_server() -> Server:
    """The server to create scratch databases on: DATABASE_URL's when set, else the local one,
    as the app's role (it has CREATEDB, see scripts/dev.py) or as the postgres superuser."""
    psycopg = _psycopg()
    candidates = [os.environ["DATABASE_URL"]] if os.environ.get("DATABASE_URL") else [APP_URL, SUPERUSER_URL]
    problems = []
    for url in candidates:
        try:
            with psycopg.connect(with_database(url, "postgres"), autocommit=True, connect_timeout=5) as conn:
                (allowed,) = conn.execute(
                    "SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user"
                ).fetchone()
        except psycopg.Error as exc:
            problems.append(f"{redact(url)}: {str(exc).strip().splitlines()[0]}")
            continue
        if allowed:
            return Server(url)
        problems.append(f"{redact(url)}: the role may not create databases")
    raise BenchError("no PostgreSQL to create a scratch database on (" + "; ".join(problems) + ")")


# --- Redis --------------------------------------------------------------------------------


def default_redis_url() -> str:
    base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    return urlunsplit(urlsplit(base)._replace(path=f"/{REDIS_DB}"))


class ScratchRedis:
    """A Redis database for the broker and cache of the run: empty at the start (so nobody else
    uses it) and flushed at the end. The tasks the run enqueues wait there unread."""

    def __init__(self, url: str) -> None:
        try:
            import redis
        except ImportError:
            raise BenchError("the redis package is missing: run the benchmark with the project's venv") from None
        self.url = url
        self.client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=30)
        try:
            size = self.client.dbsize()
        except redis.RedisError as exc:
            raise BenchError(f"Redis at {url} does not answer ({exc}): start Redis or pass --redis-url") from None
        if size:
            raise BenchError(
                f"Redis database {url} is not empty ({size} keys): another run or person uses it; "
                "pass an empty one with --redis-url"
            )

    def queued(self, queue: str = "celery") -> int:
        return int(self.client.llen(queue))

    def flush(self) -> None:
        with suppress(Exception):
            self.client.flushdb()


# --- Django in child processes ------------------------------------------------------------


def django_env(*, database_url: str, redis_url: str, scratch: Path, **extra: str) -> dict[str, str]:
    """The environment of every Django process of a run: production-like settings (DEBUG off)
    on the scratch databases, with email kept in memory and files under `scratch`."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        DEBUG="0",
        SECRET_KEY="bench-only-secret-key-not-used-anywhere-else-0123456789abcdef",
        EMAIL_URL="locmem://",
        ALLOWED_HOSTS="127.0.0.1,localhost,testserver",
        MEDIA_ROOT=str(scratch / "media"),
        BENCH_STATIC_ROOT=str(scratch / "static"),
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def setup_django() -> None:
    """In a stage process started with django_env()."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    _harness_sees_every_workspace()


def _harness_sees_every_workspace() -> None:
    """A stage's own queries (finding what to time, writing seeded rows with COPY, counting what a
    run did) read across workspaces, as a test's set-up does (docs/tenancy.md): every connection of
    the stage starts in the named bypass. What the stage times — requests through the middleware,
    the billing run's per-workspace work — puts the wall back up for itself."""
    from django.db.backends.signals import connection_created

    def bypass(sender: object, connection: object, **kwargs: object) -> None:
        with connection.cursor() as cursor:  # type: ignore[attr-defined]
            cursor.execute("SELECT set_config('app.cross_tenant', 'on', false)")

    connection_created.connect(bypass, weak=False, dispatch_uid="bench.common.harness_bypass")


def run(cmd: Sequence[str], *, env: dict[str, str], label: str, echo: bool = False) -> None:
    """Run a command to completion; its output is shown indented when `echo`, else only on failure."""
    proc = subprocess.Popen(
        list(cmd), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.rstrip())
        if echo:
            say("    " + line.rstrip())
    if proc.wait() != 0:
        if not echo:
            for line in lines[-15:]:
                print("    " + line, file=sys.stderr)
        last = next((line for line in reversed(lines) if line.strip()), "no output")
        raise BenchError(f"{label} failed (exit {proc.returncode}): {last.strip()}")


def run_stage(script: Path, stage: str, argv: Sequence[str], *, env: dict[str, str], label: str) -> dict:
    """Run one stage of a benchmark in a fresh process (its own peak memory); returns its result."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        result_path = Path(handle.name)
    try:
        run(
            [sys.executable, str(script), *argv, "--stage", stage, "--result", str(result_path)],
            env=env,
            label=label,
            echo=True,
        )
        return json.loads(result_path.read_text())
    finally:
        result_path.unlink(missing_ok=True)


def measure_in_scratch_database(
    args: Any, script: Path, forwarded: Sequence[str], report: Callable[[dict], str]
) -> None:
    """The parent side of a benchmark whose one stage seeds and measures on its own: create the
    scratch database `args.db` (`args.replace`), migrate it, run `script`'s `measure` stage there
    with `forwarded` options, print `report(result)`; then flush the scratch Redis
    (`args.redis_url`) and drop the database unless `args.keep`."""
    server = find_server()
    redis = ScratchRedis(args.redis_url)
    scratch = Path(tempfile.mkdtemp(prefix="retainers_bench_"))
    env = django_env(database_url=server.url_for(args.db), redis_url=args.redis_url, scratch=scratch)
    created = False
    try:
        say(f"Scratch database {args.db} on {server.url_for(args.db).split('@')[-1]}")
        server.create(args.db, replace=args.replace)
        created = True
        run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], env=env, label="migrate")
        result = run_stage(script, "measure", forwarded, env=env, label="the measurement")
        say()
        say(report(result))
    finally:
        redis.flush()
        if created and not args.keep:
            server.drop(args.db)
        elif created:
            say(f"Kept {args.db}: drop it with  dropdb {args.db}")
        shutil.rmtree(scratch, ignore_errors=True)


def write_result(path: str, result: dict) -> None:
    Path(path).write_text(json.dumps(result, default=str))


# --- Figures --------------------------------------------------------------------------------


def table(title: str, rows: Sequence[Sequence[object]]) -> str:
    """A compact table: the first column left-aligned, the others right-aligned."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells if i < len(row)) for i in range(max(len(r) for r in cells))]
    out = [title]
    for row in cells:
        parts = [row[0].ljust(widths[0])] + [cell.rjust(widths[i + 1]) for i, cell in enumerate(row[1:])]
        out.append("  " + "  ".join(parts).rstrip())
    return "\n".join(out)


def mib(kib: int) -> str:
    return f"{kib / 1024:,.0f} MiB"


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} / {five:.1f} (1 / 5 min, {os.cpu_count()} cores)"
