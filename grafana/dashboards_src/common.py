"""What every dashboard shares: the tag, the uids, the links between dashboards, the dag_id and task_id
variables, and sentences that several panel descriptions repeat."""

from __future__ import annotations

from .panels import (
    GREEN,
    ORANGE,
    RED,
    Json,
    dashboard_link,
    dashboards_link,
    hidden_query_variable,
    query_variable,
    steps_up,
)

TAG = "airflow"

ONCALL_UID = "airflow-oncall"  # Grafana's home (GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH)
OVERVIEW_UID = "airflow-overview"
SCHEDULER_UID = "airflow-scheduler"
WORKERS_UID = "airflow-workers"
METADATA_UID = "airflow-metadata"
DRILLDOWN_UID = "airflow-dag-drilldown"
RESOURCES_UID = "airflow-resources"

# Any DAG with a finished task instance, in whatever state: a DAG that never succeeded can be picked.
DAG_ID_QUERY = "label_values(airflow_ti_finish, dag_id)"
TASK_ID_QUERY = 'label_values(airflow_ti_finish{dag_id=~"$dag_id"}, task_id)'

# redis_exporter's check of the Celery queue (a Redis list named after the queue). Redis deletes an
# empty list; should the exporter then report nothing, a reachable Redis still reads as 0.
BROKER_QUEUE = 'sum by (key) (redis_key_size{key="default"}) or on () (max(redis_up) * 0)'
BROKER_STEPS = steps_up(GREEN, (ORANGE, 8), (RED, 32))

RATE_NOTE = (
    " Rates miss the very first event of a new label set (statsd_exporter creates the series with that "
    "event already counted); the range counts on the overview and drill-down include it."
)
LAST_WRITER_NOTE = (
    " Both schedulers send this gauge with identical labels, so statsd_exporter keeps whichever wrote "
    "last (upstream #26601): it is one scheduler's view, never a total, and must not be summed."
)


def links(*, to_drilldown: bool = False) -> list[Json]:
    result = [dashboards_link(TAG, "Airflow dashboards")]
    if to_drilldown:
        result.append(
            dashboard_link(
                DRILLDOWN_UID, "DAG drill-down", "Per-DAG and per-task detail for the selected DAGs"
            )
        )
    return result


def dag_id_variable() -> Json:
    return query_variable(
        "dag_id",
        "DAG",
        DAG_ID_QUERY,
        "DAGs with at least one finished task instance since statsd_exporter started.",
    )


def task_id_variable() -> Json:
    return query_variable(
        "task_id",
        "Task",
        TASK_ID_QUERY,
        "Tasks of the selected DAGs with at least one finished task instance.",
    )


# The Airflow UI's address, for links to DAG pages. Dashboard JSON cannot read the environment, so the
# worker-capacity service exports Airflow's [api] base_url (AIRFLOW_PUBLIC_URL in .env) as a label.
AIRFLOW_URL_VARIABLE = "airflow_url"


def airflow_url_variable() -> Json:
    return hidden_query_variable(
        AIRFLOW_URL_VARIABLE,
        "label_values(airflow_ui_info, url)",
        "The Airflow UI's address ([api] base_url, AIRFLOW_PUBLIC_URL in .env), exported by worker-capacity.",
    )


def airflow_dag_link() -> Json:
    """A table-cell link from a dag_id to its page in the Airflow UI, in a new tab."""
    return {
        "targetBlank": True,
        "title": "Open ${__value.raw} in Airflow",
        "url": f"${{{AIRFLOW_URL_VARIABLE}}}/dags/${{__value.raw}}",
    }
