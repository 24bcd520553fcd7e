"""Example: an idempotent incremental load, gated by data-quality checks.

Pattern: `load_partition` replaces one day of demo.daily_sales (in the demo database, connection demo_db)
with DELETE + INSERT inside ONE transaction, under a transaction-scoped advisory lock on that day, so a
re-run, a retry or two overlapping runs for the same day leave exactly one copy of its rows.
`quality_gate` then checks the day (row count equals the source's, no NULL customer or amount, no
negative amount) and fails the run on bad data, so `publish_partition`, which marks the day as
published in demo.published_partitions, runs only for good data. The source is simulated: its rows are a
deterministic function of the date, so two runs for one date load identical rows.
The day: the `load_date` param if given; else the run's data interval start (a scheduled @daily run
loads the previous day, a manual run with a logical date that date's day); else, for a manual run
without a logical date, the day it was triggered (run_after).
Shows: idempotent partition replacement; a quality gate that stops bad data from being published.
Trigger: `POST /api/v2/dags/example_incremental_load/dagRuns` with `{"conf": {"load_date": "2026-01-15"}}`
(run it twice: the same rows), or add `"inject_bad_rows": true` (2 bad rows: the gate fails the run).
Check: SELECT count(*) FROM demo.daily_sales WHERE sale_date = '2026-01-15';  -- 6 (8 with the bad rows)
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException
from stack_patterns.alerts import ALERT_CALLBACKS
from stack_patterns.demo_db import ensure_schema, transaction

TABLE = "demo.daily_sales"
DDL = [
    """
    CREATE TABLE IF NOT EXISTS demo.daily_sales (
        sale_date date          NOT NULL,
        order_id  text          NOT NULL,
        customer  text,
        amount    numeric(12,2),
        loaded_at timestamptz   NOT NULL DEFAULT now(),
        PRIMARY KEY (sale_date, order_id)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS demo.published_partitions (
        sale_date    date          PRIMARY KEY,
        row_count    integer       NOT NULL,
        total_amount numeric(14,2) NOT NULL,
        published_at timestamptz   NOT NULL DEFAULT now()
    )
    """,
]
Row = tuple[str, str | None, Decimal | None]


def source_rows(day: date, *, inject_bad_rows: bool = False) -> list[Row]:
    """The simulated source of one day: 5 to 9 (order_id, customer, amount), the same on every call."""
    key = day.toordinal()
    rows: list[Row] = [
        (
            f"{day:%Y%m%d}-{i:03d}",
            f"customer-{(key * 7 + i) % 13:02d}",
            Decimal(10 + (key * 31 + i * 17) % 90) + Decimal(i) / 100,
        )
        for i in range(5 + key % 5)
    ]
    if inject_bad_rows:
        rows += [
            (f"{day:%Y%m%d}-bad-1", None, None),
            (f"{day:%Y%m%d}-bad-2", "customer-99", Decimal("-5.00")),
        ]
    return rows


def resolve_load_date(context: Any) -> date:
    if raw := context["params"].get("load_date"):
        return date.fromisoformat(raw)
    if start := context.get("data_interval_start"):
        return start.date()
    return context["dag_run"].run_after.date()


@dag(
    dag_id="example_incremental_load",
    description="Replaces one day of demo.daily_sales in one transaction; a quality gate guards publishing.",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "incremental-load", "data-quality", "demo-db"],
    params={
        "load_date": Param(
            "",
            type="string",
            pattern=r"^(\d{4}-\d{2}-\d{2})?$",
            description="Day to load (empty: run's date)",
        ),
        "inject_bad_rows": Param(False, type="boolean", description="Add 2 bad rows: the gate must fail"),
    },
    default_args={
        "owner": "data-eng",
        "retries": 1,
        "retry_delay": timedelta(seconds=5),
        **ALERT_CALLBACKS,
    },
)
def example_incremental_load() -> None:
    @task
    def prepare_tables() -> None:
        ensure_schema(DDL)

    @task
    def load_partition() -> dict[str, Any]:
        context = get_current_context()
        day = resolve_load_date(context)
        expected = source_rows(day)
        rows = source_rows(day, inject_bad_rows=bool(context["params"]["inject_bad_rows"]))
        with transaction() as cursor:
            # Serialises loads of the same day; released at COMMIT/ROLLBACK (fine behind PgBouncer).
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s), %s)", (TABLE, int(f"{day:%Y%m%d}")))
            cursor.execute("DELETE FROM demo.published_partitions WHERE sale_date = %s", (day,))
            cursor.execute("DELETE FROM demo.daily_sales WHERE sale_date = %s", (day,))
            deleted = cursor.rowcount
            cursor.executemany(
                "INSERT INTO demo.daily_sales (sale_date, order_id, customer, amount)"
                " VALUES (%s, %s, %s, %s)",
                [(day, *row) for row in rows],
            )
        print(f"{TABLE} {day}: replaced {deleted} row(s) with {len(rows)}, in one transaction")
        return {"load_date": day.isoformat(), "expected_rows": len(expected), "inserted": len(rows)}

    @task
    def quality_gate(load: dict[str, Any]) -> dict[str, Any]:
        day = date.fromisoformat(load["load_date"])
        with transaction() as cursor:
            cursor.execute(
                """
                SELECT count(*),
                       count(*) FILTER (WHERE customer IS NULL),
                       count(*) FILTER (WHERE amount IS NULL),
                       count(*) FILTER (WHERE amount < 0),
                       coalesce(sum(amount), 0)
                FROM demo.daily_sales WHERE sale_date = %s
                """,
                (day,),
            )
            rows, null_customers, null_amounts, negative_amounts, total = cursor.fetchone()
        checks = {
            f"row count matches the source ({rows} loaded, {load['expected_rows']} expected)": (
                rows == load["expected_rows"]
            ),
            f"{null_customers} row(s) with a NULL customer": null_customers == 0,
            f"{null_amounts} row(s) with a NULL amount": null_amounts == 0,
            f"{negative_amounts} row(s) with a negative amount": negative_amounts == 0,
        }
        for check, passed in checks.items():
            print(f"[{'PASS' if passed else 'FAIL'}] {check}")
        if failed := [check for check, passed in checks.items() if not passed]:
            # Not retried: the same data fails the same way.
            raise AirflowFailException(f"quality gate failed for {TABLE} {day}: " + "; ".join(failed))
        return {"load_date": day.isoformat(), "row_count": rows, "total_amount": str(total)}

    @task
    def publish_partition(stats: dict[str, Any]) -> None:
        with transaction() as cursor:
            cursor.execute(
                """
                INSERT INTO demo.published_partitions (sale_date, row_count, total_amount)
                VALUES (%s, %s, %s)
                ON CONFLICT (sale_date) DO UPDATE
                SET row_count = EXCLUDED.row_count, total_amount = EXCLUDED.total_amount, published_at = now()
                """,
                (date.fromisoformat(stats["load_date"]), stats["row_count"], Decimal(stats["total_amount"])),
            )
        print(f"published {TABLE} {stats['load_date']}: {stats['row_count']} rows, {stats['total_amount']}")

    loaded = load_partition()
    prepare_tables() >> loaded
    publish_partition(quality_gate(loaded))


example_incremental_load()
