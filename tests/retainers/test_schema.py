"""Schema rules from DESIGN.md that make row-level security and Citus possible."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.db import connection, models

TENANT_FK = "workspace"


def tenant_models() -> list[type[models.Model]]:
    found = []
    for model in apps.get_models():
        field = next((f for f in model._meta.get_fields() if f.name == TENANT_FK and f.many_to_one), None)
        if field is not None:
            found.append(model)
    return found


def _constraint_fields(constraint: models.UniqueConstraint) -> set[str]:
    if constraint.fields:
        return set(constraint.fields)
    names = set()
    for expression in constraint.expressions:
        expression = models.F(expression) if isinstance(expression, str) else expression
        names |= {ref.name for ref in _refs(expression)}
    return names


def _refs(expression) -> list[models.F]:
    if isinstance(expression, models.F):
        return [expression]
    return [ref for source in expression.get_source_expressions() for ref in _refs(source)]


def test_project_has_tenant_tables():
    names = {m._meta.label for m in tenant_models()}
    assert {"retainers.Membership", "retainers.Invitation", "clients.Client", "clients.Contact"} <= names


@pytest.mark.parametrize("model", tenant_models(), ids=lambda m: m._meta.label)
def test_workspace_fk_is_required_and_points_at_workspace(model):
    field = model._meta.get_field(TENANT_FK)
    assert not field.null, f"{model._meta.label}.workspace must be NOT NULL"
    assert field.related_model._meta.label == "retainers.Workspace"
    assert field.db_index


@pytest.mark.parametrize("model", tenant_models(), ids=lambda m: m._meta.label)
def test_every_unique_rule_includes_workspace(model):
    for constraint in model._meta.constraints:
        if isinstance(constraint, models.UniqueConstraint):
            assert TENANT_FK in _constraint_fields(constraint), f"{constraint.name} lacks workspace"
    for together in model._meta.unique_together:
        assert TENANT_FK in together, f"{model._meta.label} unique_together {together} lacks workspace"
    for field in model._meta.local_fields:
        assert not field.unique or field.primary_key, f"{model._meta.label}.{field.name} is unique on its own"


@pytest.mark.django_db
@pytest.mark.parametrize("model", tenant_models(), ids=lambda m: m._meta.label)
def test_workspace_column_is_not_null_in_the_database(model):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT is_nullable FROM information_schema.columns WHERE table_name = %s AND column_name = 'workspace_id'",
            [model._meta.db_table],
        )
        assert cursor.fetchone() == ("NO",)
