"""bench/billing_day.py (issue 15, goal 3) keeps working: run at a tiny size, in a real Celery worker,
it delivers everything and its checks pass; and its checks do catch an email or a charge made twice."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from bench.billing_day import _checks

ROOT = Path(__file__).resolve().parents[1]


def _inspected(**changes: object) -> dict:
    inspected = {
        "invoices": 3,
        "left_due": 0,
        "emailed": [1, 2],
        "auto_charge": [3],
        "payments": [7],
        "claimed": {},
        "keys": {"<a@x>": "invoice-1-issued", "<b@x>": "invoice-2-issued", "<c@x>": "payment-7-receipt"},
    }
    inspected.update(changes)
    return inspected


def _failed(checks: list[tuple[str, bool, str]]) -> list[str]:
    return [name for name, ok, _ in checks if not ok]


def test_the_checks_pass_when_everything_happened_once():
    accepted = [(1.0, "<a@x>"), (2.0, "<b@x>"), (3.0, "<c@x>")]
    assert _failed(_checks(_inspected(), 3, accepted, [(2.5, "3")], 0)) == []


def test_the_checks_catch_an_email_twice_a_charge_twice_a_charge_missing_and_a_claim_left():
    twice = [(1.0, "<a@x>"), (1.5, "<a@x>"), (2.0, "<b@x>"), (3.0, "<c@x>")]
    failed = _failed(_checks(_inspected(), 3, twice, [(2.5, "3")], 0))
    assert failed == ["every emailed invoice emailed exactly once", "no email sent twice, none unknown"]

    once = [(1.0, "<a@x>"), (2.0, "<b@x>"), (3.0, "<c@x>")]
    assert _failed(_checks(_inspected(), 3, once, [(2.5, "3"), (2.6, "3")], 0)) == [
        "every auto-charge invoice charged exactly once (fake Stripe's PaymentIntents)"
    ]
    assert _failed(_checks(_inspected(), 3, once, [], 0)) == [
        "every auto-charge invoice charged exactly once (fake Stripe's PaymentIntents)"
    ]
    left = _inspected(claimed={"emails queued or sending": 1}, left_due=2)
    assert _failed(_checks(left, 3, once, [(2.5, "3")], 1)) == [
        "every due period closed and billed",
        "nothing left claimed (invoices, outbox, charge attempts)",
        "no task failed (worker logs)",
    ]


@pytest.mark.slow
def test_billing_day_at_a_tiny_size_delivers_everything_once():
    db = f"retainers_bench_billing_day_t{secrets.token_hex(3)}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)  # the benchmark's processes use bench.settings
    command = [sys.executable, "bench/billing_day.py", "--workspaces", "2", "--retainers-per-workspace", "3"]
    command += ["--celery-workers", "1", "--timeout", "240", "--db", db]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "time to last delivery" in out
    checks = out.split("\nChecks\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert len(checks) == 8, out[-3000:]
    assert all(" ok " in line for line in checks), out[-3000:]
    assert "peak RSS, worker 1" in out
