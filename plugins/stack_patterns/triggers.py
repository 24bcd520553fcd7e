"""A trigger that waits, in the triggerer's event loop, for a row to appear in a Postgres table.

Used by stack_patterns.sensors.PostgresRowSensor. Every `poll_interval` seconds it runs
`SELECT count(*) FROM <table> WHERE <column> = <value>` with psycopg 3's AsyncConnection, so thousands of
waits share one event loop and hold no worker slot. It fires one event and returns:
  {"status": "found", "matched_rows": n, ...}  a matching row exists;
  {"status": "timeout", ...}                    `deadline` (Unix time) passed first;
  {"status": "error", "message": ...}           an error that waiting will not fix (unknown connection,
                                                missing table, no privilege).
An unreachable database (PgBouncer or Postgres restarting) is logged and polled again until the deadline.

Each poll opens a short autocommit connection and closes it: nothing is held between polls (a waiting
trigger costs PgBouncer no client connection), nothing depends on session state (PgBouncer runs in
transaction pooling), and psycopg's prepared statements are off (prepare_threshold=None).
The deadline is absolute, so a trigger re-created after a triggerer restart keeps the original timeout.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Connection extras that are libpq connection parameters (anything else in extra is ignored here).
_LIBPQ_EXTRAS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "target_session_attrs", "keepalives")


def split_table_name(table: str) -> tuple[str, ...]:
    """`schema.table` or `table` as identifier parts; ValueError for anything else."""
    parts = tuple(table.split("."))
    if not 1 <= len(parts) <= 2 or not all(_IDENTIFIER.match(p) for p in parts):
        raise ValueError(f"table must be 'name' or 'schema.name' of plain identifiers, got {table!r}")
    return parts


class PostgresRowTrigger(BaseTrigger):
    """Fire when `table` has a row whose `column` equals `value`, or when `deadline` passes."""

    def __init__(
        self,
        *,
        conn_id: str,
        table: str,
        column: str,
        value: str,
        deadline: float,
        poll_interval: float = 5.0,
        connect_timeout: int = 10,
    ) -> None:
        super().__init__()
        split_table_name(table)
        if not _IDENTIFIER.match(column):
            raise ValueError(f"column must be a plain identifier, got {column!r}")
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be positive, got {poll_interval!r}")
        self.conn_id = conn_id
        self.table = table
        self.column = column
        self.value = str(value)
        self.deadline = float(deadline)
        self.poll_interval = float(poll_interval)
        self.connect_timeout = int(connect_timeout)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "conn_id": self.conn_id,
                "table": self.table,
                "column": self.column,
                "value": self.value,
                "deadline": self.deadline,
                "poll_interval": self.poll_interval,
                "connect_timeout": self.connect_timeout,
            },
        )

    def _event(self, status: str, **fields: Any) -> TriggerEvent:
        return TriggerEvent(
            {"status": status, "table": self.table, "column": self.column, "value": self.value, **fields}
        )

    async def _connect_kwargs(self) -> dict[str, Any]:
        # The Task SDK's async lookup: the triggerer's secrets backends (environment variables such
        # as AIRFLOW_CONN_DEMO_DB first), without blocking the event loop.
        from airflow.sdk import BaseHook

        conn = await BaseHook.aget_connection(self.conn_id)
        extra = await conn.aextra_dejson()
        kwargs: dict[str, Any] = {
            "host": conn.host,
            "port": conn.port or 5432,
            "user": conn.login,
            "password": conn.password,
            "dbname": conn.schema,
            "connect_timeout": max(2, self.connect_timeout),
        }
        kwargs.update({key: extra[key] for key in _LIBPQ_EXTRAS if key in extra})
        return kwargs

    async def _count_matches(self, connect_kwargs: dict[str, Any]) -> int:
        import psycopg
        from psycopg import sql

        query = sql.SQL("SELECT count(*) FROM {table} WHERE {column} = %s").format(
            table=sql.Identifier(*split_table_name(self.table)), column=sql.Identifier(self.column)
        )
        async with await psycopg.AsyncConnection.connect(
            autocommit=True, prepare_threshold=None, **connect_kwargs
        ) as conn:
            cursor = await conn.execute(query, (self.value,))
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import psycopg

        try:
            connect_kwargs = await self._connect_kwargs()
        except Exception as error:
            yield self._event(
                "error", message=f"connection {self.conn_id!r}: {type(error).__name__}: {error}"
            )
            return
        polls = 0
        while True:
            polls += 1
            try:
                # A bound on the whole poll: a stalled server must not stall this trigger past its deadline.
                matches = await asyncio.wait_for(
                    self._count_matches(connect_kwargs), timeout=self.connect_timeout + 10
                )
            except (psycopg.OperationalError, TimeoutError) as error:
                self.log.warning("poll %d: database unreachable (%s); polling again", polls, error)
            except psycopg.Error as error:
                yield self._event("error", message=f"{type(error).__name__}: {error}", polls=polls)
                return
            else:
                if matches:
                    self.log.info(
                        "poll %d: %d row(s) in %s where %s matches", polls, matches, self.table, self.column
                    )
                    yield self._event("found", matched_rows=matches, polls=polls)
                    return
                self.log.info(
                    "poll %d: no row in %s where %s = %r yet", polls, self.table, self.column, self.value
                )
            remaining = self.deadline - time.time()
            if remaining <= 0:
                yield self._event("timeout", polls=polls)
                return
            await asyncio.sleep(min(self.poll_interval, remaining))
