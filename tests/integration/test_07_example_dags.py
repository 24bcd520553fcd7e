"""The example DAGs run in the stack and end as designed: the ones meant to succeed succeed, the ones
meant to fail fail in the task that should, and each shows its pattern (throttle, trigger rules,
branch join, pool limit, idempotent load, retries with backoff, timeout, alerts)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from itertools import pairwise

import pytest

from stackkit.airflow_api import AirflowApi
from stackkit.sql import bind
from tests.integration.faults import celery_inspect
from tests.integration.testbed import IntegrationStack

EXAMPLE_DAGS = [
    "example_mapped_throttle",
    "factory_orders",
    "factory_inventory",
    "example_branching",
    "example_deferrable_sensor",
    "example_pool_limited",
    "example_incremental_load",
    "example_retries_and_failures",
]


@dataclass(frozen=True)
class Case:
    dag_id: str
    conf: dict
    state: str
    task_states: dict[str, str]  # task_id (or task_id[map_index]) -> expected final state


CASES = {
    "throttle_ok": Case("example_mapped_throttle", {}, "success", {"aggregate": "success"}),
    "throttle_failing_items": Case(
        "example_mapped_throttle",
        {"fail_every": 3},
        "failed",
        {
            "process[2]": "failed",
            "process[5]": "failed",
            "process[8]": "failed",
            "process[0]": "success",
            "aggregate": "success",
            "enforce_threshold": "failed",
        },
    ),
    "factory_orders_ok": Case(
        "factory_orders", {}, "success", {"load_orders": "success", "publish": "success"}
    ),
    "factory_orders_failing": Case(
        "factory_orders",
        {"fail_table": "orders"},
        "failed",
        {"load_orders": "failed", "publish": "upstream_failed"},
    ),
    "factory_inventory_ok": Case("factory_inventory", {}, "success", {"publish": "success"}),
    "branch_fast": Case(
        "example_branching",
        {"branch": "fast"},
        "success",
        {"fast_path": "success", "thorough_prepare": "skipped", "join": "success"},
    ),
    "branch_thorough": Case(
        "example_branching",
        {"branch": "thorough"},
        "success",
        {"fast_path": "skipped", "thorough_check": "success", "join": "success"},
    ),
    "branch_failing": Case("example_branching", {"fail_branch": True}, "failed", {"join": "upstream_failed"}),
    "retries_and_failures": Case(
        "example_retries_and_failures",
        {},
        "failed",
        {
            "flaky_then_succeeds": "success",
            "times_out": "failed",
            "fails_on_purpose": "failed",
            "never_runs": "upstream_failed",
        },
    ),
    "load_bad_rows": Case(
        "example_incremental_load",
        {"load_date": "2026-01-16", "inject_bad_rows": True},
        "failed",
        {"load_partition": "success", "quality_gate": "failed", "publish_partition": "upstream_failed"},
    ),
}


def active_celery_tasks(stack: IntegrationStack) -> set[str]:
    """The Celery task ids every worker reports as executing (`celery inspect active`). Fails unless
    the reply is complete: parseable JSON with an answer from each worker container, so an empty,
    cut-off or partial reply can never read as "not running"."""
    out = celery_inspect(stack, "active", "--json")
    replies = None
    for line in out.splitlines():  # the JSON reply is one line; warnings may come around it
        if line.startswith("{"):
            try:
                replies = json.loads(line)
            except json.JSONDecodeError:
                continue
    assert isinstance(replies, dict), f"no JSON reply from `celery inspect active`: {out[-1000:]!r}"
    workers = {f"celery@{c.attrs['Config']['Hostname']}" for c in stack.containers("airflow-worker")}
    assert workers, "no running airflow-worker container"
    assert workers <= set(replies), f"workers {sorted(workers)}, replies from {sorted(replies)}"
    return {request["id"] for requests in replies.values() for request in requests}


def celery_task_id(
    stack: IntegrationStack, dag_id: str, run_id: str, task_id: str, map_index: int = -1
) -> str:
    """The Celery task id of a task instance's current try: the CeleryExecutor assigns it as the
    task instance's external_executor_id when it queues the try (the REST API does not show it)."""
    rows = stack.sql(
        bind(
            "SELECT coalesce(external_executor_id, '') FROM task_instance "
            "WHERE dag_id = {dag} AND run_id = {run} AND task_id = {task} AND map_index = {index}",
            dag=dag_id,
            run=run_id,
            task=task_id,
            index=map_index,
        )
    )
    assert len(rows) == 1, f"{dag_id}.{task_id} in {run_id}: {rows}"
    assert rows[0][0], f"{dag_id}.{task_id} in {run_id} has no Celery task id"
    return rows[0][0]


def ti_key(ti) -> str:
    return ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"


# Runs the tests below read after the fact, triggered with the cases: run id -> (DAG, conf).
BACKOFF_RUN = (
    "example_retries_and_failures",
    {"fail_attempts": 3, "timeout_on_purpose": False, "fail_on_purpose": False},
)
POOL_RUN = ("example_pool_limited", {"count": 6, "sleep_seconds": 5})
FIRST_LOAD = ("example_incremental_load", {"load_date": "2026-01-15"})
AFTER_THE_FACT = {"backoff": BACKOFF_RUN, "pool": POOL_RUN, "first_load": FIRST_LOAD}
# A deferred sensor leaves the Celery workers' active tasks within this many seconds.
RELEASE_WITHIN = 20


@pytest.fixture(scope="module")
def triggered(stack: IntegrationStack, api: AirflowApi) -> dict[str, str]:
    """Every case, and the runs the tests below judge from their task instances' recorded times,
    triggered at once: they overlap on the workers as real workloads do, and their waits overlap."""
    stack.exec(
        "webhook-receiver", ["curl", "--fail", "--silent", "-X", "DELETE", "http://127.0.0.1:8080/received"]
    )
    runs = {name: (case.dag_id, case.conf) for name, case in CASES.items()} | AFTER_THE_FACT
    return {name: api.trigger(dag_id, conf) for name, (dag_id, conf) in runs.items()}


def test_example_dags_are_listed_without_import_errors(api: AirflowApi) -> None:
    for dag_id in EXAMPLE_DAGS:
        api.wait_for_dag(dag_id)
        dag = api.dags.get_dag(dag_id)
        assert dag.description, f"{dag_id} has no description"
        assert dag.tags, f"{dag_id} has no tags"
    errors = api.import_errors()
    assert not errors, errors


@pytest.mark.parametrize("name", list(CASES))
def test_example_run_ends_as_designed(name: str, triggered: dict[str, str], api: AirflowApi) -> None:
    case = CASES[name]
    run_id = triggered[name]
    assert api.wait_for_run(case.dag_id, run_id, timeout=900) == case.state
    states = {
        ti_key(ti): ti.state.value if ti.state else None for ti in api.task_instances(case.dag_id, run_id)
    }
    for task, expected in case.task_states.items():
        assert states.get(task) == expected, f"{name}: {task} is {states.get(task)}, expected {expected}"


# example_retries_and_failures' default_args: retry_delay, retry_exponential_backoff, max_retry_delay.
RETRY_DELAY_SECONDS, BACKOFF, MAX_RETRY_DELAY_SECONDS = 2.0, 2.0, 8.0


def test_retry_delays_grow_with_exponential_backoff(triggered: dict[str, str], api: AirflowApi) -> None:
    """Three failing tries, so three waits. Airflow waits at least retry_delay x backoff^(try-1) after
    a failed try (at most twice that, less 1 s), capped at max_retry_delay: at least 2, 4 and 8 s. Each
    wait is measured from the try's end to the moment the scheduler let the next try go (its
    scheduled_when): start_date would add the Celery hand-over and task start-up. The floors are hard:
    scheduling only adds delay. Without backoff every wait would be 2 s plus the scheduler's loop
    latency, so the last one fails its 8 s floor unless the scheduler lagged 6 s."""
    dag_id, run_id = BACKOFF_RUN[0], triggered["backoff"]
    assert api.wait_for_run(dag_id, run_id, timeout=600) == "success"
    tries = sorted(
        api.tis.get_task_instance_tries(dag_id, run_id, "flaky_then_succeeds").task_instances,
        key=lambda ti: ti.try_number,
    )
    assert [ti.try_number for ti in tries] == [1, 2, 3, 4]
    assert tries[-1].state.value == "success"
    for ti in tries:
        for moment in ("scheduled_when", "start_date", "end_date"):
            assert getattr(ti, moment), f"try {ti.try_number} has no {moment}: {ti}"
    waits = [(after.scheduled_when - before.end_date).total_seconds() for before, after in pairwise(tries)]
    gaps = [(after.start_date - before.end_date).total_seconds() for before, after in pairwise(tries)]
    floors = [min(RETRY_DELAY_SECONDS * BACKOFF**n, MAX_RETRY_DELAY_SECONDS) for n in range(len(waits))]
    assert floors == [2.0, 4.0, 8.0]  # the configuration this test reads, spelled out
    seen = f"waits {[f'{w:.1f}' for w in waits]} s, end-to-start gaps {[f'{g:.1f}' for g in gaps]} s"
    for n, (wait, floor) in enumerate(zip(waits, floors, strict=True), start=1):
        assert wait >= floor, f"try {n + 1} went {wait:.1f} s after try {n} ended, under {floor} s: {seen}"
    assert all(gap >= wait for gap, wait in zip(gaps, waits, strict=True)), seen


def test_failure_and_retry_alerts_reach_the_local_receiver(
    triggered: dict[str, str], stack: IntegrationStack, api: AirflowApi
) -> None:
    run_id = triggered["retries_and_failures"]
    assert api.wait_for_run("example_retries_and_failures", run_id, timeout=900) == "failed"
    deadline = time.monotonic() + 60
    while True:
        events = [
            alert["body"]["metadata"]["event_payload"]
            for alert in stack.received_alerts()
            if alert["body"].get("metadata", {}).get("event_payload", {}).get("run_id") == run_id
        ]
        failed = [e for e in events if e["task_id"] == "fails_on_purpose" and e["state"] == "failed"]
        retried = [
            e for e in events if e["task_id"] == "flaky_then_succeeds" and e["state"] == "up_for_retry"
        ]
        if (failed and len(retried) >= 2) or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert failed, f"no failure alert for fails_on_purpose; received {events}"
    alert = failed[0]
    assert alert["dag_id"] == "example_retries_and_failures"
    assert alert["try_number"] == 1
    assert all(part in alert["log_url"] for part in ("example_retries_and_failures", "fails_on_purpose"))
    assert sorted(e["try_number"] for e in retried)[:2] == [1, 2]


def test_pool_never_runs_more_than_its_two_slots(triggered: dict[str, str], api: AirflowApi) -> None:
    """6 tasks of 5 s in the 2-slot pool, judged from their recorded start and end times."""
    dag_id, run_id = POOL_RUN[0], triggered["pool"]
    assert api.wait_for_run(dag_id, run_id, timeout=600) == "success"
    pooled = [ti for ti in api.task_instances(dag_id, run_id) if ti.pool == "example_two_slots"]
    assert len(pooled) == POOL_RUN[1]["count"], f"{len(pooled)} task instances in example_two_slots"
    peak = peak_overlap([(ti.start_date.timestamp(), ti.end_date.timestamp()) for ti in pooled])
    assert 1 <= peak <= 2, f"{peak} tasks ran at once in a 2-slot pool"


def test_deferrable_sensor_frees_its_slot_and_resumes_on_a_row(
    stack: IntegrationStack, api: AirflowApi
) -> None:
    dag_id = "example_deferrable_sensor"
    # With no row coming, this run's sensor times out and the run fails; it waits beside the other run
    # (its 15 s run out long before the row below is written).
    timed_out = api.trigger(dag_id, {"timeout_seconds": 15})
    run_id = api.trigger(dag_id, {})
    deadline = time.monotonic() + 300
    while (sensor := api.task_instance(dag_id, run_id, "wait_for_signal")).state is None or (
        sensor.state.value != "deferred"
    ):
        assert time.monotonic() < deadline, f"the sensor never deferred: {sensor.state}"
        time.sleep(2)
    # The positive control: a task that runs on a worker all through the probe below (started after
    # the sensor deferred, it sleeps longer than the probe's RELEASE_WITHIN can take). The probe must see
    # it, or not seeing the sensor would prove nothing.
    control = api.trigger("smoke_mapped", {"count": 1, "sleep_seconds": RELEASE_WITHIN + 5})
    deadline = time.monotonic() + 300
    while not [
        ti
        for ti in api.task_instances("smoke_mapped", control)
        if ti.task_id == "work" and ti.state is not None and ti.state.value == "running"
    ]:
        assert time.monotonic() < deadline, "the control task never ran"
        time.sleep(2)
    sensor_task = celery_task_id(stack, dag_id, run_id, "wait_for_signal")
    control_task = celery_task_id(stack, "smoke_mapped", control, "work", map_index=0)
    # Deferred means no worker process holds it any more: once the task process has handed over to
    # the triggerer and exited, no Celery worker reports the task among its active ones.
    released_by = time.monotonic() + RELEASE_WITHIN
    while True:
        active = active_celery_tasks(stack)
        assert control_task in active, f"the probe misses the running control task {control_task}: {active}"
        if sensor_task not in active:
            break
        assert time.monotonic() < released_by, (
            f"the deferred sensor still occupies a worker slot after {RELEASE_WITHIN} s"
        )
        time.sleep(2)
    assert api.task_instance(dag_id, run_id, "wait_for_signal").state.value == "deferred"
    assert api.wait_for_run(dag_id, timed_out, timeout=300) == "failed"
    stack.sql_demo("INSERT INTO demo.signals (name) VALUES ('go')")
    assert api.wait_for_run(dag_id, run_id, timeout=300) == "success"
    assert api.wait_for_run("smoke_mapped", control, timeout=300) == "success"


def test_incremental_load_is_idempotent(
    triggered: dict[str, str], stack: IntegrationStack, api: AirflowApi
) -> None:
    (dag_id, conf), first = FIRST_LOAD, triggered["first_load"]
    query = (
        "SELECT order_id, customer, amount FROM demo.daily_sales "
        f"WHERE sale_date = '{conf['load_date']}' ORDER BY order_id"
    )
    assert api.wait_for_run(dag_id, first, timeout=600) == "success"
    rows_after_first = stack.sql_demo(query)
    second = api.trigger(dag_id, conf)
    assert api.wait_for_run(dag_id, second, timeout=600) == "success"
    assert rows_after_first, "the load wrote no rows"
    assert stack.sql_demo(query) == rows_after_first


def peak_overlap(intervals: list[tuple[float, float]]) -> int:
    """Most intervals open at once. Deliberately the test's own, not the DAG's check_overlap: an
    oracle shared with the code under test would agree with it when both are wrong."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_mapped_throttle_holds_three_at_once(triggered: dict[str, str], api: AirflowApi) -> None:
    run_id = triggered["throttle_ok"]
    assert api.wait_for_run("example_mapped_throttle", run_id, timeout=900) == "success"
    mapped = [ti for ti in api.task_instances("example_mapped_throttle", run_id) if ti.task_id == "process"]
    intervals = [(ti.start_date.timestamp(), ti.end_date.timestamp()) for ti in mapped]
    assert len(intervals) == 10
    assert 1 < peak_overlap(intervals) <= 3, f"peak concurrency {peak_overlap(intervals)}"
