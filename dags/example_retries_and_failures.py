"""Example: retries with exponential backoff, an execution timeout that fires, a task that fails on purpose.

Pattern: `flaky_then_succeeds` fails its first `fail_attempts` tries, then succeeds; its retries wait
retry_delay 2 s x 2^(try-1), randomised within [1x, 2x] and capped at max_retry_delay 8 s
(retry_exponential_backoff=2.0). `times_out` sleeps 30 s under a 3 s execution_timeout: Airflow
interrupts it (AirflowTaskTimeout), and it fails, not retried (retries=0). `fails_on_purpose` raises
AirflowFailException, which fails at once although the task has 3 retries; `never_runs`, downstream of
it, ends upstream_failed. Every retry and failure posts an alert to the alert_webhook connection.
Meant to end FAILED: it produces failures, retries and alerts on demand for monitoring and alert tests.
Trigger: `POST /api/v2/dags/example_retries_and_failures/dagRuns` with `{"conf": {}}` (fails, ~30 s);
`{"conf": {"fail_on_purpose": false, "timeout_on_purpose": false}}` succeeds.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException
from stack_patterns.alerts import ALERT_CALLBACKS


@dag(
    dag_id="example_retries_and_failures",
    description="Exponential-backoff retries, an execution timeout that fires, and a failure on purpose.",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "retries", "failure"],
    params={
        "fail_attempts": Param(2, type="integer", minimum=0, maximum=5, description="Tries that fail first"),
        "timeout_on_purpose": Param(True, type="boolean", description="Sleep past the 3 s timeout"),
        "fail_on_purpose": Param(True, type="boolean", description="Raise AirflowFailException"),
    },
    default_args={
        "owner": "platform",
        "retries": 3,
        "retry_delay": timedelta(seconds=2),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(seconds=8),
        **ALERT_CALLBACKS,
    },
)
def example_retries_and_failures() -> None:
    @task
    def flaky_then_succeeds() -> int:
        context = get_current_context()
        try_number = context["ti"].try_number
        fail_attempts = int(context["params"]["fail_attempts"])
        if try_number <= fail_attempts:
            raise RuntimeError(f"try {try_number} fails on purpose ({fail_attempts} failing tries)")
        print(f"succeeded on try {try_number}")
        return try_number

    @task(execution_timeout=timedelta(seconds=3), retries=0)
    def times_out() -> None:
        seconds = 30.0 if get_current_context()["params"]["timeout_on_purpose"] else 0.5
        print(f"sleeping {seconds} s under a 3 s execution_timeout")
        time.sleep(seconds)

    @task
    def fails_on_purpose() -> None:
        if get_current_context()["params"]["fail_on_purpose"]:
            raise AirflowFailException("failing on purpose: AirflowFailException skips the remaining retries")

    @task
    def never_runs() -> None:
        print("fails_on_purpose succeeded, so this ran")

    flaky_then_succeeds()
    times_out()
    fails_on_purpose() >> never_runs()


example_retries_and_failures()
