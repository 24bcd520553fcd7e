"""Example: dynamic task mapping with a concurrency throttle, and an aggregate that survives failures.

Pattern: TaskFlow `.expand()` over a list built at run time (`plan`); `max_active_tis_per_dag=3` keeps
at most 3 `process` instances running at once, across all runs of this DAG, however many are mapped;
`aggregate` has trigger rule all_done, so it runs and reports even when some mapped items failed (it
reads only the results that exist); `enforce_threshold` then fails the run when more items failed than
`tolerated_failures`. Without it, the run would be green whatever happened: a DAG run's state
comes from its leaf tasks, and an all_done leaf succeeds after failures.
Shows: mapped instances queued 3 at a time; failed items alerted through the alert_webhook connection.
Trigger: `POST /api/v2/dags/example_mapped_throttle/dagRuns` with `{"conf": {}}` (10 items, all succeed)
or `{"conf": {"fail_every": 3}}` (items 2, 5, 8 fail; aggregate still runs; the run fails) or
`{"conf": {"fail_every": 3, "tolerated_failures": 3}}` (same failures, the run succeeds).
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, TriggerRule, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException
from stack_patterns.alerts import ALERT_CALLBACKS


@dag(
    dag_id="example_mapped_throttle",
    description="Mapped tasks throttled to 3 at a time; an all_done aggregate reports even when some fail.",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "mapping"],
    params={
        "count": Param(10, type="integer", minimum=1, maximum=200, description="Items to map over"),
        "fail_every": Param(
            0, type="integer", minimum=0, description="Fail items whose number+1 divides by this (0: none)"
        ),
        "tolerated_failures": Param(0, type="integer", minimum=0, description="Failed items the run accepts"),
        "sleep_seconds": Param(1.0, type="number", minimum=0, maximum=60, description="Work per item"),
    },
    default_args={
        "owner": "platform",
        "retries": 1,
        "retry_delay": timedelta(seconds=5),
        **ALERT_CALLBACKS,
    },
)
def example_mapped_throttle() -> None:
    @task
    def plan() -> list[int]:
        return list(range(int(get_current_context()["params"]["count"])))

    # retries=0: an item that fails on purpose fails for good, so the run stays short.
    @task(max_active_tis_per_dag=3, retries=0)
    def process(item: int) -> dict[str, int]:
        params = get_current_context()["params"]
        time.sleep(float(params["sleep_seconds"]))
        fail_every = int(params["fail_every"])
        if fail_every and (item + 1) % fail_every == 0:
            raise AirflowFailException(f"item {item} fails on purpose (fail_every={fail_every})")
        return {"item": item, "value": item * item}

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def aggregate(planned: list[int], results: list[dict[str, int]]) -> dict[str, Any]:
        # Only successful instances pushed a result: the missing items are the failed ones.
        done = sorted(r["item"] for r in results)
        failed = sorted(set(planned) - set(done))
        summary: dict[str, Any] = {
            "planned": len(planned),
            "succeeded": len(done),
            "failed": len(failed),
            "failed_items": failed,
            "total_value": sum(r["value"] for r in results),
        }
        print(f"summary: {summary}")
        return summary

    @task
    def enforce_threshold(summary: dict[str, Any]) -> None:
        tolerated = int(get_current_context()["params"]["tolerated_failures"])
        if summary["failed"] > tolerated:
            raise AirflowFailException(
                f"{summary['failed']} of {summary['planned']} items failed "
                f"({summary['failed_items']}); {tolerated} tolerated"
            )
        print(f"{summary['failed']} failed item(s), {tolerated} tolerated: run accepted")

    planned = plan()
    enforce_threshold(aggregate(planned, process.expand(item=planned)))


example_mapped_throttle()
