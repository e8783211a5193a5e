"""What ships: the wheel holds every app, and the Docker image's build and entry commands work.

No Docker engine runs here, so the Dockerfile is replayed: its `RUN` steps run in a clean
virtualenv in a temporary directory (the image's /app and /tmp mapped into it), each with exactly
the `ENV` the Dockerfile has set by then; only the steps that need the engine's root and Debian
(`apt-get`, `useradd`) are left out. Then the image's settings are loaded the way its services
load them: `check --deploy` with docker-compose.yml's environment for the web service, and the
image's `CMD` (gunicorn) loads its WSGI module. A Dockerfile whose steps cannot succeed fails here.

Both builds reach PyPI (pip's build isolation, the image's dependencies) and reuse pip's cache.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


# --- The wheel ---------------------------------------------------------------------------------

# Local state and caches that are not part of the source tree.
NOT_SOURCE = {".git", ".venv", "var", "node_modules", "artifacts", "staticfiles", "build", "dist", "__pycache__"}


def copy_tree(destination: Path, *, ignored: Callable[[str], bool]) -> Path:
    """Copy the project to `destination`, leaving out each path (relative, with /) that `ignored` names."""

    def ignore(directory: str, names: list[str]) -> set[str]:
        relative = Path(directory).relative_to(ROOT)
        return {name for name in names if ignored((relative / name).as_posix())}

    shutil.copytree(ROOT, destination, ignore=ignore, symlinks=True)
    return destination


def local_apps() -> list[str]:
    """The apps of INSTALLED_APPS that are packages of this project (not Django's or allauth's)."""
    return [app for app in settings.INSTALLED_APPS if "." not in app and (ROOT / app / "__init__.py").exists()]


def test_the_wheel_holds_every_app_with_all_its_modules(tmp_path):
    source = copy_tree(
        tmp_path / "source",
        ignored=lambda path: Path(path).name in NOT_SOURCE or path.endswith((".egg-info", ".pyc")),
    )
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--wheel-dir", str(tmp_path / "dist")],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [wheel] = (tmp_path / "dist").glob("retainers-*.whl")
    packaged = set(zipfile.ZipFile(wheel).namelist())

    apps = local_apps()
    assert {"retainers", "clients", "delivery", "billing", "renewals", "dashboard", "portal", "demo"} <= set(apps)
    for app in apps:
        modules = {
            path.relative_to(ROOT).as_posix() for path in (ROOT / app).rglob("*.py") if "__pycache__" not in path.parts
        }
        assert f"{app}/__init__.py" in modules
        missing = sorted(modules - packaged)
        assert not missing, f"{app}: the wheel lacks {missing}"


# --- The Docker image --------------------------------------------------------------------------

# RUN steps that need the engine: root and the image's Debian (system packages, a system user).
ENGINE_ONLY = ("apt-get", "useradd")
# The image's directories that the build writes to, mapped into the temporary directory.
IMAGE_DIRS = ("/app", "/tmp")


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) of each instruction, continuation lines joined, comments left out."""
    result: list[tuple[str, str]] = []
    current = ""
    for line in dockerfile.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue  # a comment or blank line, also inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        keyword, _, arguments = current.partition(" ")
        result.append((keyword.upper(), arguments.strip()))
        current = ""
    assert not current, f"the Dockerfile ends inside an instruction: {current!r}"
    return result


def env_pairs(arguments: str) -> dict[str, str]:
    """`ENV A=1 B="two words"` (or the old `ENV A value`) as a dict."""
    words = shlex.split(arguments)
    if "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words)


def dockerignore_matcher(text: str) -> Callable[[str], bool]:
    """Whether .dockerignore leaves a path (relative, with /) out of the build context: the last
    matching pattern decides (`!` re-includes); a left-out directory takes its contents with it."""
    rules: list[tuple[re.Pattern[str], bool]] = []
    for line in text.splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        include = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        regex = ""
        for token in re.split(r"(\*\*/|\*\*|\*|\?)", pattern):
            regex += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(token, re.escape(token))
        rules.append((re.compile(regex), include))

    def ignored(path: str) -> bool:
        parts = path.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        verdict = False
        for regex, include in rules:
            if any(regex.fullmatch(prefix) for prefix in prefixes):
                verdict = not include
        return verdict

    return ignored


@dataclass
class Image:
    """What the replayed build left: a virtualenv for the image's Python, its ENV, WORKDIR and CMD."""

    scratch: Path
    venv: Path
    env: dict[str, str] = field(default_factory=dict)
    workdir: Path | None = None
    cmd: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def local(self, text: str) -> str:
        """The image's paths (/app, /tmp) in `text` as their places under the scratch directory."""
        # One pass: a path already mapped (under this machine's /tmp) is not mapped again.
        image_dirs = "|".join(re.escape(directory) for directory in IMAGE_DIRS)
        return re.sub(
            rf"(?<![\w./-])({image_dirs})(?![\w.-])", lambda match: str(self.scratch / match.group(1)[1:]), text
        )

    def process_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        # Only what the image would have: its ENV, its Python first on PATH. Passed through from
        # here: HOME and the PIP_*/proxy variables that say where packages come from (network set-up,
        # not the image's). PIP_NO_CACHE_DIR is dropped on purpose, so the replay reuses pip's cache.
        passed = {
            key: value
            for key, value in os.environ.items()
            if key.startswith("PIP_") or key.lower().endswith("_proxy") or key in {"HOME", "SSL_CERT_FILE"}
        }
        env = {**passed, "PATH": f"{self.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin", **self.env, **(extra or {})}
        env.pop("PIP_NO_CACHE_DIR", None)
        return env

    def run(self, command: list[str] | str, *, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            command,
            shell=isinstance(command, str),
            executable="/bin/sh" if isinstance(command, str) else None,
            cwd=self.workdir,
            env=self.process_env(extra),
            capture_output=True,
            text=True,
            timeout=600,
        )


class BuildFailed(AssertionError):
    pass


def replay_build(dockerfile: str, *, context: Path, scratch: Path) -> Image:
    """Run what the Dockerfile builds, but the engine's part, in a clean virtualenv under `scratch`."""
    venv = scratch / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    image = Image(scratch=scratch, venv=venv)
    for directory in IMAGE_DIRS:
        (scratch / directory[1:]).mkdir(parents=True, exist_ok=True)
    ignored = dockerignore_matcher(
        (context / ".dockerignore").read_text() if (context / ".dockerignore").exists() else ""
    )
    for keyword, arguments in instructions(dockerfile):
        if keyword == "FROM":
            # The replay runs on this machine's Python: it must be the image's.
            version = f"{sys.version_info.major}.{sys.version_info.minor}"
            assert arguments.startswith(f"python:{version}"), f"the image's Python ({arguments}) is not {version}"
        elif keyword == "ENV":
            image.env.update({key: image.local(value) for key, value in env_pairs(arguments).items()})
        elif keyword == "WORKDIR":
            image.workdir = Path(image.local(arguments))
            image.workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            *sources, destination = shlex.split(arguments)
            target = Path(image.local(destination)) if destination.startswith("/") else image.workdir / destination
            assert target is not None
            for source in sources:
                if source == ".":
                    shutil.copytree(
                        context, target, ignore=_ignore_under(context, ignored), symlinks=True, dirs_exist_ok=True
                    )
                else:
                    shutil.copy2(context / source, target / Path(source).name)
        elif keyword == "RUN":
            if arguments.split()[0] in ENGINE_ONLY:
                image.skipped.append(arguments)
                continue
            result = image.run(image.local(arguments))
            if result.returncode != 0:
                raise BuildFailed(
                    f"RUN {arguments}\nexit {result.returncode}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
                )
        elif keyword == "CMD":
            image.cmd = json.loads(arguments)
        elif keyword in {"USER", "EXPOSE"}:
            pass  # run-time details the engine applies
        else:
            raise AssertionError(f"the replay does not know the Dockerfile instruction {keyword}: teach it here")
    return image


def _ignore_under(context: Path, ignored: Callable[[str], bool]) -> Callable[[str, list[str]], set[str]]:
    def ignore(directory: str, names: list[str]) -> set[str]:
        relative = Path(directory).relative_to(context)
        return {name for name in names if ignored((relative / name).as_posix())}

    return ignore


def compose_environment(service: str) -> dict[str, str]:
    """The environment docker-compose.yml gives `service`, each ${VAR:-default} at its default
    (a fresh machine: nothing exported, no .env file)."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    environment = compose["services"][service]["environment"]
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)

    def interpolate(value: object) -> str:
        return re.sub(r"\$\{\w+(?::?-([^}]*))?\}", lambda match: match.group(1) or "", str(value))

    return {key: interpolate(value) for key, value in environment.items()}


def test_the_docker_images_build_steps_and_entry_commands_succeed(tmp_path):
    image = replay_build((ROOT / "Dockerfile").read_text(), context=ROOT, scratch=tmp_path)

    assert [step.split()[0] for step in image.skipped] == ["apt-get", "useradd"]
    assert (image.workdir / "staticfiles" / "staticfiles.json").exists()  # collectstatic's manifest, in the image

    # check --deploy as the web service runs, but with an https SITE_URL: compose's default is
    # http://localhost:8000 for trying it out on a laptop, and the compose file itself says to set an
    # https one in production; over http, check --deploy rightly warns about cookies and HSTS.
    web = compose_environment("web")
    assert web["SITE_URL"].startswith("http://")
    web["SITE_URL"] = "https://" + web["SITE_URL"].removeprefix("http://")
    check = image.run(["python", "manage.py", "check", "--deploy", "--fail-level", "WARNING"], extra=web)
    assert check.returncode == 0, check.stdout + check.stderr

    # The image's CMD, which gunicorn's --check-config makes load its WSGI module and exit.
    assert image.cmd[:2] == ["gunicorn", "retainers.wsgi"]
    loaded = image.run([*image.cmd, "--check-config"], extra=web)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr


def test_a_build_step_that_cannot_succeed_fails_the_replay(tmp_path):
    dockerfile = 'FROM python:3.12-slim\nWORKDIR /app\nENV DEBUG=0\nRUN python -c \'import os, sys; sys.exit(os.environ["DEBUG"] == "0")\'\n'
    with pytest.raises(BuildFailed, match=r"exit 1"):
        replay_build(dockerfile, context=tmp_path, scratch=tmp_path / "build")


def test_dockerignore_patterns_leave_out_what_docker_leaves_out():
    ignored = dockerignore_matcher("# comment\n.git\n**/__pycache__\n*.egg-info\nvar\n!var/keep\n")
    assert ignored(".git") and ignored(".git/HEAD")
    assert ignored("__pycache__") and ignored("billing/__pycache__/x.pyc")
    assert ignored("retainers.egg-info/PKG-INFO")
    assert ignored("var/media") and not ignored("var/keep")
    assert not ignored("billing/models.py") and not ignored("tests/var")
