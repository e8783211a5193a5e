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
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    services = set(result.stdout.split())
    assert {"web", "worker", "beat", "postgres", "redis", "mailpit"} <= services


def test_ci_calls_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "make test" in (ROOT / "README.md").read_text()
