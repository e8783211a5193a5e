"""The project's settings, as production runs them, for the benchmarks.

The scripts run Django with DEBUG=0 (no query log, the cached template loader, WhiteNoise),
like gunicorn in production. One change: static files are collected into a scratch folder
(BENCH_STATIC_ROOT) rather than the checkout's staticfiles/, since DEBUG=0 serves them from
the hashed-name manifest that collectstatic writes.
"""

import os
from pathlib import Path

from retainers.settings import *  # noqa: F403

if os.environ.get("BENCH_STATIC_ROOT"):
    STATIC_ROOT = Path(os.environ["BENCH_STATIC_ROOT"])
