"""What the scheduled runs share (billing, dunning, renewals): one at a time, and the `--as-of`
of the management commands that run them by hand."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

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
