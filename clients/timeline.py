"""The client's activity timeline: every app adds the events it owns, newest first.

`clients` cannot import the apps that depend on it (delivery, billing, renewals), so, as
with the client page's sections (clients/hub.py), each app registers a provider in its
AppConfig.ready():

    timeline.register(timeline.Provider(key="sessions", kinds={"session": "Sessions"}, events=sessions))

A provider is called as `events(request, client, kinds, before, limit)` and returns at most
`limit` events of the asked `kinds` (a subset of its own), older than the cursor `before`
(None for the first page), newest first, in ONE query. `before.q(kind, "created_at")`
builds the filter that makes "older than the cursor" exact, ties included.

Events are ordered by (at, kind, pk), newest first: a total order, so pages never skip
or repeat an event even when many share a timestamp.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from django.db.models import Q
from django.utils.dateparse import parse_datetime

if TYPE_CHECKING:
    from clients.models import Client
    from retainers.http import WorkspaceRequest

PAGE_SIZE = 25


@dataclass(frozen=True)
class Event:
    at: datetime
    kind: str
    title: str
    url: str
    detail: str = ""
    pk: int = field(default=0, kw_only=True)  # the source row's id: breaks ties between equal times

    @property
    def sort_key(self) -> tuple[datetime, str, int]:
        return (self.at, self.kind, self.pk)


@dataclass(frozen=True)
class Cursor:
    """The last event of the page before: the next page holds what sorts strictly after it."""

    at: datetime
    kind: str
    pk: int

    def q(self, kind: str, at_field: str, pk_field: str = "pk") -> Q:
        """The filter for events of `kind` older than this cursor in the (at, kind, pk) order."""
        older = Q(**{f"{at_field}__lt": self.at})
        if kind < self.kind:
            return older | Q(**{at_field: self.at})
        if kind == self.kind:
            return older | Q(**{at_field: self.at, f"{pk_field}__lt": self.pk})
        return older

    def encode(self) -> str:
        return f"{self.at.isoformat()}~{self.kind}~{self.pk}"

    @classmethod
    def decode(cls, value: str | None) -> Cursor | None:
        """The cursor in a `?before=` parameter; None when it is missing or malformed (the first page)."""
        if not value:
            return None
        parts = value.split("~")
        if len(parts) != 3 or not parts[2].isdigit():
            return None
        try:
            at = parse_datetime(parts[0])
        except ValueError:
            return None
        if at is None or at.tzinfo is None:
            return None
        return cls(at=at, kind=parts[1][:40], pk=int(parts[2]))


type EventsFn = Callable[["WorkspaceRequest", "Client", frozenset[str], Cursor | None, int], list[Event]]


@dataclass(frozen=True)
class Provider:
    key: str
    kinds: Mapping[str, str]  # kind -> label for the filter, e.g. {"note": "Notes"}
    events: EventsFn


_providers: dict[str, Provider] = {}


def register(provider: Provider) -> None:
    _providers[provider.key] = provider  # by key, so a reloaded app replaces rather than duplicates


def kind_choices() -> list[tuple[str, str]]:
    """(kind, label) of every registered kind, in registration order."""
    return [(kind, label) for p in _providers.values() for kind, label in p.kinds.items()]


@dataclass(frozen=True)
class Page:
    events: list[Event]
    next_cursor: Cursor | None  # None on the last page


def page(
    request: WorkspaceRequest,
    client: Client,
    *,
    kinds: Iterable[str] | None = None,
    before: Cursor | None = None,
    limit: int = PAGE_SIZE,
) -> Page:
    """One page of the merged timeline: one query per provider whose kinds were asked for."""
    wanted = frozenset(kinds) if kinds else frozenset(k for k, _ in kind_choices())
    events: list[Event] = []
    for provider in _providers.values():
        asked = wanted & frozenset(provider.kinds)
        if asked:
            # One more than a page from each: tells whether anything is left after this page.
            events += provider.events(request, client, asked, before, limit + 1)
    events.sort(key=lambda e: e.sort_key, reverse=True)
    shown = events[:limit]
    more = len(events) > limit
    last = shown[-1] if shown else None
    return Page(events=shown, next_cursor=Cursor(last.at, last.kind, last.pk) if more and last else None)
