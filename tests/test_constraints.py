"""The database holds the invariants: each is refused by PostgreSQL itself, whatever writes the row.

Every case inserts a raw copy of a valid row (INSERT … SELECT, through `cursor.execute`, so no
form, service or model code runs) with one column made bad, and expects an IntegrityError from
the named constraint. The same copy with only the harmless changes goes in: the bad column, and
nothing else, is what the database refuses.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal as D

import pytest
from django.db import IntegrityError, connection, models, transaction

from billing import services as billing
from billing.models import Invoice, Payment
from clients import services as clients
from clients.models import Amendment, Client, Plan, Retainer
from delivery import services as delivery
from delivery.models import LedgerEntry, Period, WorkItem
from renewals import services as renewals
from renewals.models import Renewal
from retainers.models import Workspace
from tests import factories

pytestmark = pytest.mark.django_db


def insert_copy(model: type[models.Model], pk: int, /, **columns: str) -> None:
    """INSERT a copy of row `pk` of `model`'s table, with `columns` set to the given SQL expressions."""
    quote = connection.ops.quote_name
    names = [f.column for f in model._meta.concrete_fields if not f.primary_key]
    unknown = set(columns) - set(names)
    assert not unknown, unknown
    values = [columns.get(name, quote(name)) for name in names]
    table = quote(model._meta.db_table)
    sql = f"INSERT INTO {table} ({', '.join(map(quote, names))}) SELECT {', '.join(values)} FROM {table} WHERE id = %s"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [pk])


def refused_by(model: type[models.Model], pk: int, /, **columns: str) -> str | None:
    """The name of the constraint that refused the copy, or None if it went in."""
    try:
        insert_copy(model, pk, **columns)
    except IntegrityError as exc:
        return exc.__cause__.diag.constraint_name
    return None


@pytest.fixture
def rows(workspace, alice) -> dict[type[models.Model], int]:
    """One valid row of each table with an invariant, made through the services."""
    client = factories.ClientFactory(workspace=workspace, name="Acme Corp")
    retainer = factories.make_retainer(client=client, starts_on=date(2026, 1, 1), rollover_cap=D("5"))
    item = delivery.record_delivery(
        retainer=retainer, delivered_on=date(2026, 1, 5), quantity=D("2"), description="Workshop", actor=alice
    )
    amendment = delivery.amend_retainer(
        retainer=retainer, terms={"units_per_period": D("12")}, reason="More", actor=alice
    )
    renewal = renewals.open_renewal(retainer=retainer, today=retainer.term_ends_on - timedelta(days=20))
    billing.bill_workspace(workspace_id=workspace.pk, as_of=date(2026, 1, 1), deliver=False)
    invoice = Invoice.objects.get(retainer=retainer)
    payment = billing.record_payment(invoice=invoice, amount_minor=1000, method="bank_transfer", actor=alice)
    plan = clients.create_plan(workspace=workspace, name="Standard", terms=retainer.terms())
    return {
        Workspace: workspace.pk,
        Client: client.pk,
        Plan: plan.pk,
        Retainer: retainer.pk,
        Amendment: amendment.pk,
        Renewal: renewal.pk,
        Period: Period.objects.get(retainer=retainer).pk,
        WorkItem: item.pk,
        LedgerEntry: LedgerEntry.objects.get(work_item=item).pk,
        Invoice: invoice.pk,
        Payment: payment.pk,
    }


# What makes a copy of the valid row acceptable (other unique constraints), per table.
HARMLESS: dict[type[models.Model], dict[str, str]] = {
    Workspace: {"slug": "slug || '-copy'"},
    Client: {"name": "name || ' copy'"},
    Plan: {"name": "name || ' copy'"},
    Retainer: {},
    Amendment: {"applied_at": "now()"},  # one pending amendment per retainer
    Renewal: {"term_ends_on": "term_ends_on + 365"},  # one renewal per term
    Period: {"seq": "seq + 100", "status": "'closed'"},  # one open period per retainer
    WorkItem: {},
    LedgerEntry: {},
    Invoice: {"number": "''", "kind": "'manual'"},  # one invoice per period and number
    Payment: {},
}

TERMS = (Plan, Retainer, Amendment, Renewal)
TERMS_CASES = [
    ("rollover_terms", {"rollover_cap": "NULL"}),  # a rollover needs a cap…
    ("rollover_terms", {"rollover_expiry_periods": "NULL"}),  # … and an expiry
    ("rollover_terms", {"rollover_cap": "0"}),
    ("rollover_terms", {"model": "'fixed'"}),  # only a rollover has them
    ("deliverables_terms", {"deliverables": """'["Report"]'::jsonb"""}),  # deliverables only for that model
    ("deliverables_terms", {"deliverables_carry": "true"}),
    ("deliverables_terms", {"extra_deliverable_price_minor": "100"}),
    ("prices_not_negative", {"price_minor": "-1"}),
    ("prices_not_negative", {"overage_rate_minor": "-1"}),
    ("currency_code", {"currency": "'gbp'"}),
    ("currency_code", {"currency": "'US'"}),
]
CASES = [(model, f"{model._meta.model_name}_{name}", bad) for model in TERMS for name, bad in TERMS_CASES]
CASES += [
    (Client, "client_name_unique", {"name": "upper(name)"}),  # unique per workspace, ignoring case
    (Client, "client_name_unique", {"name": "lower(name)"}),
    (Workspace, "workspace_currency_code", {"currency": "'usd'"}),
    (Period, "period_prices_not_negative", {"price_minor": "-1"}),
    (Period, "period_prices_not_negative", {"extra_deliverable_price_minor": "-5"}),
    (Period, "period_currency_code", {"currency": "'1BP'"}),
    (LedgerEntry, "ledger_quantity_not_zero", {"quantity": "0"}),
    (WorkItem, "workitem_quantity_positive", {"quantity": "0"}),
    (WorkItem, "workitem_quantity_positive", {"quantity": "-1"}),
    (Invoice, "invoice_total_is_subtotal_plus_tax", {"total_minor": "total_minor + 1"}),
    (Invoice, "invoice_total_is_subtotal_plus_tax", {"tax_minor": "tax_minor - 1"}),
    (Invoice, "invoice_currency_code", {"currency": "'Gbp'"}),
    (Payment, "payment_amount_positive", {"amount_minor": "0"}),
    (Payment, "payment_amount_positive", {"amount_minor": "-1000"}),
    (Payment, "payment_currency_code", {"currency": "''"}),
]


@pytest.mark.parametrize(("model", "constraint", "bad"), CASES, ids=[f"{c}-{n}" for n, (_, c, _) in enumerate(CASES)])
def test_the_database_refuses_a_bad_row_inserted_raw(rows, model, constraint, bad):
    pk = rows[model]
    assert refused_by(model, pk, **{**HARMLESS[model], **bad}) == constraint
    before = model.objects.count()
    assert refused_by(model, pk, **HARMLESS[model]) is None  # the copy itself is fine
    assert model.objects.count() == before + 1


def test_a_negative_ledger_quantity_is_fine_but_zero_is_not(rows):
    # Debits are negative: only a zero says nothing.
    assert refused_by(LedgerEntry, rows[LedgerEntry], quantity="-0.01") is None
    assert refused_by(LedgerEntry, rows[LedgerEntry], quantity="0.00") == "ledger_quantity_not_zero"


def test_client_names_may_repeat_across_workspaces(rows, other_workspace):
    assert refused_by(Client, rows[Client], workspace_id=str(other_workspace.pk), name="upper(name)") is None
