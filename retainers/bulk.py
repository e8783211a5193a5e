"""Bulk writes the ORM makes slow.

`QuerySet.bulk_update` sets each field with a CASE over every row of the batch: a statement
that grows with rows × fields, and that PostgreSQL evaluates per row (quadratic). Closing
200 periods at once spent most of its time there. `update_each` sends one plain
`UPDATE … WHERE pk = %s` per object instead, pipelined by psycopg's `executemany` in one
round trip, with the values prepared by each field as `save()` would.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection, models


def update_each(objects: Sequence[models.Model], fields: Sequence[str]) -> None:
    """Write `fields` of each object (all of one model) to its row, by primary key."""
    if not objects:
        return
    meta = type(objects[0])._meta
    columns = [meta.get_field(name) for name in fields]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in columns)
    sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s"
    rows = [
        [field.get_db_prep_save(getattr(obj, field.attname), connection) for field in columns] + [obj.pk]
        for obj in objects
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)
