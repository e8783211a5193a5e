"""What every app's search shares: how typed words become a PostgreSQL full-text query.

One text-search configuration, `simple` (no stemming, no stop words): names, invoice memos and
notes are in any language, and "acme" must find "Acme" whatever the workspace writes in. Each
word typed is a prefix (`acm` finds "Acme"), and every word must match. The indexes each app
declares (a GIN index on the same `to_tsvector('simple', …)` expression, or on a stored tsvector column
that a trigger keeps) are what make these queries fast; `bench/search.py` checks it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db import models
from django.db.models import Count, QuerySet, Window
from django.db.models.expressions import Combinable

SEARCH_CONFIG = "simple"
MAX_WORDS = 8  # a pasted paragraph is not a query: its first words are
MAX_QUERY_LENGTH = 200
# Letters and digits (any script). to_tsvector also keeps "follow-up" whole beside "follow" and "up",
# so matching on the parts finds it; e-mail addresses are indexed with "@" as a space for the same reason.
_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    """The words of a query, lower-cased, at most MAX_WORDS; empty when there is nothing to look for."""
    return [word.lower() for word in _WORD.findall(text[:MAX_QUERY_LENGTH])][:MAX_WORDS]


def prefix_query(text: str) -> SearchQuery | None:
    """`acme inv` → to_tsquery('simple', 'acme:* & inv:*'); None when no word is left.

    The raw tsquery is built only from \\w+ words, so nothing the user types can be tsquery syntax.
    """
    found = words(text)
    if not found:
        return None
    return SearchQuery(" & ".join(f"{word}:*" for word in found), search_type="raw", config=SEARCH_CONFIG)


def snippet(text: str, query_words: Sequence[str], *, width: int = 160) -> str:
    """A line of `text` around the first word that matches, whitespace collapsed."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    lowered = flat.lower()
    starts = [match.start() for word in query_words if (match := re.search(rf"\b{re.escape(word)}", lowered))]
    start = max(min(starts, default=0) - width // 4, 0)
    piece = flat[start : start + width]
    return ("…" if start else "") + piece + ("…" if start + width < len(flat) else "")


@dataclass(frozen=True)
class Found[M: models.Model]:
    """The best rows of one kind for a query, and how many matched in all (one query gives both);
    `capped` when there were more than were ranked, so `total` is a floor ("1,000+")."""

    total: int
    rows: Sequence[M]
    capped: bool = False


NOTHING: Found = Found(total=0, rows=[])
RECENT = 500  # notes and messages: the best of the newest this many matches


def ranked[M: models.Model](
    queryset: QuerySet[M], vector: Combinable, query: SearchQuery, *, limit: int, then: str
) -> Found[M]:
    """`queryset`'s rows whose `vector` matches, best first (ties by `then`), at most `limit`, with the
    total. `vector` must be the indexed expression for the index to be used."""
    rows = list(
        queryset.annotate(search_match=vector, search_rank=SearchRank(vector, query), search_total=Window(Count("pk")))
        .filter(search_match=query)
        .order_by("-search_rank", then)[:limit]
    )
    return Found(total=getattr(rows[0], "search_total", 0) if rows else 0, rows=rows)


def ranked_recent[M: models.Model](
    queryset: QuerySet[M], vector: Combinable, query: SearchQuery, *, limit: int, newest: str = "created_at"
) -> Found[M]:
    """Like `ranked`, for a table of texts: the best of the newest RECENT matches. A word in a third
    of 100k notes would otherwise rank 30,000 rows for ten; with the cap PostgreSQL walks the
    (workspace, newest) index until it has RECENT matches, or takes the GIN index when the words
    are rare, and ranks at most RECENT rows either way."""
    newest_matches = (
        queryset.annotate(search_match=vector).filter(search_match=query).order_by(f"-{newest}").values("pk")[:RECENT]
    )
    rows = list(
        queryset.filter(pk__in=newest_matches)
        .annotate(search_rank=SearchRank(vector, query), search_total=Window(Count("pk")))
        .order_by("-search_rank", f"-{newest}")[:limit]
    )
    total = getattr(rows[0], "search_total", 0) if rows else 0
    return Found(total=total, rows=rows, capped=total >= RECENT)
