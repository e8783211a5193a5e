"""Faults for the soak test (tests/test_soak.py): processes and services a test can kill, cut off
and bring back, all on loopback ports of their own, so nothing shared on the machine is touched.

- `RedisServer`: a private `redis-server` (no persistence: a restart loses what was queued, as a
  crashed broker does).
- `TcpProxy`: a TCP relay in front of PostgreSQL; `cut()` closes every relayed connection and
  refuses new ones until `restore()`, which is what a database restart looks like to a client.
- `CeleryWorker`: a `celery worker` subprocess that can be SIGKILLed and started again.
- `SmtpSink`: an SMTP server that keeps every message it is handed.
"""

from __future__ import annotations

import email
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from email.message import Message
from pathlib import Path
from typing import Any

import redis
from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, probe: Callable[[], Any], *, timeout: float = 30, every: float = 0.2) -> Any:
    """Poll `probe` until it returns something true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


class RedisServer:
    """A redis-server of the test's own on a free port."""

    def __init__(self, directory: Path) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.directory, self.port = directory, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert self.binary is not None
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for("redis-server to answer", self._answers, timeout=10, every=0.05)

    def _answers(self) -> bool:
        try:
            with redis.Redis.from_url(self.url, socket_timeout=0.5) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        """SIGKILL: a crash, with everything it held (the queue, unacked tasks) lost."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self, *, down_for: float = 1.0) -> None:
        self.kill()
        time.sleep(down_for)
        self.start()


class TcpProxy:
    """Relays a loopback port to `target`; `cut()` makes it refuse connections until `restore()`."""

    def __init__(self, target_host: str, target_port: int) -> None:
        # A host that is a directory is PostgreSQL's unix socket (the embedded server has no TCP port).
        self.target = (target_host, target_port)
        self.unix_socket = f"{target_host}/.s.PGSQL.{target_port}" if target_host.startswith("/") else None
        self.port = free_port()
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._closed = threading.Event()

    def start(self) -> TcpProxy:
        self.restore()
        return self

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._stopping = threading.Event()
        self._closed = threading.Event()
        threading.Thread(target=self._accept, args=(listener, self._stopping, self._closed), daemon=True).start()

    def cut(self) -> None:
        """Close the listening socket (new connections are refused) and every open relay."""
        self._stopping.set()
        self._closed.wait(timeout=5)
        with self._lock:
            pairs, self._pairs = self._pairs, set()
        for pair in pairs:
            for sock in pair:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    stop = cut

    def _accept(self, listener: socket.socket, stopping: threading.Event, closed: threading.Event) -> None:
        # Polls rather than blocks in accept(): a socket closed by another thread would stay bound
        # while accept() waits on it, and the port could not be listened on again.
        try:
            while not stopping.is_set():
                if not select.select([listener], [], [], 0.1)[0]:
                    continue
                client, _ = listener.accept()
                try:
                    server = self._connect()
                except OSError:
                    client.close()
                    continue
                server.settimeout(None)
                pair = (client, server)
                with self._lock:
                    self._pairs.add(pair)
                threading.Thread(target=self._relay, args=(pair,), daemon=True).start()
        finally:
            listener.close()
            closed.set()

    def _connect(self) -> socket.socket:
        if self.unix_socket is None:
            return socket.create_connection(self.target, timeout=5)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.settimeout(5)
        server.connect(self.unix_socket)
        return server

    def _relay(self, pair: tuple[socket.socket, socket.socket]) -> None:
        client, server = pair
        other = {client: server, server: client}
        try:
            while True:
                readable, _, _ = select.select([client, server], [], [], 1.0)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    other[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                self._pairs.discard(pair)
            for sock in pair:
                try:
                    sock.close()
                except OSError:
                    pass


class CeleryWorker:
    """`celery -A <app> worker` as a subprocess with its own environment; its log goes to `log`."""

    def __init__(self, *, app: str, env: dict[str, str], log: Path, concurrency: int = 2) -> None:
        self.app, self.env, self.log, self.concurrency = app, env, log, concurrency
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        with self.log.open("a") as out:
            out.write(f"\n--- worker start {self.starts} ---\n")
            out.flush()
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    self.app,
                    "worker",
                    "--pool",
                    "prefork",
                    "--concurrency",
                    str(self.concurrency),
                    "--loglevel",
                    "info",
                    "--without-heartbeat",
                    "--without-gossip",
                    "--without-mingle",
                ],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: SIGKILL reaches the pool's children too
            )

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes: whatever they were doing stops mid-way."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def keep_running(self) -> bool:
        """What a supervisor does (compose's `restart: unless-stopped`, systemd's `Restart=`): start
        the worker again if it exited. True when it had to. (Celery's worker can exit on its own
        when Redis goes away while it holds unacknowledged tasks: kombu's "Unrecoverable error".)"""
        if self.process is not None and self.process.poll() is None:
            return False
        self.start()
        return True

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            raise AssertionError(f"the Celery worker is not running:\n{self.log_tail()}")

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


class _Recorder:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        with self.lock:
            self.messages.append(email.message_from_bytes(envelope.original_content or envelope.content))
        return "250 OK"


class SmtpSink:
    """An SMTP server on a free loopback port that keeps every message handed to it."""

    def __init__(self) -> None:
        self.port = free_port()
        self._recorder = _Recorder()
        self._controller = Controller(self._recorder, hostname="127.0.0.1", port=self.port)

    def start(self) -> SmtpSink:
        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP line
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def messages(self) -> list[Message]:
        with self._recorder.lock:
            return list(self._recorder.messages)
