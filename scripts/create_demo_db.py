"""Create (or update) the `demo` role and database the example DAGs load data into.

Run by airflow-init, as the superuser `airflow`, straight against Postgres (the connection URL of
the init container). Idempotent: the role's password is reset to DEMO_DB_PASSWORD from .env on
every start, so .env stays the one source of truth; the database is created only when missing.
"""

from __future__ import annotations

import os

import psycopg2
from psycopg2 import sql
from sqlalchemy.engine import make_url

ROLE = DATABASE = "demo"


def main() -> None:
    url = make_url(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    password = os.environ["DEMO_DB_PASSWORD"]
    conn = psycopg2.connect(
        host=url.host, port=url.port, dbname=url.database, user=url.username, password=url.password
    )
    conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,))
        verb = "ALTER" if cur.fetchone() else "CREATE"
        cur.execute(
            sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(ROLE), sql.Literal(password))
        )
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
        if cur.fetchone() is None:
            cur.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(DATABASE), sql.Identifier(ROLE))
            )
    conn.close()
    print(f"[airflow-init] role and database {DATABASE!r} ready")


if __name__ == "__main__":
    main()
