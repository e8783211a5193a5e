from __future__ import annotations

import pytest
import time_machine

from tests.dashboard.helpers import NOW


@pytest.fixture(autouse=True)
def frozen_clock():
    """Every dashboard test runs on Saturday 14 March 2026, 12:00 UTC, unless it travels itself."""
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller
