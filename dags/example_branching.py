"""Example: branching, and a join with the trigger rule that keeps it from being skipped.

Pattern: `choose` (@task.branch) picks `fast_path` or `thorough_prepare` >> `thorough_check` from the
`branch` param; the branch not taken is skipped. `join` uses none_failed_min_one_success: with the
default all_success it would be skipped too (one of its upstreams is always skipped); with all_done it
would run after a failure. `report` runs after `join`.
Shows: skipped vs. succeeded vs. upstream_failed, and why the join's trigger rule matters.
Trigger: `POST /api/v2/dags/example_branching/dagRuns` with `{"conf": {"branch": "fast"}}` (the default)
or `{"conf": {"branch": "thorough"}}`; add `"fail_branch": true` to make the chosen branch fail on
purpose, so `join` and `report` end upstream_failed and the run fails.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, TriggerRule, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException
from stack_patterns.alerts import ALERT_CALLBACKS


def _maybe_fail(step: str) -> None:
    if get_current_context()["params"]["fail_branch"]:
        raise AirflowFailException(f"{step} fails on purpose (fail_branch=true)")


@dag(
    dag_id="example_branching",
    description="A param picks one of two branches; the join runs with none_failed_min_one_success.",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "branching"],
    params={
        "branch": Param("fast", enum=["fast", "thorough"], description="Branch to run"),
        "fail_branch": Param(False, type="boolean", description="Make the chosen branch fail"),
    },
    default_args={
        "owner": "platform",
        "retries": 1,
        "retry_delay": timedelta(seconds=5),
        **ALERT_CALLBACKS,
    },
)
def example_branching() -> None:
    @task.branch
    def choose() -> str:
        branch = get_current_context()["params"]["branch"]
        return "fast_path" if branch == "fast" else "thorough_prepare"

    @task
    def fast_path() -> str:
        _maybe_fail("fast_path")
        return "fast"

    @task
    def thorough_prepare() -> None:
        print("preparing the thorough branch")

    @task
    def thorough_check() -> str:
        _maybe_fail("thorough_check")
        return "thorough"

    @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    def join() -> str:
        return str(get_current_context()["params"]["branch"])

    @task
    def report(branch: str) -> None:
        print(f"the {branch} branch ran; the other was skipped")

    chosen = choose()
    joined = join()
    chosen >> fast_path() >> joined
    chosen >> thorough_prepare() >> thorough_check() >> joined
    report(joined)


example_branching()
