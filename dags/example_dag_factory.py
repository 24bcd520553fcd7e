"""Example: a config-driven DAG factory, one DAG `factory_<name>` per entry of config/dag_factory.yml.

Pattern: structure is generated at parse time from a small local file (cheap to read on every parse),
never from a database or an API. Each DAG: `check_source` >> `load_<table>` (one per table, in
parallel) >> `publish`. Entries are validated first (plugins/stack_patterns/dag_factory.py): bad YAML or
a bad entry raises an error naming it, which Airflow shows as this file's import error. All or
nothing: while the file fails, none of its DAGs is updated, and Airflow marks them stale (hidden, not
scheduled) about a minute later; the unit tests parse config/dag_factory.yml, so CI catches it first.
Shows: adding a pipeline is a YAML change, not code; a broken config is loud, not silent.
The config is config/dag_factory.yml next to dags/ (/opt/airflow/config in the containers); the
environment variable STACK_DAG_FACTORY_CONFIG can name another file.
Trigger: `POST /api/v2/dags/factory_orders/dagRuns` with `{"conf": {}}`, or
`{"conf": {"fail_table": "orders"}}` to make `load_orders` fail (then `publish` is upstream_failed).
"""

from __future__ import annotations

import time
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException
from stack_patterns.alerts import ALERT_CALLBACKS
from stack_patterns.dag_factory import PipelineSpec, entry_label, load_pipeline_specs, raise_for_errors
from stack_patterns.paths import config_file

CONFIG_ENV_VAR = "STACK_DAG_FACTORY_CONFIG"


def build_dag(spec: PipelineSpec) -> DAG:
    @dag(
        dag_id=spec.dag_id,
        description=spec.description,
        schedule=spec.schedule,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        tags=["example", "factory", *spec.tags],
        params={
            "fail_table": Param("", type="string", description="Table whose load fails on purpose"),
        },
        default_args={
            "owner": spec.owner,
            "retries": spec.retries,
            "retry_delay": timedelta(seconds=5),
            **ALERT_CALLBACKS,
        },
    )
    def pipeline() -> None:
        @task
        def check_source() -> list[str]:
            print(f"source for {spec.name} is ready: tables {', '.join(spec.tables)}")
            return list(spec.tables)

        @task  # AirflowFailException below fails at once, whatever the retries
        def load(table: str) -> str:
            time.sleep(spec.sleep_seconds)
            if get_current_context()["params"]["fail_table"] == table:
                raise AirflowFailException(f"loading {table} fails on purpose (fail_table={table})")
            print(f"loaded {spec.name}.{table}")
            return table

        @task
        def publish(tables: list[str]) -> None:
            print(f"published {spec.name}: {', '.join(tables)}")

        source = check_source()
        loads = [load.override(task_id=f"load_{table}")(table) for table in spec.tables]
        source >> loads
        publish(loads)

    return pipeline()


def build_all() -> dict[str, DAG]:
    path = config_file("dag_factory.yml", anchor=__file__, env_var=CONFIG_ENV_VAR)
    dags: dict[str, DAG] = {}
    errors: list[str] = []
    for index, spec in enumerate(load_pipeline_specs(path), start=1):
        try:
            built = build_dag(spec)
            built.validate()  # what the dag-processor checks next, here so the error can name the entry
            dags[spec.dag_id] = built
        except Exception as error:  # e.g. a schedule Airflow does not accept
            errors.append(f"{entry_label(index, {'name': spec.name})}: {type(error).__name__}: {error}")
    raise_for_errors(path, errors)
    return dags


# One module-level name per dag_id. (Airflow 3 also auto-registers every DAG built during the import.)
globals().update(build_all())
