"""The smoke DAG, triggered through the REST API, succeeds on the Celery workers, and every task's
log is readable through the API; and a task process inherits the modules the worker's main process
preloaded (config/celery_worker_preload.py) instead of importing them again."""

from __future__ import annotations

import shutil
from pathlib import Path

from stackkit.airflow_api import AirflowApi
from tests.integration.testbed import IntegrationStack

DAG = "smoke_mapped"
PROBE_SOURCE = Path(__file__).resolve().parent / "dags" / "preload_probe.py"
PROBE_DAG = "preload_probe"


def test_mapped_smoke_run_succeeds_with_readable_logs(stack: IntegrationStack, api: AirflowApi) -> None:
    run_id = api.trigger(DAG, {"count": 20, "sleep_seconds": 0})
    assert api.wait_for_run(DAG, run_id, timeout=600) == "success"

    tis = api.task_instances(DAG, run_id)
    mapped = [ti for ti in tis if ti.task_id == "work"]
    assert len(mapped) == 20
    assert {ti.state.value for ti in tis} == {"success"}
    workers = {c.attrs["Config"]["Hostname"] for c in stack.containers("airflow-worker")}
    assert {ti.hostname for ti in tis} <= workers, "a task ran outside the Celery workers"

    for ti in mapped:
        log = api.log(ti)
        assert f"item {ti.map_index} done on worker" in log, f"map_index {ti.map_index}: {log[-500:]}"
    (gather,) = [ti for ti in tis if ti.task_id == "gather"]
    assert "20 items done on" in api.log(gather)


def test_a_task_process_inherits_the_workers_preloaded_modules(
    stack: IntegrationStack, api: AirflowApi
) -> None:
    probe = stack.dags_dir / "zz_preload_probe_by_tests.py"
    shutil.copyfile(PROBE_SOURCE, probe)
    probe.chmod(0o644)
    try:
        api.wait_for_dag(PROBE_DAG, timeout=120)
        run_id = api.trigger(PROBE_DAG)
        state = api.wait_for_run(PROBE_DAG, run_id, timeout=300)
        (ti,) = api.task_instances(PROBE_DAG, run_id)
        log = api.log(ti)
        assert state == "success", log[-2000:]
        assert "celery_worker_preload inherited: /opt/airflow/config/celery_worker_preload.py" in log, log[
            -2000:
        ]
    finally:
        probe.unlink(missing_ok=True)
