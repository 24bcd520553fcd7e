"""The example DAGs run in the stack and end as designed: the ones meant to succeed succeed, the ones
meant to fail fail in the task that should, and each shows its pattern (throttle, trigger rules,
branch join, pool limit, idempotent load, retries with backoff, timeout, alerts)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from tests.integration.airflow_api import AirflowApi
from tests.integration.stack import Stack

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


def active_celery_tasks(stack: Stack) -> str:
    """`celery inspect active` of every worker, as JSON text."""
    app = "airflow.providers.celery.executors.celery_executor.app"
    return stack.exec(
        "airflow-worker", ["celery", "--app", app, "inspect", "active", "--json", "--timeout", "10"]
    )


def ti_key(ti) -> str:
    return ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"


@pytest.fixture(scope="module")
def triggered(stack: Stack, api: AirflowApi) -> dict[str, str]:
    """Every case triggered at once (they overlap on the workers as real workloads do)."""
    stack.exec(
        "webhook-receiver", ["curl", "--fail", "--silent", "-X", "DELETE", "http://127.0.0.1:8080/received"]
    )
    return {name: api.trigger(case.dag_id, case.conf) for name, case in CASES.items()}


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


def test_retry_backoff_reached_the_third_try(triggered: dict[str, str], api: AirflowApi) -> None:
    run_id = triggered["retries_and_failures"]
    assert api.wait_for_run("example_retries_and_failures", run_id, timeout=900) == "failed"
    (flaky,) = [
        ti
        for ti in api.task_instances("example_retries_and_failures", run_id)
        if ti.task_id == "flaky_then_succeeds"
    ]
    assert flaky.try_number == 3


def test_failure_and_retry_alerts_reach_the_local_receiver(
    triggered: dict[str, str], stack: Stack, api: AirflowApi
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


def test_pool_never_runs_more_than_its_two_slots(stack: Stack, api: AirflowApi) -> None:
    run_id = api.trigger("example_pool_limited", {"count": 6, "sleep_seconds": 5})
    peak = 0
    deadline = time.monotonic() + 600
    while api.run_state("example_pool_limited", run_id) not in ("success", "failed"):
        (row,) = stack.sql(
            "SELECT count(*) FROM task_instance WHERE pool = 'example_two_slots' AND state = 'running'"
        )
        peak = max(peak, int(row[0]))
        assert time.monotonic() < deadline, "the pool run did not finish"
        time.sleep(0.5)
    assert api.run_state("example_pool_limited", run_id) == "success"
    assert 1 <= peak <= 2, f"{peak} tasks ran at once in a 2-slot pool"


def test_deferrable_sensor_frees_its_slot_and_resumes_on_a_row(stack: Stack, api: AirflowApi) -> None:
    dag_id = "example_deferrable_sensor"
    # With no row coming, the sensor times out and the run fails.
    timed_out = api.trigger(dag_id, {"timeout_seconds": 15})
    assert api.wait_for_run(dag_id, timed_out, timeout=300) == "failed"

    run_id = api.trigger(dag_id, {})
    deadline = time.monotonic() + 300
    while (sensor := api.task_instance(dag_id, run_id, "wait_for_signal")).state is None or (
        sensor.state.value != "deferred"
    ):
        assert time.monotonic() < deadline, f"the sensor never deferred: {sensor.state}"
        time.sleep(2)
    # Deferred means no worker process holds it any more: once the task process has handed over to
    # the triggerer and exited, no Celery worker reports the task among its active ones.
    released_by = time.monotonic() + 30
    while str(sensor.id) in active_celery_tasks(stack):
        assert time.monotonic() < released_by, "the deferred sensor still occupies a worker slot after 30 s"
        time.sleep(2)
    assert api.task_instance(dag_id, run_id, "wait_for_signal").state.value == "deferred"
    stack.sql_demo("INSERT INTO demo.signals (name) VALUES ('go')")
    assert api.wait_for_run(dag_id, run_id, timeout=300) == "success"


def test_incremental_load_is_idempotent(stack: Stack, api: AirflowApi) -> None:
    dag_id, conf = "example_incremental_load", {"load_date": "2026-01-15"}
    query = (
        "SELECT order_id, customer, amount FROM demo.daily_sales "
        "WHERE sale_date = '2026-01-15' ORDER BY order_id"
    )
    first = api.trigger(dag_id, conf)
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
