"""Every query on a tenant table names its workspace (issue 16, "Scale-out on paper, checked in code").

Citus, distributed by `workspace_id`, routes a statement to one node only when it says which
workspace it is about; PostgreSQL's row-level policies need the same. This test captures every SQL
statement of a crawl of the demo (every consultant page as the owner, every portal page as a
client's contact), of a billing run with its deliveries and emails and of the other scheduled jobs
(dunning, renewals, reminders, closing periods), and fails on a statement
that reads or writes a tenant table without a `workspace_id` condition, unless it is one of the
cross-tenant scans allow-listed below, each with its reason. docs/scale-out.md explains the rule.

The rule, per statement (a statement is a SELECT, UPDATE, DELETE or INSERT; its subqueries are
checked as part of it):

- a *tenant table* is one with a `workspace_id` column, found by introspecting the database;
- every tenant table a statement reads FROM (the outer query's or a subquery's), UPDATEs or
  DELETEs FROM must carry `workspace_id = …` or `workspace_id IN (…)` under its own name or alias;
- a tenant table brought in by a JOIN needs no condition of its own: Django joins along foreign
  keys, and every foreign key between tenant tables stays inside one workspace (a row and the
  row it points to share `workspace_id`: the services write it so, and the test checks every such
  link of the data it crawled), so the join cannot reach another tenant. (On Citus the join
  condition gains `workspace_id` too, and a composite foreign key makes the database hold it.)
- an INSERT must name the `workspace_id` column (it always does: the column is NOT NULL).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing import paylinks, sending
from billing import services as billing
from billing.models import Invoice
from clients.models import Contact
from demo import northwind
from retainers import outbox
from retainers.models import User, Workspace
from tests.retainers.test_hostile_values import route_urls

pytestmark = pytest.mark.slow


def tenant_tables() -> set[str]:
    """Every table with a `workspace_id` column, read from the database itself."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND column_name = 'workspace_id'"
        )
        return {name for (name,) in cursor.fetchall()}


_KEYWORDS = "(?:WHERE|INNER|LEFT|RIGHT|FULL|CROSS|JOIN|ON|SET|GROUP|ORDER|LIMIT|OFFSET|FOR|WINDOW|HAVING|UNION|EXCEPT|INTERSECT|RETURNING|FETCH)"
# A table as the statement names it: "name" or "name" ALIAS (Django's aliases: U0, T3, V1, ...).
_TABLE = rf'"(?P<table>\w+)"(?!\.)(?:\s+(?:AS\s+)?(?P<alias>"[A-Z]\d+"|(?!{_KEYWORDS}\b)[A-Z]\w*))?'
_ROOTS = re.compile(rf"(?:\bFROM|^\s*UPDATE)\s+{_TABLE}")
_CURSOR = re.compile(r'^\s*DECLARE\s+"?\w+"?\s+.*?\bCURSOR\s+(?:WITH(?:OUT)?\s+HOLD\s+)?FOR\s+', re.S)
_INSERT = re.compile(r'^\s*INSERT INTO "(?P<table>\w+)"\s*\((?P<columns>[^)]*)\)')


def _scoped(sql: str, name: str) -> bool:
    """Whether the statement holds a `workspace_id = …` or `workspace_id IN (…)` condition on `name`."""
    return re.search(rf'(?<![\w"]){re.escape(name)}\."workspace_id"\s*(?:=|IN\b)', sql) is not None


def unscoped_tables(sql: str, tenants: set[str]) -> list[str]:
    """The tenant tables of the statement that are read or written without their workspace."""
    sql = _CURSOR.sub("", sql, count=1)  # `.iterator()` reads through a server-side cursor
    insert = _INSERT.match(sql)
    if insert:
        if insert["table"] in tenants and '"workspace_id"' not in insert["columns"]:
            return [insert["table"]]
        return []
    if not re.match(r"\s*(?:SELECT|UPDATE|DELETE|WITH)\b", sql):
        return []  # SAVEPOINT, SET, advisory locks: no table
    missing = []
    for match in _ROOTS.finditer(sql):
        table, alias = match["table"], match["alias"]
        if table not in tenants:
            continue
        name = alias or f'"{table}"'
        if _scoped(sql, name):
            continue
        if _depth(sql, match.start()) > 0 and _correlated(sql, name):
            continue  # a subquery joined to its outer row: the join rule
        missing.append(table)
    return missing


def _depth(sql: str, position: int) -> int:
    """How many parentheses are open at `position` (0: the statement itself, not a subquery)."""
    return sql.count("(", 0, position) - sql.count(")", 0, position)


_COLUMN = r'(?:"\w+"|[A-Z]\w*)\."\w+"'


def _correlated(sql: str, name: str) -> bool:
    """Whether a subquery's table is compared column to column with another table's row: a
    correlated subquery (Django's Subquery/Exists over OuterRef), which is a join."""
    own = re.escape(name)
    for left, right in re.findall(rf"({_COLUMN})\s*=\s*\(?({_COLUMN})", sql):
        sides = [re.match(rf"{own}\.", side) is not None for side in (left, right)]
        if sides[0] != sides[1]:
            return True
    return False


@dataclass(frozen=True)
class CrossTenantScan:
    """Statements allowed without a workspace condition: what they are and why they may be."""

    name: str
    pattern: str  # a regular expression the statement matches
    reason: str
    pages: bool  # also allowed while serving a page (else only in the scheduled jobs)


# The allow-list, each entry with its reason; docs/scale-out.md lists them with what each becomes
# on Citus. Pages get only the first: a view reaches every row through `for_workspace` (or the
# portal's client), so an unscoped lookup by id in a view is exactly the leak this test exists for.
CROSS_TENANT_SCANS = [
    CrossTenantScan(
        "children of a loaded row",
        r'FROM "(?P<t>\w+)"[^;]*? WHERE [^;]*?"(?P=t)"\."(?!id")\w+_id" (?:= \d+|IN \()',
        "a reverse relation or prefetch (invoice.lines, note.revisions, message attachments) of a row "
        "that was itself read through its workspace; a child shares its parent's workspace_id. On Citus "
        "these become related managers that add workspace_id (the django-multitenant approach).",
        pages=True,
    ),
    CrossTenantScan(
        "a task's row by primary key",
        r'"(?P<t>\w+)"\."id" (?:= \d+|IN \()',
        "Celery tasks receive ids (docs/conventions.md: an unscoped get(pk=...) belongs only in tasks and "
        "commands) and the claims and status updates that follow name the same id. On Citus a lookup by "
        "id alone is sent to every shard; task arguments gain the workspace_id to route it.",
        pages=False,
    ),
    CrossTenantScan(
        "the delivery sweep",
        r'FROM "billing_invoice" WHERE \(?"billing_invoice"\."(?:delivered_at" IS NULL AND "billing_invoice"\.'
        r'"delivery_due_at|pdf_stale_at)" <=',
        "billing.sending.deliver_due finds invoices, in every workspace, whose delivery or re-render a lost "
        "task left undone: cross-tenant by design (a sweep), on an index of its own.",
        pages=False,
    ),
    CrossTenantScan(
        "the receipt sweep",
        r'FROM "billing_payment" WHERE \("billing_payment"\."receipt_due_at" <=',
        "the receipts a lost follow-up never sent, in every workspace: the same sweep.",
        pages=False,
    ),
]


@dataclass
class Finding:
    sql: str
    tables: list[str]
    where: str


def findings_of(queries: Iterable[dict[str, str]], tenants: set[str], where: str, *, page: bool) -> list[Finding]:
    scans = [scan for scan in CROSS_TENANT_SCANS if scan.pages or not page]
    found = []
    for query in queries:
        sql = query["sql"]
        tables = unscoped_tables(sql, tenants)
        if not tables or any(re.search(scan.pattern, sql, re.S) for scan in scans):
            continue
        found.append(Finding(sql, tables, where))
    return found


def cross_workspace_links() -> dict[str, int]:
    """For each foreign key from a tenant table to another, the rows whose parent is in another
    workspace (the join rule above rests on there being none)."""
    found = {}
    with connection.cursor() as cursor:
        for model in apps.get_models():
            if not any(f.name == "workspace" for f in model._meta.concrete_fields):
                continue
            for field in model._meta.concrete_fields:
                parent = field.related_model if field.is_relation and field.many_to_one else None
                if parent is None or not any(f.name == "workspace" for f in parent._meta.concrete_fields):
                    continue
                child_table, parent_table = model._meta.db_table, parent._meta.db_table
                cursor.execute(
                    f'SELECT count(*) FROM "{child_table}" c JOIN "{parent_table}" p ON c."{field.column}" = p."{field.target_field.column}" '
                    'WHERE c."workspace_id" <> p."workspace_id"'
                )
                (count,) = cursor.fetchone()
                if count:
                    found[f"{child_table}.{field.column}"] = count
    return found


@pytest.fixture
def demo(db, settings, tmp_path, django_capture_on_commit_callbacks) -> SimpleNamespace:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.RATE_LIMITS_ENABLED = False
    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_demo", stdout=io.StringIO())
    workspace = Workspace.objects.get(slug=northwind.SLUG)
    contact = Contact.objects.select_related("client", "user").get(email=northwind.CONTACT)
    invoice = Invoice.objects.for_workspace(workspace).filter(client=contact.client, status="open").first()
    invoice = invoice or Invoice.objects.for_workspace(workspace).filter(status="open").first()
    assert invoice is not None
    tokens = {name: paylinks.pay_token(invoice) for name in ("billing_public:pay", "billing_public:pay_pdf")}
    return SimpleNamespace(
        workspace=workspace,
        owner=User.objects.get(email=northwind.OWNER),
        member=User.objects.get(email=northwind.TEAMMATE),
        contact=contact,
        tokens=tokens,
    )


def crawl(demo: SimpleNamespace, login) -> list[tuple[str, list[dict[str, str]]]]:
    """GET every consultant page as the owner and every portal page as the contact; the queries of each."""
    owner, contact = login(demo.owner), login(demo.contact.user)
    captured = []
    for name, url in route_urls(demo):
        if name.startswith("portal:"):
            browser = contact
        elif url.startswith(f"/w/{demo.workspace.slug}/"):
            browser = owner
        else:
            continue  # sign-in, sign-up and public pages: no workspace to scope by yet
        with CaptureQueriesContext(connection) as queries:
            response = browser.get(url)
        assert response.status_code < 500, url
        captured.append((f"GET {url}", list(queries.captured_queries)))
    return captured


def test_every_query_of_the_crawl_and_the_billing_run_names_its_workspace(
    demo, login, django_capture_on_commit_callbacks, time_machine
):
    tenants = tenant_tables()
    assert {
        "billing_invoice",
        "clients_client",
        "clients_message",
        "delivery_period",
        "retainers_membership",
    } <= tenants
    found: list[Finding] = []
    for where, queries in crawl(demo, login):
        found += findings_of(queries, tenants, where, page=True)

    # A billing run a month on: close periods, open the next, issue, render, email; then the outbox
    # and the delivery sweep, as the worker would run them.
    time_machine.move_to(demo.workspace.today() + timedelta(days=32))
    with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks(execute=True):
        summary = billing.run_billing(inline=True)
        sending.deliver_due()
        outbox.send_due_emails()
    assert summary.invoices > 0
    found += findings_of(queries.captured_queries, tenants, "billing run", page=False)

    # The other scheduled jobs, each as its command runs it (their fan-out tasks run eagerly here).
    for command in ("run_dunning", "run_renewals", "send_reminders", "close_periods"):
        with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks(execute=True):
            # --as-of: dunning and renewals then take every workspace, whatever its local hour now.
            as_of = ["--as-of", timezone.localdate().isoformat()] if command in ("run_dunning", "run_renewals") else []
            call_command(command, *as_of, stdout=io.StringIO())
        touched = [q for q in queries.captured_queries if any(f'"{t}"' in q["sql"] for t in tenants)]
        assert touched, f"{command} read no tenant table: the check would prove nothing"
        found += findings_of(queries.captured_queries, tenants, command, page=False)

    assert cross_workspace_links() == {}

    report = "\n".join(f"{f.where}: {', '.join(f.tables)}\n    ...{f.sql[f.sql.find(' FROM ') :][:600]}" for f in found)
    assert not found, f"{len(found)} statements lack a workspace_id condition:\n{report}"


@pytest.mark.parametrize(
    ("sql", "missing"),
    [
        ('SELECT "a"."id" FROM "billing_invoice" WHERE "billing_invoice"."id" = 5', ["billing_invoice"]),
        ('SELECT 1 FROM "billing_invoice" WHERE "billing_invoice"."workspace_id" = 5', []),
        (
            'SELECT 1 FROM "billing_invoice" INNER JOIN "clients_client" ON ("billing_invoice"."client_id" = '
            '"clients_client"."id") WHERE "billing_invoice"."workspace_id" = 5',
            [],
        ),
        (
            'SELECT 1 FROM "billing_invoice" WHERE ("billing_invoice"."workspace_id" = 5 AND '
            '"billing_invoice"."client_id" IN (SELECT U0."id" FROM "clients_client" U0 WHERE U0."name" = \'x\'))',
            ["clients_client"],
        ),
        (
            'SELECT 1 FROM "billing_invoice" WHERE "billing_invoice"."client_id" IN (SELECT U0."id" FROM '
            '"clients_client" U0 WHERE U0."workspace_id" IN (1, 2))',
            ["billing_invoice"],
        ),
        ('UPDATE "billing_invoice" SET "pdf" = \'\' WHERE "billing_invoice"."id" = 5', ["billing_invoice"]),
        (
            'UPDATE "billing_invoice" SET "pdf" = \'\' WHERE ("billing_invoice"."id" = 5 AND '
            '"billing_invoice"."workspace_id" = 3)',
            [],
        ),
        ('DELETE FROM "clients_client" WHERE "clients_client"."id" IN (1)', ["clients_client"]),
        ('INSERT INTO "clients_client" ("workspace_id", "name") VALUES (1, \'x\')', []),
        ('SELECT 1 FROM "retainers_user" WHERE "retainers_user"."id" = 1', []),
        ("SAVEPOINT s1", []),
        (
            'DECLARE "_django_curs_1_sync_2" NO SCROLL CURSOR WITH HOLD FOR SELECT "billing_invoice"."id" FROM '
            '"billing_invoice" WHERE "billing_invoice"."status" = \'open\'',
            ["billing_invoice"],
        ),
    ],
)
def test_the_rule_flags_exactly_the_unscoped_tables(sql, missing):
    tenants = {"billing_invoice", "clients_client"}
    assert unscoped_tables(sql, tenants) == missing
