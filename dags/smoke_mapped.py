"""Smoke DAG: dynamic task mapping fanned out over the Celery workers, then gathered.

Pattern: TaskFlow with `.expand()` over a list built at run time; each mapped task reports the
Celery worker that ran it, and the gather task checks every item came back.
Shows: the scheduler queues N task instances at once, the workers share them, logs of every one are
readable through the API (the integration tests check all of this).
Trigger: from the UI, or `POST /api/v2/dags/smoke_mapped/dagRuns` with
`{"conf": {"count": 20, "sleep_seconds": 1}}` (both optional; the defaults are those).
"""

from __future__ import annotations

import socket
import time
from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, get_current_context, task


@dag(
    dag_id="smoke_mapped",
    description="Fans out `count` mapped tasks over the Celery workers and gathers their results.",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["smoke", "example"],
    params={
        "count": Param(20, type="integer", minimum=1, maximum=2000, description="Mapped tasks to run"),
        "sleep_seconds": Param(1.0, type="number", minimum=0, maximum=600, description="Work per task"),
    },
    default_args={"owner": "platform", "retries": 2, "retry_delay": timedelta(seconds=5)},
)
def smoke_mapped() -> None:
    @task
    def plan() -> list[int]:
        params = get_current_context()["params"]
        return list(range(int(params["count"])))

    # A dict return annotation makes TaskFlow push each key as an XCom of its own too (multiple_outputs):
    # three Execution API writes per task instead of one, for keys nothing reads.
    @task(multiple_outputs=False)
    def work(item: int) -> dict[str, int | str]:
        time.sleep(float(get_current_context()["params"]["sleep_seconds"]))
        host = socket.gethostname()
        print(f"item {item} done on worker {host}")
        return {"item": item, "host": host}

    @task
    def gather(results: list[dict[str, int | str]]) -> int:
        items = sorted(int(r["item"]) for r in results)
        expected = list(range(len(items)))
        if items != expected:
            raise ValueError(f"missing items: {sorted(set(expected) - set(items))}")
        hosts = sorted({str(r["host"]) for r in results})
        print(f"{len(items)} items done on {len(hosts)} worker(s): {', '.join(hosts)}")
        return len(items)

    gather(work.expand(item=plan()))


smoke_mapped()
