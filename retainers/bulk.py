"""Bulk writes the ORM makes slow.

`QuerySet.bulk_update` sets each field with a CASE over every row of the batch: a statement
that grows with rows × fields, and that PostgreSQL evaluates per row (quadratic). Closing
200 periods at once spent most of its time there. `update_each` sends one
`UPDATE … FROM UNNEST(…)` instead, an array per column: PostgreSQL joins the values to the rows
by primary key (linear), and the whole batch is one statement and one round trip, with the
values prepared by each field as `save()` would. (One plain `UPDATE … WHERE pk = %s` per object,
pipelined, was the earlier way: a message and a statement per row, the billing run's largest
single cost after its inserts.)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.db.models.options import Options

# Rows per INSERT: its parameters are one array per column, so this bounds the statement's size only.
INSERT_CHUNK = 5_000

# Python values a field of each internal type stores as they are (what get_db_prep_save would
# return for them on PostgreSQL); any other value goes through the field.
_PLAIN: dict[str, tuple[type, ...]] = {
    "AutoField": (int,),
    "BigAutoField": (int,),
    "SmallAutoField": (int,),
    "BigIntegerField": (int,),
    "IntegerField": (int,),
    "SmallIntegerField": (int,),
    "PositiveBigIntegerField": (int,),
    "PositiveIntegerField": (int,),
    "PositiveSmallIntegerField": (int,),
    "BooleanField": (bool,),
    "CharField": (str,),
    "TextField": (str,),
    "DateField": (date,),
    "DateTimeField": (datetime,),
    "DecimalField": (Decimal,),
}


def insert_all[M: models.Model](objects: Sequence[M]) -> list[M]:
    """Insert new objects (all of one model) and set their primary keys: what
    `QuerySet.bulk_create` does, in a fraction of its Python time. One
    `INSERT … SELECT * FROM UNNEST(…) RETURNING pk` per chunk, as bulk_create itself sends on
    PostgreSQL, with each value prepared only when it is not already what the column stores (an
    int for an integer, a Decimal for a decimal, an aware datetime…): the billing run inserts
    about ten rows per invoice, and bulk_create spent more time preparing them than PostgreSQL
    took to write them. A model this does not cover (a field with its own placeholder or type,
    a primary key set by hand) goes to bulk_create."""
    if not objects:
        return list(objects)
    model = type(objects[0])
    meta = model._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    data_types = connection.data_types
    if (
        meta.pk is None
        or meta.parents
        or any(obj.pk is not None or type(obj) is not model for obj in objects)
        or any(hasattr(f, "get_placeholder_sql") or hasattr(f, "get_placeholder") for f in fields)
        or any(_stored_type(f).get_internal_type() not in data_types for f in fields)
    ):
        return model._default_manager.bulk_create(objects)
    kinds = []
    for field in fields:
        internal = _stored_type(field).get_internal_type()
        auto = bool(getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False))
        plain = () if auto else _PLAIN.get(internal, ())
        kinds.append((field, field.attname, plain, auto))
    db = connections[DEFAULT_DB_ALIAS]  # the connection itself, not the proxy: looked up once
    columns: list[list[Any]] = [[] for _ in fields]
    for obj in objects:
        obj._prepare_related_fields_for_save(operation_name="insert_all")  # type: ignore[attr-defined]  # django-stubs: the check save() and bulk_create make (a parent saved, its id copied)
        for (field, attname, plain, auto), column in zip(kinds, columns, strict=True):
            value = field.pre_save(obj, add=True) if auto else getattr(obj, attname)
            if value is None or type(value) in plain:  # exactly: a bool is an int, a datetime a date
                column.append(value)
            else:
                column.append(field.get_db_prep_save(value, db))
    quote = connection.ops.quote_name
    pk_column = meta.pk.column
    assert pk_column is not None  # a concrete primary key has its column
    names = ", ".join(quote(f.column) for f in fields)  # type: ignore[arg-type]  # django-stubs: a concrete field's column is never None
    # The column types without length or precision (varchar[], not varchar(12)[]), as bulk_create
    # writes them: assigning to the column checks each value, a cast would cut it short.
    arrays = ", ".join(f"%s::{(f.db_type(connection) or '').split('(')[0].strip()}[]" for f in fields)
    sql = f"INSERT INTO {quote(meta.db_table)} ({names}) SELECT * FROM UNNEST({arrays}) RETURNING {quote(pk_column)}"
    with db.cursor() as cursor:
        for start in range(0, len(objects), INSERT_CHUNK):
            cursor.execute(sql, [column[start : start + INSERT_CHUNK] for column in columns])
            for obj, (pk,) in zip(objects[start : start + INSERT_CHUNK], cursor.fetchall(), strict=True):
                obj.pk = pk
                obj._state.adding = False
                obj._state.db = db.alias
    return list(objects)


def update_each(objects: Sequence[models.Model], fields: Sequence[str]) -> None:
    """Write `fields` of each object (all of one model) to its row, by primary key. An object
    listed twice is written once, with its last values (as the per-row updates left it)."""
    if not objects:
        return
    meta = type(objects[0])._meta
    columns = [_stored_field(meta, name) for name in fields]
    if meta.pk is None:
        raise ValueError(f"{meta.label} has no primary key to update by")
    pk_column, pk_field = _stored_field(meta, meta.pk.name)
    by_pk = {obj.pk: obj for obj in objects}  # the last of each wins
    if None in by_pk:
        raise ValueError(f"an unsaved {meta.label} has no row to update")
    db = connections[DEFAULT_DB_ALIAS]
    values = [
        [field.get_db_prep_save(getattr(obj, field.attname), db) for obj in by_pk.values()] for _, field in columns
    ]
    quote = connection.ops.quote_name
    names = [f"c{n}" for n in range(len(columns))]
    assignments = ", ".join(f"{quote(column)} = v.{name}" for (column, _), name in zip(columns, names, strict=True))
    keys = [(pk_column, pk_field)]
    key_values: list[list[Any]] = [list(by_pk)]
    # A tenant row is matched on its workspace too: every statement names its workspace (RLS,
    # and the Citus distribution column; tests/test_workspace_scoping.py checks it).
    tenant = next((f for f in meta.concrete_fields if f.attname == "workspace_id"), None)
    if tenant is not None:
        keys.append(("workspace_id", tenant))
        key_values.append([obj.workspace_id for obj in by_pk.values()])  # type: ignore[attr-defined]  # a tenant model's column
    arrays = ", ".join(f"%s::{_base_type(_stored_type(field))}[]" for _, field in (*columns, *keys))
    table = quote(meta.db_table)
    key_names = ["pk", "ws"][: len(keys)]
    condition = " AND ".join(
        f"{table}.{quote(column)} = v.{name}" for (column, _), name in zip(keys, key_names, strict=True)
    )
    with db.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {assignments} FROM UNNEST({arrays}) AS v({', '.join([*names, *key_names])}) "
            f"WHERE {condition}",
            [*values, *key_values],
        )


def _stored_type(field: models.Field[Any, Any]) -> models.Field[Any, Any]:
    """The field whose type a column has: a foreign key's target, else the field itself."""
    return field.target_field if isinstance(field, models.ForeignKey) else field


def _base_type(field: models.Field[Any, Any]) -> str:
    """The field's type without its length or precision (varchar, numeric): the values are typed
    for the join, and assigning them to the column checks them as an UPDATE of one row would (a
    cast to varchar(12) would cut a longer value short instead of refusing it)."""
    return re.sub(r"\(.*\)", "", field.cast_db_type(connection) or "").strip()


def _stored_field(meta: Options[Any], name: str) -> tuple[str, models.Field[Any, Any]]:
    """The column and field of `name`, which must be stored in the model's own table (not a
    reverse relation or a many-to-many, which have no column there)."""
    field = meta.get_field(name)
    if not isinstance(field, models.Field) or not field.column:
        raise ValueError(f"{meta.label}.{name} has no column of its own to update")
    return field.column, field
