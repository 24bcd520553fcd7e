"""Example: a pool caps concurrency below what the workers could run.

Pattern: 6 mapped `work` instances, all in pool `example_two_slots` (2 slots, declared in
config/pools.json, created by airflow-init): however many worker slots are free, at most 2 run at once
and the others wait in state `scheduled` (counted by the pool.starving_tasks metric).
`check_overlap` then rebuilds the concurrency from each instance's own start and end times and fails
if it ever exceeded the pool's size. Use a pool like this for a rate-limited API or a small database.
Shows: pool slots as a throttle shared by every DAG that uses the pool (not only this one).
Trigger: `POST /api/v2/dags/example_pool_limited/dagRuns` with `{"conf": {}}` (6 tasks x 5 s: ~20-30 s),
or `{"conf": {"count": 10, "sleep_seconds": 3}}`.
"""

from __future__ import annotations

import socket
import time
from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException
from stack_patterns.alerts import ALERT_CALLBACKS

POOL = "example_two_slots"
POOL_SLOTS = 2


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The largest number of intervals open at one instant (an end before a start at the same time)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


@dag(
    dag_id="example_pool_limited",
    description="Six mapped tasks in a 2-slot pool: never more than two run at once.",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "pool"],
    params={
        "count": Param(6, type="integer", minimum=1, maximum=50, description="Tasks in the pool"),
        "sleep_seconds": Param(5.0, type="number", minimum=0, maximum=60, description="Work per task"),
    },
    default_args={
        "owner": "platform",
        "retries": 1,
        "retry_delay": timedelta(seconds=5),
        **ALERT_CALLBACKS,
    },
)
def example_pool_limited() -> None:
    @task
    def plan() -> list[int]:
        return list(range(int(get_current_context()["params"]["count"])))

    @task(pool=POOL, pool_slots=1)
    def work(item: int) -> dict[str, float | int | str]:
        started = time.time()
        time.sleep(float(get_current_context()["params"]["sleep_seconds"]))
        return {"item": item, "started": started, "ended": time.time(), "host": socket.gethostname()}

    @task
    def check_overlap(results: list[dict[str, float | int | str]]) -> int:
        intervals = [(float(r["started"]), float(r["ended"])) for r in results]
        peak = max_overlap(intervals)
        print(f"{len(intervals)} tasks in pool {POOL}; at most {peak} ran at the same time")
        if peak > POOL_SLOTS:
            raise AirflowFailException(f"{peak} tasks ran at once in a {POOL_SLOTS}-slot pool")
        return peak

    check_overlap(work.expand(item=plan()))


example_pool_limited()
