"""What the scheduled runs share (billing, dunning, renewals): one at a time, and the `--as-of`
of the management commands that run them by hand."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime

from django.core.management.base import CommandError
from django.db import connection


@contextmanager
def single_run(lock_key: int) -> Iterator[bool]:
    """A session advisory lock on `lock_key`: yields whether this run holds it (a second run gets
    False at once, never waits), and releases it on the way out."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [lock_key])
        held = cursor.fetchone()[0]
    try:
        yield held
    finally:
        if held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [lock_key])


def parse_as_of(value: str | None) -> date | None:
    """A command's `--as-of YYYY-MM-DD`: None when not given, a one-line CommandError when bad."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--as-of must be a date like 2026-01-31, not {value!r}.") from None


def parse_as_of_moment(value: str) -> date | datetime:
    """The reminders' `--as-of`: a date (2026-03-01) or a date and time (2026-03-01T09:30,
    optionally with an offset); a one-line CommandError when bad."""
    text = value.strip()
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        return datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(
            f"--as-of must be a date like 2026-03-01 or a date and time like 2026-03-01T09:30, not {value!r}."
        ) from None
