"""The demo database the example DAGs write to: connection id, schema, and transaction helpers.

Connection `demo_db` (AIRFLOW_CONN_DEMO_DB=postgresql://demo:<password>@pgbouncer:6432/demo) is a
database of its own, owned by role `demo`, separate from Airflow's metadata. The DAGs create what they
need in schema `demo`, idempotently, through the postgres provider's hook.

PgBouncer runs in transaction pooling, so everything here lives inside one transaction: no session
settings, no session advisory locks; the transaction-scoped pg_advisory_xact_lock is fine.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

DEMO_CONN_ID = "demo_db"
DEMO_SCHEMA = "demo"
# Serialises the DAGs' CREATE ... IF NOT EXISTS: run concurrently, they can still collide in the catalog.
_DDL_LOCK_KEY = 3_300_201


@contextmanager
def transaction(conn_id: str = DEMO_CONN_ID) -> Iterator[Any]:
    """A cursor inside one transaction: committed if the block ends normally, rolled back if it raises."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    conn = PostgresHook(postgres_conn_id=conn_id).get_conn()
    if hasattr(conn, "prepare_threshold"):
        # psycopg 3 prepares a statement run 5 times on one connection (executemany does): fine with
        # PgBouncer's max_prepared_statements, but not needed here, so not depended on.
        conn.prepare_threshold = None
    try:
        with conn.cursor() as cursor:
            yield cursor
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()


def ensure_schema(ddl: Sequence[str], conn_id: str = DEMO_CONN_ID) -> None:
    """Create schema `demo` and run the given CREATE ... IF NOT EXISTS statements, in one transaction."""
    with transaction(conn_id) as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK_KEY,))
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {DEMO_SCHEMA}")
        for statement in ddl:
            cursor.execute(statement)
