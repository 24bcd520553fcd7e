"""Benchmark DAG: `count` mapped no-op tasks, for bench/ (not an example to copy).

Mounted read-only in the dags folder of a benchmark stack, next to bench_sleep.py
(bench/bench.override.yml), so the user's dags/ is neither read nor touched.
Shape: one `plan` task returns range(count); `noop` is mapped over it and does nothing, so
each mapped task measures only what the platform costs per task: scheduling, Celery, a task
process, the Execution API. No XCom is pushed (the task returns None), no retries (a failure
must show), and nothing DAG-level overrides the configuration under test (parallelism,
max_active_tasks_per_dag, pools all come from airflow.cfg).
Trigger: `POST /api/v2/dags/bench_noop/dagRuns` with `{"conf": {"count": 100}}`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, get_current_context, task


@dag(
    dag_id="bench_noop",
    description="Benchmark: `count` mapped no-op tasks (bench/).",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["bench"],
    # [core] max_map_length is 1024 by default: a mapped task cannot expand further.
    params={"count": Param(100, type="integer", minimum=1, maximum=1024, description="Mapped tasks")},
    default_args={"owner": "bench", "retries": 0},
)
def bench_noop() -> None:
    @task
    def plan() -> list[int]:
        return list(range(int(get_current_context()["params"]["count"])))

    @task
    def noop(item: int) -> None:
        """Nothing: the benchmark measures the platform's cost per task."""

    noop.expand(item=plan())


bench_noop()
