"""The second wall: PostgreSQL row-level security on every tenant table (issue 16).

Every table with a `workspace_id` column carries the policy `WORKSPACE_POLICY` (built by
`policy_sql`, applied by each app's `row_level_security` migration) and forces it on its owner, so
a query that forgets its `for_workspace(...)` returns nothing instead of another tenant's rows. The
policy compares `workspace_id` with three session settings on the database connection, which this
module alone writes:

- `app.workspace_id`: the workspace a request, task or command works for (`use_workspace`);
- `app.cross_tenant`: 'on' inside `cross_tenant(reason)`, the one named, logged bypass, for the
  few scans that find which workspaces have work due (and migrations, `seed_demo`);
- `app.user_id`: the signed-in person, so `Membership` rows of their own are visible before a
  workspace is chosen (the workspace switcher, `workspace_view`'s membership check).

`wall()` clears all three (nothing visible): the request middleware, the Celery task base class and
`TenantCommand` run everything inside it, and restore what was there before on the way out, so a
persistent connection never carries one request's workspace into the next. docs/tenancy.md
explains the design and how tests run under it.

The settings are written with the raw driver connection: they are not data queries, and the
query-count guards of the test suite count data queries only.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from celery import Task
from django.core.management.base import BaseCommand
from django.db import connection
from django.db.models import Model

logger = logging.getLogger("retainers.tenancy")

WORKSPACE = "app.workspace_id"
CROSS_TENANT = "app.cross_tenant"
USER = "app.user_id"

POLICY_NAME = "workspace_wall"

# Tables with a workspace_id column that are not tenant data, each with its reason.
NOT_HELD = {
    "retainers_dataversion": "the page cache's change counters, one per workspace, written by triggers; "
    "no tenant's data, and a number leaks nothing",
}
MEMBER_POLICY_NAME = "own_rows"

type Settings = tuple[str, str, str]  # (workspace id, cross tenant, user id), '' when unset

# One round trip: read the three settings as they were and write the new ones (a NULL keeps one).
# PostgreSQL evaluates a select list left to right, so the first three columns are the old values.
_SWAP = (
    f"SELECT coalesce(current_setting('{WORKSPACE}', true), ''), coalesce(current_setting('{CROSS_TENANT}', true), ''), "
    f"coalesce(current_setting('{USER}', true), ''), "
    f"set_config('{WORKSPACE}', coalesce(%s, current_setting('{WORKSPACE}', true), ''), false), "
    f"set_config('{CROSS_TENANT}', coalesce(%s, current_setting('{CROSS_TENANT}', true), ''), false), "
    f"set_config('{USER}', coalesce(%s, current_setting('{USER}', true), ''), false)"
)


def _swap(workspace: str | None, cross: str | None, user: str | None) -> Settings:
    """Write the settings given (None keeps one as it is); the three as they were before."""
    connection.ensure_connection()
    with connection.connection.cursor() as cursor:
        cursor.execute(_SWAP, [workspace, cross, user])
        row = cursor.fetchone()
    return (row[0], row[1], row[2])


def current() -> Settings:
    """The three settings as the connection holds them now."""
    return _swap(None, None, None)


def _restore(settings: Settings) -> None:
    """Put the settings back, unless the connection is gone (a new one starts with none) or its
    transaction failed (its rollback takes back what was set inside it; the error is what matters)."""
    raw = connection.connection
    if raw is None or raw.closed:
        return
    from psycopg.pq import TransactionStatus

    if raw.info.transaction_status == TransactionStatus.INERROR:
        return
    _swap(*settings)


@contextmanager
def _settings(workspace: str | None, cross: str | None, user: str | None) -> Iterator[None]:
    if connection.connection is None and (workspace, cross, user) == ("", "", ""):
        # Not connected: a new connection starts with no settings, which is the wall. Connecting
        # only to say so would turn "the database is down" into an error here, before the caller
        # can answer it its own way (receive_email's exit code 75).
        previous: Settings = ("", "", "")
    else:
        previous = _swap(workspace, cross, user)
    try:
        yield
    finally:
        _restore(previous)


def _id(value: Model | int | None) -> str:
    if value is None:
        return ""
    return str(value.pk if isinstance(value, Model) else int(value))


@contextmanager
def wall(*, user: Model | int | None = None) -> Iterator[None]:
    """Nothing of any tenant visible (only the `user`'s own memberships): where every request,
    task and command starts."""
    with _settings("", "", _id(user)):
        yield


@contextmanager
def use_workspace(workspace: Model | int) -> Iterator[None]:
    """The block sees and writes only `workspace`'s rows (any bypass is off inside it)."""
    with _settings(_id(workspace), "", None):
        yield


@contextmanager
def cross_tenant(reason: str) -> Iterator[None]:
    """The one bypass of the wall: every workspace's rows for this block only, logged with its
    reason. Keep the block to the scan that needs it; per-workspace work inside it should run in
    `use_workspace`, which turns the bypass off again."""
    if not reason.strip():
        raise ValueError("cross_tenant needs a reason")
    logger.debug("cross-tenant: %s", reason)
    with _settings(None, "on", None):
        yield


def held(iterable: Iterable[Any], workspace: Model | int) -> Iterator[Any]:
    """Iterate in `workspace`: a streamed response's body is read after the view has returned. The
    workspace is set from the first item to the last (or until the response closes the stream)."""
    with use_workspace(workspace):
        yield from iterable


class TenantCommand(BaseCommand):
    """Base of the project's management commands: the command runs with the wall up (it then picks
    its workspaces through named `cross_tenant` scans), whatever the connection held before."""

    # Set by a command that works across workspaces as a whole (seed_demo): its named bypass.
    cross_tenant_reason = ""

    def execute(self, *args: Any, **options: Any) -> str | None:
        with wall():
            if not self.cross_tenant_reason:
                return super().execute(*args, **options)
            with cross_tenant(self.cross_tenant_reason):
                return super().execute(*args, **options)


# --- The policy, as SQL the migrations run -----------------------------------------------

_MATCHES = f"workspace_id = nullif(current_setting('{WORKSPACE}', true), '')::bigint"
_BYPASS = f"coalesce(current_setting('{CROSS_TENANT}', true), '') = 'on'"
WORKSPACE_POLICY = f"({_MATCHES} OR {_BYPASS})"


def policy_sql(tables: Iterable[str]) -> str:
    """Row-level security on each table, forced on its owner, with the workspace policy."""
    statements = []
    for table in tables:
        statements += [
            f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY',
            f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY',
            f'CREATE POLICY {POLICY_NAME} ON "{table}" USING {WORKSPACE_POLICY} WITH CHECK {WORKSPACE_POLICY}',
        ]
    return ";\n".join(statements)


def drop_policy_sql(tables: Iterable[str]) -> str:
    statements = []
    for table in tables:
        statements += [
            f'DROP POLICY IF EXISTS {POLICY_NAME} ON "{table}"',
            f'ALTER TABLE "{table}" NO FORCE ROW LEVEL SECURITY',
            f'ALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY',
        ]
    return ";\n".join(statements)


# A person reads their own memberships (and, as a client's contact, their own contact records)
# before a workspace is chosen: read only, and only rows with their user id.
def own_rows_policy_sql(table: str) -> str:
    return (
        f'CREATE POLICY {MEMBER_POLICY_NAME} ON "{table}" FOR SELECT '
        f"USING (user_id = nullif(current_setting('{USER}', true), '')::bigint)"
    )


def drop_own_rows_policy_sql(table: str) -> str:
    return f'DROP POLICY IF EXISTS {MEMBER_POLICY_NAME} ON "{table}"'


MEMBER_POLICY_SQL = own_rows_policy_sql("retainers_membership")
DROP_MEMBER_POLICY_SQL = drop_own_rows_policy_sql("retainers_membership")


# --- Migrations run with the bypass --------------------------------------------------------


def migrations_bypass_on(using: str = "default", **kwargs: Any) -> None:
    """pre_migrate: data migrations read and write every workspace's rows."""
    if using != connection.alias:
        return
    if current()[1] != "on":
        logger.debug("cross-tenant: migrate")
        _swap(None, "on", None)


def migrations_bypass_off(using: str = "default", **kwargs: Any) -> None:
    """post_migrate: the bypass ends with the migrations (the signal comes once per app; idempotent)."""
    if using != connection.alias:
        return
    _swap(None, "", None)


class TenancyMiddleware:
    """Every request starts behind the wall (only the signed-in person's memberships visible) and
    leaves the connection as it found it; `workspace_view` and `portal_view` then open their one
    workspace. After AuthenticationMiddleware."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        user = request.user if request.user.is_authenticated else None
        with wall(user=user):
            if user is not None and user.is_staff and request.path.startswith(_admin_prefix()):
                # Django's admin is the platform operator's view of every workspace (staff only).
                with cross_tenant("admin: a staff member's view of every workspace"):
                    return self.get_response(request)
            return self.get_response(request)


@functools.cache
def _admin_prefix() -> str:
    from django.urls import reverse

    return reverse("admin:index")


class WalledTask(Task):
    """The Celery app's task base class: every task starts behind the wall; a per-workspace task
    opens its workspace (`use_workspace`), a scan names its `cross_tenant` block."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with wall():
            return super().__call__(*args, **kwargs)


def hold_stream(response: Any, workspace: Model | int) -> Any:
    """A streamed response (the CSV export) reads its rows after the view returned: in `workspace`."""
    from django.http import FileResponse, StreamingHttpResponse

    if isinstance(response, StreamingHttpResponse) and not isinstance(response, FileResponse):
        response.streaming_content = held(cast(Iterable[Any], response.streaming_content), workspace)
    return response


# --- Decorators for the scheduled work ------------------------------------------------------


def scan[**P, R](reason: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A job that works across workspaces (a sweep, a fan-out): runs in `cross_tenant(reason)`.
    The per-workspace work it calls inline is `per_workspace`, so the wall is up again there."""

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with cross_tenant(reason):
                return function(*args, **kwargs)

        return wrapper

    return decorate


def per_workspace[**P, R](function: Callable[P, R]) -> Callable[P, R]:
    """One workspace's work (given as the keyword `workspace_id` or `workspace`): runs in it."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        workspace = kwargs.get("workspace_id", kwargs.get("workspace"))
        if not isinstance(workspace, Model | int):
            raise TypeError(f"{function.__qualname__} needs workspace_id= or workspace= to open its workspace")
        with use_workspace(workspace):
            return function(*args, **kwargs)

    return wrapper


def per_row[**P, R](model_path: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A task given one row's id (its first argument), e.g. an invoice to deliver: look up the
    row's workspace (by primary key, across tenants: the one thing it may see of other tenants),
    then run in that workspace. A row that is gone runs behind the wall and finds nothing."""

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            from django.apps import apps

            model = apps.get_model(model_path)
            pk = args[0] if args else next(iter(kwargs.values()))
            with cross_tenant(f"{function.__module__}.{function.__qualname__}: the workspace of {model_path} {pk}"):
                workspace_id = model._default_manager.filter(pk=pk).values_list("workspace_id", flat=True).first()
            if workspace_id is None:
                return function(*args, **kwargs)
            with use_workspace(workspace_id):
                return function(*args, **kwargs)

        return wrapper

    return decorate


def enter(workspace: Model | int) -> None:
    """The rest of this request (or task) works in `workspace`: for the public pages a signed or
    secret token opens (a pay link, an overage or renewal answer, a calendar feed), once the token
    has named its row. No context manager: `TenancyMiddleware` (or `WalledTask`) restores what the
    connection held when the request began. Inside a bypass (a test's set-up, a scan that calls it)
    it changes nothing: the block that set the bypass owns the settings."""
    if current()[1] != "on":
        _swap(_id(workspace), "", None)
