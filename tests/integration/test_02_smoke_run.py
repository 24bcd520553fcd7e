"""The smoke DAG, triggered through the REST API, succeeds on the Celery workers, and every task's
log is readable through the API."""

from __future__ import annotations

from stackkit.airflow_api import AirflowApi
from tests.integration.testbed import IntegrationStack

DAG = "smoke_mapped"


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
