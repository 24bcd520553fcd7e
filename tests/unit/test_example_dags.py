"""The example DAGs' structure and defaults: task ids, dependencies, trigger rules, pools, retries,
owners, callbacks, params. test_dags.py already checks every file imports fast and cleanly with a
description, tags and catchup off; this adds what each example promises, and that parsing a DAG file
does no heavy work (no database driver or provider hook imported at parse time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pendulum
import pytest
from stack_patterns.alerts import on_failure_alert, on_retry_alert

from tests.unit.example_support import DAGS, PLUGINS, REPO, load_dag

# dag_id -> (file, {task_id: (upstream task ids, trigger rule)})
EXPECTED: dict[str, tuple[str, dict[str, tuple[set[str], str]]]] = {
    "example_mapped_throttle": (
        "example_mapped_throttle.py",
        {
            "plan": (set(), "all_success"),
            "process": ({"plan"}, "all_success"),
            "aggregate": ({"plan", "process"}, "all_done"),
            "enforce_threshold": ({"aggregate"}, "all_success"),
        },
    ),
    "example_branching": (
        "example_branching.py",
        {
            "choose": (set(), "all_success"),
            "fast_path": ({"choose"}, "all_success"),
            "thorough_prepare": ({"choose"}, "all_success"),
            "thorough_check": ({"thorough_prepare"}, "all_success"),
            "join": ({"fast_path", "thorough_check"}, "none_failed_min_one_success"),
            "report": ({"join"}, "all_success"),
        },
    ),
    "example_deferrable_sensor": (
        "example_deferrable_sensor.py",
        {
            "create_signals_table": (set(), "all_success"),
            "wait_for_signal": ({"create_signals_table"}, "all_success"),
            "consume_signal": ({"wait_for_signal"}, "all_success"),
        },
    ),
    "example_pool_limited": (
        "example_pool_limited.py",
        {
            "plan": (set(), "all_success"),
            "work": ({"plan"}, "all_success"),
            "check_overlap": ({"work"}, "all_success"),
        },
    ),
    "example_incremental_load": (
        "example_incremental_load.py",
        {
            "prepare_tables": (set(), "all_success"),
            "load_partition": ({"prepare_tables"}, "all_success"),
            "quality_gate": ({"load_partition"}, "all_success"),
            "publish_partition": ({"quality_gate"}, "all_success"),
        },
    ),
    "example_retries_and_failures": (
        "example_retries_and_failures.py",
        {
            "flaky_then_succeeds": (set(), "all_success"),
            "times_out": (set(), "all_success"),
            "fails_on_purpose": (set(), "all_success"),
            "never_runs": ({"fails_on_purpose"}, "all_success"),
        },
    ),
}
OWNERS = {"example_incremental_load": "data-eng"}


def as_list(callbacks: Any) -> list[Any]:
    return list(callbacks) if isinstance(callbacks, list | tuple) else [callbacks]


@pytest.fixture(scope="module", params=sorted(EXPECTED))
def dag_and_spec(request: pytest.FixtureRequest) -> tuple[Any, dict[str, tuple[set[str], str]]]:
    filename, tasks = EXPECTED[request.param]
    return load_dag(filename, request.param), tasks


def test_every_example_file_is_covered() -> None:
    files = {p.name for p in DAGS.glob("example_*.py")} - {"example_dag_factory.py"}
    assert files == {filename for filename, _ in EXPECTED.values()}


def test_tasks_dependencies_and_trigger_rules(dag_and_spec: tuple[Any, dict]) -> None:
    dag, tasks = dag_and_spec
    assert set(dag.task_ids) == set(tasks)
    for task_id, (upstream, trigger_rule) in tasks.items():
        task = dag.get_task(task_id)
        assert task.upstream_task_ids == upstream, task_id
        assert task.trigger_rule == trigger_rule, task_id


def test_defaults(dag_and_spec: tuple[Any, dict]) -> None:
    dag, _ = dag_and_spec
    assert "example" in dag.tags
    assert dag.start_date == pendulum.datetime(2026, 1, 1, tz="UTC")
    assert dag.catchup is False
    expected_schedule = "@daily" if dag.dag_id == "example_incremental_load" else None
    assert dag.schedule == expected_schedule
    assert dag.default_args["owner"] == OWNERS.get(dag.dag_id, "platform")
    assert isinstance(dag.default_args["retries"], int)
    assert dag.default_args["retry_delay"] <= timedelta(seconds=5), "CI runs every DAG: keep retries short"
    for task in dag.tasks:
        assert on_failure_alert in as_list(task.on_failure_callback), task.task_id
        assert on_retry_alert in as_list(task.on_retry_callback), task.task_id


def test_every_example_file_starts_with_its_documentation() -> None:
    for path in DAGS.glob("example_*.py"):
        text = path.read_text()
        assert text.startswith('"""Example: '), path.name
        assert "Trigger:" in text.split('"""')[1], f"{path.name} does not say how to trigger it"


def test_mapped_throttle() -> None:
    dag = load_dag("example_mapped_throttle.py", "example_mapped_throttle")
    process = dag.get_task("process")
    assert process.max_active_tis_per_dag == 3
    assert process.retries == 0
    assert {"count", "fail_every", "tolerated_failures", "sleep_seconds"} <= set(dag.params)
    assert dag.params["fail_every"] == 0


def test_branching_params() -> None:
    dag = load_dag("example_branching.py", "example_branching")
    assert dag.params["branch"] == "fast"
    assert dag.params.get_param("branch").schema["enum"] == ["fast", "thorough"]
    assert dag.params["fail_branch"] is False


def test_deferrable_sensor_uses_the_plugin_sensor() -> None:
    from stack_patterns.sensors import PostgresRowSensor

    dag = load_dag("example_deferrable_sensor.py", "example_deferrable_sensor")
    sensor = dag.get_task("wait_for_signal")
    assert isinstance(sensor, PostgresRowSensor)
    assert (sensor.conn_id, sensor.table, sensor.column) == ("demo_db", "demo.signals", "name")
    assert sensor.value == "{{ params.signal_name }}"
    assert sensor.wait_timeout == "{{ params.timeout_seconds }}"
    assert dag.params["signal_name"] == "go"


def test_pool_dag_uses_the_two_slot_pool_declared_in_pools_json() -> None:
    pools = json.loads((REPO / "config" / "pools.json").read_text())
    assert "default_pool" not in pools  # sized to the live workers by worker-capacity
    dag = load_dag("example_pool_limited.py", "example_pool_limited")
    work = dag.get_task("work")
    assert work.pool == "example_two_slots"
    assert work.pool_slots == 1
    assert pools["example_two_slots"] == {
        "slots": 2,
        "description": pools["example_two_slots"]["description"],
        "include_deferred": False,
    }
    assert dag.params["count"] == 6


def test_pool_overlap_computation() -> None:
    import importlib

    module = importlib.import_module("dags.example_pool_limited")
    assert module.max_overlap([]) == 0
    assert module.max_overlap([(0, 5), (5, 10)]) == 1  # one ends as the next starts
    assert module.max_overlap([(0, 5), (1, 6), (2, 3)]) == 3
    assert module.max_overlap([(0, 4), (1, 2), (3, 5), (6, 7)]) == 2


def test_retries_and_failures() -> None:
    dag = load_dag("example_retries_and_failures.py", "example_retries_and_failures")
    flaky = dag.get_task("flaky_then_succeeds")
    assert flaky.retries == 3
    assert flaky.retry_exponential_backoff == 2.0
    assert flaky.retry_delay == timedelta(seconds=2)
    assert flaky.max_retry_delay == timedelta(seconds=8)
    times_out = dag.get_task("times_out")
    assert times_out.execution_timeout == timedelta(seconds=3)
    assert times_out.retries == 0
    assert dag.params["fail_on_purpose"] is True
    assert dag.params["timeout_on_purpose"] is True


def test_incremental_load_source_is_deterministic() -> None:
    import importlib
    from datetime import date

    module = importlib.import_module("dags.example_incremental_load")
    day = date(2026, 1, 15)
    assert module.source_rows(day) == module.source_rows(day)
    assert len(module.source_rows(day)) == 6
    bad = module.source_rows(day, inject_bad_rows=True)
    assert len(bad) == 8
    assert any(amount is None for _, _, amount in bad)
    assert any(amount is not None and amount < 0 for _, _, amount in bad)
    assert all(5 <= len(module.source_rows(day + timedelta(days=n))) <= 9 for n in range(10))


def test_incremental_load_date_resolution() -> None:
    import importlib
    from datetime import date
    from types import SimpleNamespace

    module = importlib.import_module("dags.example_incremental_load")
    run = SimpleNamespace(run_after=pendulum.datetime(2026, 3, 2, 1, tz="UTC"))
    interval_start = pendulum.datetime(2026, 3, 1, tz="UTC")
    assert module.resolve_load_date({"params": {"load_date": "2026-01-15"}}) == date(2026, 1, 15)
    assert module.resolve_load_date(
        {"params": {"load_date": ""}, "data_interval_start": interval_start, "dag_run": run}
    ) == date(2026, 3, 1)
    assert module.resolve_load_date({"params": {"load_date": ""}, "dag_run": run}) == date(2026, 3, 2)


def test_parsing_a_dag_file_imports_no_database_driver() -> None:
    """Heavy imports (a DB driver, a provider hook) belong inside tasks, not at parse time."""
    script = (
        "import sys, json\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "before = set(sys.modules)\n"
        f"bag = DagBag(dag_folder={str(DAGS)!r})\n"
        "assert not bag.import_errors, bag.import_errors\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGINS), str(REPO)])}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    imported = json.loads(result.stdout.strip().splitlines()[-1])
    heavy = [m for m in imported if m.split(".")[0] in {"psycopg", "psycopg2", "asyncpg"}]
    heavy += [m for m in imported if m.startswith("airflow.providers.postgres.hooks")]
    assert not heavy, f"imported while parsing dags/: {heavy}"
