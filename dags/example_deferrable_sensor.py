"""Example: a deferrable sensor waiting in the triggerer for a row, holding no worker slot meanwhile.

Pattern: `create_signals_table` creates demo.signals in the demo database (idempotent);
`wait_for_signal` (stack_patterns.sensors.PostgresRowSensor) defers at once to a custom trigger
(stack_patterns.triggers.PostgresRowTrigger) that polls `demo.signals` every 5 s with psycopg 3's async
driver, inside the triggerer; when a row with `name = <signal_name>` appears, the task resumes on a
worker; `consume_signal` then deletes the matching rows, so the next run waits again.
Shows: a task in state `deferred` while its worker slot is free; sensor timeouts (no retry).
Trigger: `POST /api/v2/dags/example_deferrable_sensor/dagRuns` with `{"conf": {}}`, then release it:
    INSERT INTO demo.signals (name) VALUES ('go');   -- in the demo database (connection demo_db)
`{"conf": {"timeout_seconds": 15}}` without inserting a row: the sensor fails after ~15 s, the run fails.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, get_current_context, task
from stack_patterns.alerts import ALERT_CALLBACKS
from stack_patterns.demo_db import DEMO_CONN_ID, ensure_schema, transaction
from stack_patterns.sensors import PostgresRowSensor

SIGNALS_DDL = """
CREATE TABLE IF NOT EXISTS demo.signals (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""


@dag(
    dag_id="example_deferrable_sensor",
    description="A deferrable sensor waits in the triggerer for a row in demo.signals, then consumes it.",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "deferrable", "demo-db"],
    params={
        "signal_name": Param("go", type="string", minLength=1, description="demo.signals.name to wait for"),
        "timeout_seconds": Param(600, type="integer", minimum=5, maximum=3600, description="Sensor timeout"),
    },
    default_args={
        "owner": "platform",
        "retries": 1,
        "retry_delay": timedelta(seconds=5),
        **ALERT_CALLBACKS,
    },
)
def example_deferrable_sensor() -> None:
    @task
    def create_signals_table() -> None:
        ensure_schema([SIGNALS_DDL])

    wait_for_signal = PostgresRowSensor(
        task_id="wait_for_signal",
        conn_id=DEMO_CONN_ID,
        table="demo.signals",
        column="name",
        value="{{ params.signal_name }}",
        poke_interval=5,
        wait_timeout="{{ params.timeout_seconds }}",
    )

    @task
    def consume_signal() -> int:
        name = get_current_context()["params"]["signal_name"]
        with transaction() as cursor:
            cursor.execute("DELETE FROM demo.signals WHERE name = %s", (name,))
            consumed = cursor.rowcount
        print(f"consumed {consumed} signal row(s) named {name!r}")
        return consumed

    create_signals_table() >> wait_for_signal >> consume_signal()


example_deferrable_sensor()
