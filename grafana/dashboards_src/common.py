"""What every dashboard shares: the tag, the uids, the links between dashboards, the dag_id and task_id
variables, and sentences that several panel descriptions repeat."""

from __future__ import annotations

from .panels import GREEN, ORANGE, RED, Json, dashboard_link, dashboards_link, query_variable, steps_up

TAG = "airflow"

OVERVIEW_UID = "airflow-overview"
SCHEDULER_UID = "airflow-scheduler"
WORKERS_UID = "airflow-workers"
METADATA_UID = "airflow-metadata"
DRILLDOWN_UID = "airflow-dag-drilldown"

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
