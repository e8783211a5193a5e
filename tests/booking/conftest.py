"""Bookings in tests: a member (Bob) who takes bookings, a client with a retainer and a contact, and a
real CalDAV server (radicale, from PyPI) started once per test session on a free loopback port.

Times: `NOW` is Monday 9 March 2026, 09:00 in London (UTC+0 until the clocks go forward on 29 March).
Bob works Monday to Friday 09:00-12:00 and 13:00-17:00 in Europe/London, one-hour sessions every
30 minutes, with 12 hours' notice and a 60-day horizon.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time as clock
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import Decimal as D

import pytest
import time_machine

from delivery import booking_setup
from delivery.models import Schedule, SessionType
from tests import factories

NOW = datetime(2026, 3, 9, 9, 0, tzinfo=UTC)
WEEKDAY_HOURS = [(time(9), time(12)), (time(13), time(17))]
RADICALE_USER, RADICALE_PASSWORD = "bob", "app-password-for-bob"


@pytest.fixture
def now():
    with time_machine.travel(NOW, tick=False):
        yield NOW


@pytest.fixture
def schedule(workspace, bob) -> Schedule:
    return booking_setup.save_schedule(
        workspace=workspace,
        member=bob,
        settings={
            "timezone": "Europe/London",
            "buffer_before_minutes": 0,
            "buffer_after_minutes": 0,
            "min_notice_minutes": 12 * 60,
            "horizon_days": 60,
            "daily_cap": None,
            "step_minutes": 30,
        },
        weekly={day: WEEKDAY_HOURS for day in range(5)},
    )


@pytest.fixture
def session_type(workspace, bob, schedule) -> SessionType:
    return booking_setup.save_session_type(
        workspace=workspace,
        session_type=None,
        member=bob,
        name="Coaching call",
        duration_minutes=60,
        hours=D("1"),
        sessions=1,
        location="https://meet.example.com/bob",
        reminder_minutes=[24 * 60, 60],
        all_retainers=True,
        retainers=[],
    )


@pytest.fixture
def acme(workspace):
    return factories.ClientFactory(workspace=workspace, name="Acme Ltd")


@pytest.fixture
def retainer(acme):
    return factories.make_retainer(client=acme, name="Coaching", starts_on=datetime(2026, 3, 1).date())


@pytest.fixture
def carol(acme):
    user = factories.UserFactory(email="carol@acme.example", name="Carol Client")
    return factories.ContactFactory(
        client=acme, name="Carol Client", email="carol@acme.example", user=user, portal_access=True,
        timezone="America/New_York",
    )  # fmt: skip


def at(day: int, hour: int, minute: int = 0, *, month: int = 3) -> datetime:
    """A moment in March 2026, London time (which is UTC until the 29th)."""
    from zoneinfo import ZoneInfo

    return datetime(2026, month, day, hour, minute, tzinfo=ZoneInfo("Europe/London"))


# --- A real CalDAV server ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Radicale:
    url: str
    process: subprocess.Popen

    def new_calendar(self) -> str:
        """A fresh calendar of Bob's (one per test, so tests never see each other's events)."""
        calendar = self.client().principal().make_calendar(name="Work", cal_id=f"work-{uuid.uuid4().hex[:12]}")
        return str(calendar.url)

    def client(self):
        import caldav

        # Basic auth at once: radicale answers an unauthenticated probe only after a one-second delay.
        return caldav.DAVClient(
            url=self.url,
            username=RADICALE_USER,
            password=RADICALE_PASSWORD,
            enable_rfc6764=False,
            auth_type="basic",
        )


@pytest.fixture(scope="session")
def radicale(tmp_path_factory) -> Iterator[Radicale]:
    folder = tmp_path_factory.mktemp("radicale")
    users = folder / "users"
    users.write_text(f"{RADICALE_USER}:{RADICALE_PASSWORD}\n")
    port = free_port()
    config = folder / "config"
    config.write_text(
        f"[server]\nhosts = 127.0.0.1:{port}\n"
        f"[auth]\ntype = htpasswd\nhtpasswd_filename = {users}\nhtpasswd_encryption = plain\n"
        f"[storage]\nfilesystem_folder = {folder / 'collections'}\n"
        "[logging]\nlevel = error\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "radicale", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = clock.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None or clock.monotonic() > deadline:
                    raise RuntimeError("radicale did not start") from None
                clock.sleep(0.1)
        yield Radicale(url=f"http://127.0.0.1:{port}/", process=process)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def caldav_settings(settings):
    settings.CALDAV_ALLOW_PRIVATE_HOSTS = True  # radicale runs on loopback
    settings.CALDAV_TIMEOUT_SECONDS = 5
    return settings
