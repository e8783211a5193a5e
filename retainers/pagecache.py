"""Cached page parts that are never stale: keyed by the workspace's data version.

PostgreSQL keeps one counter per workspace (`retainers_dataversion`). A deferred constraint
trigger named `data_version` on every tenant table (and on the workspace row) adds one to it
when a transaction that wrote to the workspace commits, in that same transaction. Whatever
wrote (a view, the billing run's bulk UPDATEs, a shell, raw SQL) moves the counter, so a part
cached under the version read before it was built is only ever served while nothing changed.

    parts = PageCache(request.workspace)
    html = parts.get("dashboard-rows", [today, request.get_full_path()], build)

The key holds everything a part depends on besides the workspace's rows: the local date for
anything worded relative to today, the query string for filtered lists, and a fingerprint of the
code (the apps' Python and the templates), so a deploy never serves parts an older release built.

The counter is bumped once per workspace per statement (a guard in the transaction's settings),
so a 10,000-row bulk insert costs one UPDATE, not 10,000; deferred, every row of a transaction
is counted at COMMIT, in one statement. Tests run the triggers immediately (`SET CONSTRAINTS
data_version IMMEDIATE`, tests/conftest.py), since their transactions never commit.

A new tenant table adds `track("app_table")` to its migration; tests/retainers/test_pagecache.py
fails while a table with a workspace_id column has no trigger. The functions below are what
migrations retainers 0003 and clients 0005 created: change them only with a new migration.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable
from typing import TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import migrations

from retainers.models import DataVersion, Workspace

T = TypeVar("T")

TRIGGER = "data_version"

FUNCTION_SQL = """
CREATE OR REPLACE FUNCTION retainers_data_changed() RETURNS trigger AS $$
DECLARE
    ws bigint;
    guard text;
    stamp text := statement_timestamp()::text;
BEGIN
    IF TG_TABLE_NAME = 'retainers_workspace' THEN
        ws := NEW.id;
    ELSIF TG_OP = 'DELETE' THEN
        ws := OLD.workspace_id;
    ELSE
        ws := NEW.workspace_id;
    END IF;
    guard := 'retainers.data_changed_' || ws;
    -- Once per workspace per statement: at COMMIT (deferred) every queued row shares one stamp.
    IF current_setting(guard, true) IS DISTINCT FROM stamp THEN
        INSERT INTO retainers_dataversion (workspace_id, version) VALUES (ws, 1)
        ON CONFLICT (workspace_id) DO UPDATE SET version = retainers_dataversion.version + 1;
        PERFORM set_config(guard, stamp, true);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
"""

DROP_FUNCTION_SQL = "DROP FUNCTION retainers_data_changed();"

# People belong to no workspace, yet pages print their names (a task's assignee, a note's author):
# renaming someone moves the version of every workspace they are a member or a contact of.
PEOPLE_SQL = f"""
CREATE OR REPLACE FUNCTION retainers_person_changed() RETURNS trigger AS $$
BEGIN
    INSERT INTO retainers_dataversion (workspace_id, version)
    SELECT workspace_id, 1 FROM (
        SELECT workspace_id FROM retainers_membership WHERE user_id = NEW.id
        UNION SELECT workspace_id FROM clients_contact WHERE user_id = NEW.id
    ) AS theirs
    ON CONFLICT (workspace_id) DO UPDATE SET version = retainers_dataversion.version + 1;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE CONSTRAINT TRIGGER {TRIGGER} AFTER UPDATE ON retainers_user
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (OLD.name IS DISTINCT FROM NEW.name OR OLD.email IS DISTINCT FROM NEW.email)
    EXECUTE FUNCTION retainers_person_changed();
"""

DROP_PEOPLE_SQL = f"""
DROP TRIGGER {TRIGGER} ON retainers_user;
DROP FUNCTION retainers_person_changed();
"""


def track(table: str, *, events: str = "INSERT OR UPDATE OR DELETE") -> migrations.RunSQL:
    """The migration operation that makes writes to `table` move its workspace's data version."""
    return migrations.RunSQL(
        f"CREATE CONSTRAINT TRIGGER {TRIGGER} AFTER {events} ON {table} "
        f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION retainers_data_changed();",
        f"DROP TRIGGER {TRIGGER} ON {table};",
    )


CODE_DIRS = [
    "retainers",
    "clients",
    "delivery",
    "billing",
    "renewals",
    "communication",
    "portal",
    "dashboard",
    "templates",
]


@functools.cache
def code_fingerprint() -> str:
    """A digest of the code that builds page parts: read once per process (1.6 MB, a few ms)."""
    digest = hashlib.blake2b(digest_size=8)
    for folder in CODE_DIRS:
        for path in sorted((settings.BASE_DIR / folder).rglob("*")):
            if path.suffix in {".py", ".html"} and "migrations" not in path.parts:
                digest.update(str(path.relative_to(settings.BASE_DIR)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def data_version(workspace: Workspace | int) -> int:
    pk = workspace if isinstance(workspace, int) else workspace.pk
    return DataVersion.objects.filter(workspace_id=pk).values_list("version", flat=True).first() or 0


class PageCache:
    """The cached parts of one request's page: the data version is read once, on first use."""

    def __init__(self, workspace: Workspace, *, version: int | None = None) -> None:
        """`version`: the workspace's data version when the request already read it (with another
        query, before building anything), else it is read on first use."""
        self.workspace = workspace
        self.seconds = settings.PAGE_CACHE_SECONDS
        self._version: int | None = version

    def get(self, name: str, key: Iterable[object], build: Callable[[], T]) -> T:
        """The part `name` for `key` (values with a stable repr: dates, strings, ids), built on a miss."""
        if self.seconds <= 0:
            return build()
        if self._version is None:
            self._version = data_version(self.workspace)
        digest = hashlib.blake2b(repr(tuple(key)).encode(), digest_size=16).hexdigest()
        cache_key = f"part:{code_fingerprint()}:{self.workspace.pk}:{self._version}:{name}:{digest}"
        value = cache.get(cache_key)
        if value is None:
            value = build()
            cache.set(cache_key, value, self.seconds)
        return value
