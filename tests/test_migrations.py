"""The constraint migrations run on a copy of the demo data without loss.

The demo and two bench workspaces are seeded, the schema is taken back to the migrations before
the constraints (issue 10), then it is migrated forward: every row is still there, and the
constraints are in place. All inside the test's transaction (PostgreSQL's DDL is
transactional), so the test database is as it was afterwards.
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

# The last migration of each app before the database held the invariants.
BEFORE = [
    ("retainers", "0003_data_version"),
    ("clients", "0007_contact_timezone"),
    ("delivery", "0005_booking"),
    ("billing", "0004_money_path"),
    ("renewals", "0002_data_version"),
]
# The migrations that add them, and one constraint of each table they cover.
ADDED = {
    ("retainers", "0004_currency_code"): {"retainers_workspace": "workspace_currency_code"},
    ("clients", "0008_terms_and_client_name_constraints"): {
        "clients_client": "client_name_unique",
        "clients_plan": "plan_rollover_terms",
        "clients_retainer": "retainer_deliverables_terms",
        "clients_amendment": "amendment_prices_not_negative",
    },
    ("delivery", "0006_ledger_and_price_constraints"): {
        "delivery_ledgerentry": "ledger_quantity_not_zero",
        "delivery_workitem": "workitem_quantity_positive",
        "delivery_period": "period_currency_code",
    },
    ("billing", "0005_money_constraints"): {
        "billing_invoice": "invoice_total_is_subtotal_plus_tax",
        "billing_payment": "payment_amount_positive",
    },
    ("renewals", "0003_terms_constraints"): {"renewals_renewal": "renewal_rollover_terms"},
}


def migrate(targets: list[tuple[str, str]]) -> None:
    # Deferred triggers (foreign keys, the data version) queued by the seed would make ALTER TABLE
    # refuse ("pending trigger events"): run them now, as a commit would.
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def row_counts() -> dict[str, int]:
    tables = sorted(
        model._meta.db_table for model in apps.get_models() if model._meta.managed and not model._meta.proxy
    )
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        counts = {}
        for table in tables:
            cursor.execute(f"SELECT count(*) FROM {quote(table)}")
            counts[table] = cursor.fetchone()[0]
    return counts


def constraint_names(table: str) -> set[str]:
    with connection.cursor() as cursor:
        return set(connection.introspection.get_constraints(cursor, table))


def test_the_constraint_migrations_keep_every_row_of_the_demo_and_bench_data():
    leaves = MigrationExecutor(connection).loader.graph.leaf_nodes()
    assert set(ADDED) <= {node for node in MigrationExecutor(connection).loader.graph.nodes}
    # Seeded with today's models, then taken back: the seed writes every column today's models
    # have, and later migrations add columns (an older schema would refuse the seed's INSERTs).
    call_command("seed_demo", workspaces=2, clients=6, months=4, stdout=StringIO())
    before = row_counts()
    assert before["delivery_ledgerentry"] > 500 and before["billing_invoice"] > 20 and before["clients_client"] > 20
    migrate(BEFORE)
    for (_, _), tables in ADDED.items():
        for table, name in tables.items():
            assert name not in constraint_names(table), (table, name)
    assert row_counts() == before

    migrate(leaves)
    assert row_counts() == before
    for tables in ADDED.values():
        for table, name in tables.items():
            assert name in constraint_names(table), (table, name)
