"""Test DAG of tests/integration/test_02_smoke_run.py, not an example: its task fails unless the task
process inherited config/celery_worker_preload.py from the Celery worker's main process (Celery's
`imports`, set in [celery] extra_celery_config), i.e. unless the modules it preloads were imported once
before the fork instead of in every task. The test copies this file into the test stack's dags/."""

from __future__ import annotations

import sys

import pendulum
from airflow.sdk import dag, task

PRELOAD = "celery_worker_preload"


@dag(
    dag_id="preload_probe",
    description="Fails unless its task process inherited the worker's preloaded modules.",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["tests"],
    default_args={"owner": "platform", "retries": 0},
)
def preload_probe() -> None:
    @task
    def inherited() -> None:
        if PRELOAD not in sys.modules:
            raise RuntimeError(f"{PRELOAD} was not imported before this task process was forked")
        print(f"{PRELOAD} inherited: {sys.modules[PRELOAD].__file__}")

    inherited()


preload_probe()
