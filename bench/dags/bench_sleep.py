"""Benchmark DAG: mapped tasks that each sleep a given number of seconds, for bench/ (not an example
to copy).

Mounted read-only in the dags folder of a benchmark stack (bench/bench.override.yml), next to
bench_noop.py. It stands for the work users run most: tasks that wait on something else (an API, a
query, a file) and hold a worker slot while they wait, so what it measures is how many slots the stack
really keeps busy and how long tasks wait for one. Used by two workloads (bench/workloads.py): the
I/O fan-out (several concurrent runs of 20-60 s tasks) and the overload (more long tasks than one
worker's slots).
Shape: `plan` returns the list `seconds` from the run's conf; `sleep` is mapped over it and sleeps that
long. No XCom is pushed, no retries (a failure must show), and nothing DAG-level overrides the
configuration under test (parallelism, max_active_tasks_per_dag, pools all come from airflow.cfg).
Trigger: `POST /api/v2/dags/bench_sleep/dagRuns` with `{"conf": {"seconds": [20, 45, 31]}}`.
"""

from __future__ import annotations

import time

import pendulum
from airflow.sdk import Param, dag, get_current_context, task


@dag(
    dag_id="bench_sleep",
    description="Benchmark: one mapped task per entry of `seconds`, each sleeping that long (bench/).",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["bench"],
    params={
        "seconds": Param(
            [30],
            type="array",
            items={"type": "integer", "minimum": 0, "maximum": 3600},
            minItems=1,
            # [core] max_map_length is 1024 by default: a mapped task cannot expand further.
            maxItems=1024,
            description="Seconds each mapped task sleeps, one entry per task",
        )
    },
    default_args={"owner": "bench", "retries": 0},
)
def bench_sleep() -> None:
    @task
    def plan() -> list[int]:
        return [int(seconds) for seconds in get_current_context()["params"]["seconds"]]

    @task
    def sleep(seconds: int) -> None:
        """Hold a worker slot without using the CPU, as a task waiting on I/O does."""
        time.sleep(seconds)

    sleep.expand(seconds=plan())


bench_sleep()
