"""Multi-row INSERTs whose SQL is built once per shape, for the writer thread's hot path.

`QuerySet.bulk_create` compiles its INSERT value by value on every call (`field_as_sql`,
`prepare_value`, expression checks) and needs a model instance per row. Storing 64 completions
of three members that way was a fifth of a worker's CPU under load (py-spy), all of it holding
the GIL the event loop needs. `RowInserter` takes plain dicts, converts each value with the
field's own `get_db_prep_save` (the conversion `bulk_create` applies too: UUIDs, JSON, aware
datetimes, per backend), and reuses the SQL text for every batch of the same size.

It relies on multi-row `INSERT ... RETURNING`, which both supported backends have (SQLite 3.35+,
PostgreSQL). The rows come back in insertion order, as Django's own `bulk_create` assumes.
"""
from __future__ import annotations

from functools import lru_cache

from django.db import DEFAULT_DB_ALIAS, connections


class RowInserter:
    """Insert rows (dicts keyed by `field_names`) into `model`'s table, returning new primary keys if asked.

    Name foreign keys by their column attribute (`request_id`) and give every listed field a value:
    nothing here applies field defaults.
    """

    def __init__(self, model, field_names: list[str], *, returning_pk: bool = False):
        meta = model._meta
        self.names = list(field_names)
        self.fields = [meta.get_field(name) for name in field_names]
        self.table = meta.db_table
        self.pk_column = meta.pk.column if returning_pk else None

    def insert(self, rows: list[dict]) -> list:
        """Write `rows` with as few statements as the backend's parameter limit allows; return the new keys."""
        if not rows:
            return []
        # The connection itself, not django.db.connection: that proxy looks the connection up
        # in a thread-local on every attribute access, once per value here.
        connection = connections[DEFAULT_DB_ALIAS]
        prepare = [(name, field.get_db_prep_save) for name, field in zip(self.names, self.fields)]
        params = [prep(row[name], connection) for row in rows for name, prep in prepare]
        width = len(self.fields)
        batch = connection.ops.bulk_batch_size(self.fields, rows) or len(rows)
        keys: list = []
        with connection.cursor() as cursor:
            for start in range(0, len(rows), batch):
                count = min(batch, len(rows) - start)
                cursor.execute(self._sql(connection.ops.quote_name, count), params[start * width:(start + count) * width])
                if self.pk_column:
                    keys.extend(key for (key,) in cursor.fetchall())
        return keys

    @lru_cache(maxsize=64)  # one entry per batch size seen; the inserters themselves live forever
    def _sql(self, quote, count: int) -> str:
        columns = ", ".join(quote(field.column) for field in self.fields)
        row = "(" + ", ".join(["%s"] * len(self.fields)) + ")"
        returning = f" RETURNING {quote(self.pk_column)}" if self.pk_column else ""
        return f"INSERT INTO {quote(self.table)} ({columns}) VALUES {', '.join([row] * count)}{returning}"
