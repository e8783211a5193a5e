from __future__ import annotations

import pytest

from clients import hub


@pytest.fixture(autouse=True)
def no_hub_sections(monkeypatch) -> None:
    """The client page without the sections other apps register: these tests are about the page itself.

    The sections are tested by the apps that register them (each with a fixed query count).
    """
    monkeypatch.setattr(hub, "_sections", {})
