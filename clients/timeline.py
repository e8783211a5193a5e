"""The client timeline's building blocks: an `Event` and the `Cursor` that pages through them.

They live here, at the left, so that every app can build events of its own (delivery.timeline,
billing.timeline, renewals.timeline, communication.timeline); the client's timeline page
merges them (dashboard.timeline).

An app's events function is called as `events(request, client, kinds, before, limit)` and
returns at most `limit` events of the asked `kinds`, older than the cursor `before` (None for
the first page), newest first, in ONE query. `before.q(kind, "created_at")` builds the filter
that makes "older than the cursor" exact, ties included.

Events are ordered by (at, kind, pk), newest first: a total order, so pages never skip
or repeat an event even when many share a timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Q
from django.utils.dateparse import parse_datetime


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
