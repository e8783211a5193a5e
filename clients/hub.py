"""The client page is the hub of the relationship; apps to the right add their sections to it.

`clients` cannot import the apps that depend on it (delivery, billing, renewals), so
each of them registers a section in its AppConfig.ready(). A section is a template
and a function giving its context; each section makes a fixed number of queries.

The client page (templates/clients/client_detail.html) renders each section as

    {% for template, ctx in sections %}{% include template with section=ctx %}{% endfor %}

so a section's template reads its own context as `section` (e.g. `section.retainers`),
next to the page's own `client` and `request`. It should render one
`<section class="card stack">` with an `<h2>`, and must not rely on other page variables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clients.models import Client
    from retainers.http import WorkspaceRequest


@dataclass(frozen=True)
class Section:
    key: str
    order: int
    template: str
    context: Callable[[WorkspaceRequest, Client], dict[str, object]]


_sections: dict[str, Section] = {}


def register(section: Section) -> None:
    _sections[section.key] = section  # by key, so a reloaded app replaces rather than duplicates


def sections_for(request: WorkspaceRequest, client: Client) -> list[tuple[str, dict[str, object]]]:
    """(template, context) of each section, in page order."""
    return [(s.template, s.context(request, client)) for s in sorted(_sections.values(), key=lambda s: s.order)]
