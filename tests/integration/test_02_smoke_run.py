"""The smoke DAG, triggered through the REST API, succeeds on the Celery workers, and every task's
log is readable through the API."""

from __future__ import annotations

from tests.integration.airflow_api import AirflowApi

DAG = "smoke_mapped"


def test_mapped_smoke_run_succeeds_with_readable_logs(api: AirflowApi) -> None:
    run_id = api.trigger(DAG, {"count": 20, "sleep_seconds": 0})
    assert api.wait_for_run(DAG, run_id, timeout=600) == "success"

    tis = api.task_instances(DAG, run_id)
    mapped = [ti for ti in tis if ti.task_id == "work"]
    assert len(mapped) == 20
    assert {ti.state.value for ti in tis} == {"success"}
    assert {ti.executor for ti in tis} <= {None, "CeleryExecutor"}

    for ti in mapped:
        log = api.log(ti)
        assert f"item {ti.map_index} done on worker" in log, f"map_index {ti.map_index}: {log[-500:]}"
    (gather,) = [ti for ti in tis if ti.task_id == "gather"]
    assert "20 items done on" in api.log(gather)
