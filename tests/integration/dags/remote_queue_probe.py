"""Test DAG of tests/integration/test_98_remote_worker.py, not an example: its tasks go to the Celery
queue `remote`, which only that test's remote worker (docker-compose.worker.yml with WORKER_QUEUE=remote)
consumes, so a successful run proves they ran there. The test copies this file into dags/ while it runs
(a worker host runs the DAG files of its own checkout, the same ones).
Its tasks use what a remote worker reaches only through the main host's published ports: the Execution
API (mapping, XCom) on the api-server, and the demo_db connection through PgBouncer.
"""

from __future__ import annotations

import socket

import pendulum
from airflow.sdk import dag, task
from stack_patterns.demo_db import transaction

QUEUE = "remote"
ITEMS = [1, 2, 3]


@dag(
    dag_id="remote_queue_probe",
    description="Runs on the Celery queue `remote` only: proves a remote worker runs tasks end to end.",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["tests"],
    default_args={"owner": "platform", "queue": QUEUE, "retries": 0},
)
def remote_queue_probe() -> None:
    @task
    def items() -> list[int]:
        return ITEMS

    @task
    def square(item: int) -> dict[str, int | str]:
        return {"item": item, "square": item * item, "host": socket.gethostname()}

    @task
    def demo_db_user() -> str:
        with transaction() as cursor:
            cursor.execute("SELECT current_user")
            (user,) = cursor.fetchone()
        return str(user)

    @task
    def check(results: list[dict[str, int | str]], user: str) -> int:
        squares = sorted(int(r["square"]) for r in results)
        if squares != [i * i for i in ITEMS]:
            raise ValueError(f"wrong squares: {squares}")
        if user != "demo":
            raise ValueError(f"demo_db connected as {user!r}, not demo")
        hosts = sorted({str(r["host"]) for r in results})
        print(f"{len(squares)} squares on {', '.join(hosts)}; demo_db as {user}")
        return sum(squares)

    check(square.expand(item=items()), demo_db_user())


remote_queue_probe()
