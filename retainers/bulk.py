"""Bulk writes the ORM makes slow.

`QuerySet.bulk_update` sets each field with a CASE over every row of the batch: a statement
that grows with rows × fields, and that PostgreSQL evaluates per row (quadratic). Closing
200 periods at once spent most of its time there. `update_each` sends one plain
`UPDATE … WHERE pk = %s` per object instead, pipelined by psycopg's `executemany` in one
round trip, with the values prepared by each field as `save()` would.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection, models
from django.db.models.options import Options


def update_each(objects: Sequence[models.Model], fields: Sequence[str]) -> None:
    """Write `fields` of each object (all of one model) to its row, by primary key."""
    if not objects:
        return
    meta = type(objects[0])._meta
    columns = [_stored_field(meta, name) for name in fields]
    if meta.pk is None:
        raise ValueError(f"{meta.label} has no primary key to update by")
    pk_column, _ = _stored_field(meta, meta.pk.name)
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(column)} = %s" for column, _ in columns)
    sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(pk_column)} = %s"
    rows = [
        [field.get_db_prep_save(getattr(obj, field.attname), connection) for _, field in columns] + [obj.pk]
        for obj in objects
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _stored_field(meta: Options[Any], name: str) -> tuple[str, models.Field[Any, Any]]:
    """The column and field of `name`, which must be stored in the model's own table (not a
    reverse relation or a many-to-many, which have no column there)."""
    field = meta.get_field(name)
    if not isinstance(field, models.Field) or not field.column:
        raise ValueError(f"{meta.label}.{name} has no column of its own to update")
    return field.column, field
