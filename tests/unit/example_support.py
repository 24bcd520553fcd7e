"""Shared by the tests of dags/ and plugins/: loads DAG files the way the dag-processor does, and
builds the task-instance context the worker hands to callbacks. (plugins/ is on pytest's
pythonpath, as Airflow puts it on sys.path in every container, so `stack_patterns` imports.)"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
PLUGINS = REPO / "plugins"

if TYPE_CHECKING:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import DAG
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance


def dagbag(filename: str) -> DagBag:
    """The DagBag of one file of dags/, as the dag-processor fills it (import errors included)."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS / filename))


def load_dag(filename: str, dag_id: str) -> DAG:
    bag = dagbag(filename)
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


def runtime_ti(
    dag: DAG,
    task_id: str,
    *,
    try_number: int = 1,
    map_index: int = -1,
    conf: dict[str, Any] | None = None,
) -> RuntimeTaskInstance:
    """A task instance as the Task SDK's task runner builds it on a worker, for a manual run on 2026-01-15."""
    import pendulum
    from airflow.dag_processing.bundles.local import LocalDagBundle
    from airflow.sdk.api.datamodels._generated import (
        DagRun,
        DagRunState,
        DagRunType,
        TaskInstance,
        TaskInstanceState,
        TIRunContext,
    )
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    task = dag.get_task(task_id)
    when = pendulum.datetime(2026, 1, 15, 12, tz="UTC")
    dag_run = DagRun(
        dag_id=dag.dag_id,
        run_id="manual__2026-01-15T12:00:00+00:00",
        logical_date=when,
        data_interval_start=when,
        data_interval_end=when,
        run_after=when,
        start_date=when,
        end_date=None,
        run_type=DagRunType.MANUAL,
        state=DagRunState.RUNNING,
        conf=conf or {},
        consumed_asset_events=[],
        partition_key=None,
    )
    ti = TaskInstance(
        id=uuid.uuid4(),
        task_id=task_id,
        dag_id=dag.dag_id,
        run_id=dag_run.run_id,
        try_number=try_number,
        dag_version_id=uuid.uuid4(),
        map_index=map_index,
        hostname="airflow-worker-1",
    )
    context = TIRunContext(dag_run=dag_run, max_tries=task.retries)
    # What the task runner's startup() does with the StartupDetails the supervisor sends.
    return RuntimeTaskInstance.model_construct(
        **ti.model_dump(exclude_unset=True),
        task=task,
        bundle_instance=LocalDagBundle(name="dags-folder", path=str(DAGS)),
        _ti_context_from_server=context,
        max_tries=context.max_tries,
        start_date=when,
        state=TaskInstanceState.RUNNING,
    )


@contextmanager
def running_receiver() -> Iterator[str]:
    """scripts/webhook_receiver.py serving on a free local port in a thread; yields its base URL."""
    from scripts.webhook_receiver import make_server

    server = make_server("127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
