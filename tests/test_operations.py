"""The operations files stay valid: docker-compose.yml parses, the Dockerfile builds what compose runs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_docker_compose_file_validates():
    compose = shutil.which("docker-compose")
    assert compose, "docker-compose (Debian's package) is needed; `make test` installs it"
    result = subprocess.run([compose, "config", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_compose_runs_every_part_of_the_product():
    result = subprocess.run(
        [shutil.which("docker-compose") or "docker-compose", "config", "--services"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    services = set(result.stdout.split())
    assert {"web", "worker", "beat", "postgres", "redis", "mailpit"} <= services


def test_ci_calls_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "make test" in (ROOT / "README.md").read_text()


def _dev_services(database_url: str) -> subprocess.CompletedProcess:
    """`scripts/dev.py services` with this DATABASE_URL: finds or starts PostgreSQL and Redis."""
    import os
    import sys

    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "scripts/dev.py", "services"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_run_creates_the_database_named_in_database_url_when_it_is_missing():
    import uuid

    import psycopg
    from django.db import connection

    db = connection.settings_dict
    server = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    name = f"retainers_ops_{uuid.uuid4().hex[:8]}"
    try:
        result = _dev_services(f"{server}/{name}")
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"created the database {name}" in result.stdout
        with psycopg.connect(f"{server}/{name}", connect_timeout=3):
            pass
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


def test_run_says_in_one_line_when_database_url_cannot_be_reached():
    result = _dev_services("postgres://nobody@127.0.0.1:1/retainers")  # nothing listens on port 1
    assert result.returncode != 0
    assert (
        result.stderr.strip().count("\n") == 0 and "cannot connect to the PostgreSQL in $DATABASE_URL" in result.stderr
    )


def test_dev_manage_runs_a_command_on_the_services_that_run_uses():
    import os
    import sys

    from django.db import connection

    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
    }

    def dev(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "scripts/dev.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )

    result = dev("manage", "showmigrations", "retainers")
    assert result.returncode == 0, result.stderr
    assert "PostgreSQL $DATABASE_URL (postgres://" in result.stdout  # the services run would use…
    assert "0003_data_version" in result.stdout  # …and manage.py run against them
    missing = dev("manage")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "dev: error: manage needs a command, e.g. dev.py manage demo_stripe"
