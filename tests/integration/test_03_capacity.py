"""Scaling workers adds task capacity, with no config change: the worker-capacity service sizes
default_pool to the summed slots of the live workers. 1 -> 3 workers lets a mapped run of sleeping
tasks run 48 at once; 3 -> 1 during that run brings capacity back to 16 with no task failed or left
queued; on one worker, tasks beyond its slots wait in the scheduler (pool full), never
in the broker, so none is re-queued as stuck in queued. A killed worker's capacity: test_12."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from stackkit.airflow_api import AirflowApi
from stackkit.sql import bind
from tests.integration.faults import Workload, wait_until
from tests.integration.testbed import IntegrationStack

SLOTS = 16  # [celery] worker_concurrency, Celery's default, per worker
WORKERS = 3
TASKS = 64  # more than 3 workers' 48 slots, so the scale-down happens with work still to start
SLEEP = 40  # I/O-bound: each task only sleeps
CONFIRM = 30  # scripts/worker_capacity.py --confirm: a lost worker's slots go after this


def capacity_metric(stack: IntegrationStack) -> float:
    (sample,) = stack.prometheus.query('airflow_capacity_target_slots{queue="default"}')
    return float(sample["value"][1])


@pytest.fixture(scope="module")
def scaled_run(stack: IntegrationStack, api: AirflowApi) -> Iterator[tuple[Workload, int]]:
    """Three workers, then a run of 64 sleeping tasks; yields it with the most seen running at once."""
    wait_until(lambda: stack.pool_slots() == SLOTS, 60, "default_pool at one worker's 16 slots")
    stack.scale_workers(WORKERS)
    try:
        wait_until(lambda: stack.pool_slots() == SLOTS * WORKERS, 60, "default_pool to follow 3 workers")
        workload = Workload.start(stack, api, count=TASKS, sleep_seconds=SLEEP)
        peak, deadline = 0, time.monotonic() + 180
        while peak < SLOTS * WORKERS and time.monotonic() < deadline:  # the peak is asserted in the test
            peak = max(peak, len(workload.running_work()))
            time.sleep(2)
        yield workload, peak
    finally:
        stack.scale_workers(1)


def test_three_workers_run_48_tasks_at_once_with_no_config_change(
    stack: IntegrationStack, scaled_run: tuple[Workload, int]
) -> None:
    _, peak = scaled_run
    assert peak >= 0.9 * SLOTS * WORKERS, f"at most {peak} of {SLOTS * WORKERS} tasks ran at once"
    wait_until(lambda: capacity_metric(stack) == SLOTS * WORKERS, 60, "the capacity metric to say 48")


def test_scaling_down_mid_run_returns_capacity_and_fails_nothing(
    stack: IntegrationStack, scaled_run: tuple[Workload, int]
) -> None:
    workload, _ = scaled_run
    assert workload.running_work(), "the run ended before the scale-down: nothing to test"
    stack.scale_workers(1)  # warm shutdown: the two removed workers finish their running tasks
    wait_until(lambda: stack.pool_slots() == SLOTS, CONFIRM + 30, "default_pool back to 16")
    rows = workload.assert_nothing_lost(timeout=600)  # all succeeded; none re-queued as stuck
    assert {r.try_number for r in rows if r.task_id == "work"} == {1}, "a task failed or ran twice"
    left = stack.sql(
        bind(
            "SELECT count(*) FROM task_instance WHERE run_id = {run} AND state = 'queued'",
            run=workload.run_id,
        )
    )
    assert left == [["0"]]


def test_tasks_beyond_one_workers_slots_wait_in_the_scheduler_not_the_broker(
    stack: IntegrationStack, api: AirflowApi
) -> None:
    """24 tasks of 20 s on one worker's 16 slots: at no moment are more than 16 of them queued or
    running, so the 8 that do not fit wait in the scheduler (state scheduled), never in Redis where
    they could age past task_queued_timeout; all succeed on their first try, none re-queued as stuck.
    Without the capacity service (default_pool 128) all 24 would be queued at once."""
    assert len(stack.containers("airflow-worker")) == 1
    wait_until(lambda: stack.pool_slots() == SLOTS, CONFIRM + 30, "default_pool at 16")
    workload = Workload.start(stack, api, count=SLOTS + 8, sleep_seconds=20)
    in_flight, deadline = 0, time.monotonic() + 600
    while workload.run_state() not in ("success", "failed"):
        assert time.monotonic() < deadline, f"the run did not end in 600 s: {workload.states()}"
        (row,) = stack.sql(
            bind(
                "SELECT count(*) FROM task_instance WHERE task_id = 'work' "
                "AND run_id = {run} AND state IN ('queued', 'running')",
                run=workload.run_id,
            )
        )
        in_flight = max(in_flight, int(row[0]))
        time.sleep(2)
    rows = workload.assert_nothing_lost(timeout=600)
    assert {r.try_number for r in rows if r.task_id == "work"} == {1}
    assert in_flight <= SLOTS, f"{in_flight} tasks queued or running at once on {SLOTS} slots"
    assert in_flight >= SLOTS - 2, f"only {in_flight} in flight: the worker's slots were not filled"
