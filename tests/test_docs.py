"""The repository documents itself: every relative link in the README and docs/ resolves in a clone,
and docs/architecture.md names every app and every model it owns."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.apps import apps

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    missing = [
        target
        for target in LINK.findall(page.read_text())
        if "://" not in target and not target.startswith("mailto:") and not (page.parent / target).exists()
    ]
    assert not missing, f"{page.name} links to files that are not in the repository: {missing}"


def test_architecture_names_every_app_and_model():
    text = (ROOT / "docs" / "architecture.md").read_text()
    local = [config for config in apps.get_app_configs() if (ROOT / config.name).is_dir()]
    assert {c.name for c in local} >= {"retainers", "clients", "delivery", "billing", "renewals", "communication"}
    for config in local:
        assert f"`{config.name}`" in text, f"docs/architecture.md does not mention the app {config.name}"
        for model in config.get_models():
            if model._meta.auto_created:
                continue
            assert f"`{model.__name__}`" in text, (
                f"docs/architecture.md does not say which app owns {config.name}.{model.__name__}"
            )
