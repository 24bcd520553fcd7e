"""On call: Grafana's home. What is firing, which component is missing against the topology, scheduler
lag, queue and capacity, and the DAGs failing in the last hour with links to their Airflow page and
drill-down. Stack-wide values come from the recording rules the alerts read, so the colours here and
the alerts agree (thresholds.py); the expected counts come from the topology, not from constants."""

from __future__ import annotations

from .common import (
    AIRFLOW_URL_VARIABLE,
    BROKER_QUEUE,
    BROKER_STEPS,
    ONCALL_UID,
    TAG,
    airflow_dag_link,
    airflow_url_variable,
    links,
)
from .overview import RATIO_STEPS
from .panels import (
    BLUE,
    GREEN,
    ORANGE,
    RED,
    YELLOW,
    Column,
    Dashboard,
    Json,
    Panel,
    Query,
    stat,
    steps_up,
    table,
    value_text,
)
from .thresholds import SCHEDULER_LAG, SCHEDULER_LAG_WARNING, TASK_FAILURE_RATIO, TASK_FAILURE_RATIO_NOTICE
from .workers import LIVE_SLOTS, POOL_SIZE

FIRING = 'ALERTS{alertstate="firing"}'
ALERT_KEYS = "alertname, severity, service"

# Live and expected per component. Schedulers, triggerer and dag-processor: jobs with a recent heartbeat
# in the metadata database (postgres-exporter) and the number the topology expects (recording rule).
# Celery workers: online in Flower against the most worker-capacity counted in 30 min, as the
# AirflowCeleryWorkersBelowExpected alert compares them.
WORKERS = '"job_type", "CeleryWorker", "", ""'
LIVE = f"job_type:airflow_jobs_live:max or label_replace(sum(flower_worker_online), {WORKERS})"
EXPECTED = f"job_type:airflow_jobs_live:expected or label_replace(airflow:celery_workers:expected, {WORKERS})"
# A component with no live series at all counts as 0 live.
MISSING = f"clamp_min(({EXPECTED}) - on (job_type) (({LIVE}) or ({EXPECTED}) * 0), 0)"

# DAGs with a failed run or a failed task attempt in the last hour (the alerts' 1 h recording rules).
FAILED_RUNS = "dag_id:airflow_dagrun_duration_failed_count:increase1h"
FAILED_TASKS = 'sum by (dag_id) (dag_id_state:airflow_ti_finish:increase1h{state="failed"})'
FAILING = f"({FAILED_RUNS} > 0) or ({FAILED_TASKS} > 0)"

DEFAULT_POOL = 'pool_name="default_pool"'
POOL_IN_USE = (
    f"(max(airflow_pool_running_slots{{{DEFAULT_POOL}}}) + max(airflow_pool_queued_slots{{{DEFAULT_POOL}}}))"
    f" / {POOL_SIZE}"
)


def failing(expr: str) -> str:
    return f"({expr}) and on (dag_id) ({FAILING})"


def airflow_ui_link() -> Json:
    return {
        "asDropdown": False,
        "icon": "external link",
        "includeVars": False,
        "keepTime": False,
        "tags": [],
        "targetBlank": True,
        "title": "Airflow UI",
        "tooltip": "The Airflow UI at AIRFLOW_PUBLIC_URL",
        "type": "link",
        "url": f"${{{AIRFLOW_URL_VARIABLE}}}",
    }


def row_summary() -> list[Panel]:
    """Alerts, components, scheduler lag, failure ratio."""
    return [
        stat(
            "Critical alerts firing",
            "Alerts of severity critical firing now (act now). Which ones: 'Firing now' below; each "
            "has a runbook in docs/runbooks.md under its name in lower case.",
            [
                Query(
                    'count(ALERTS{alertstate="firing", severity="critical"}) or vector(0)',
                    instant=True,
                )
            ],
            "short",
            steps_up(GREEN, (RED, 1)),
            decimals=0,
        ),
        stat(
            "Warnings firing",
            "Alerts of severity warning firing now (act today). 'Firing now' below names them; the "
            "runbook of each is in docs/runbooks.md under its name in lower case.",
            [Query('count(ALERTS{alertstate="firing", severity="warning"}) or vector(0)', instant=True)],
            "short",
            steps_up(GREEN, (ORANGE, 1)),
            decimals=0,
        ),
        stat(
            "Alerting pipeline · Watchdog",
            "Watchdog always fires while Prometheus evaluates the rules. Not firing: the rules are not "
            "evaluated, so no other alert can fire either; check `docker compose logs prometheus`. "
            "Delivery to Alertmanager is watched by its own alert.",
            [
                Query(
                    'count(ALERTS{alertname="Watchdog", alertstate="firing"}) or vector(0)',
                    instant=True,
                )
            ],
            "short",
            [(RED, None), (GREEN, 1)],
            mappings=[value_text("1", "firing: OK"), value_text("0", "NOT firing", RED)],
        ),
        stat(
            "Components missing",
            "Schedulers, triggerers, dag-processors and Celery workers expected but not live, summed "
            "(the table 'Components · live vs expected' says which). Expected comes from the topology: "
            "the recording rules job_type:airflow_jobs_live:expected and airflow:celery_workers:expected.",
            [Query(f"sum({MISSING})", instant=True)],
            "short",
            steps_up(GREEN, (RED, 1)),
            decimals=0,
        ),
        stat(
            SCHEDULER_LAG.panels[0],
            "95th percentile of how late scheduled DAG runs started after they were due, over the last "
            "hour (recording rule airflow:dagrun_schedule_delay_seconds:p95_1h). Orange from "
            f"{SCHEDULER_LAG_WARNING.value:g} s ({SCHEDULER_LAG_WARNING.alert}), red from "
            f"{SCHEDULER_LAG.value:g} s ({SCHEDULER_LAG.alert}); the alerts also need 20 scheduled "
            "runs in the hour. Manual and asset-triggered runs do not count.",
            [Query("airflow:dagrun_schedule_delay_seconds:p95_1h", instant=True)],
            "s",
            steps_up(GREEN, (ORANGE, SCHEDULER_LAG_WARNING.value), (RED, SCHEDULER_LAG.value)),
            decimals=1,
            no_value="no scheduled runs",
        ),
        stat(
            "Task failure ratio · 1 h",
            "Failed / (successful + failed) task attempts of every DAG in the last hour (recording "
            f"rule airflow:ti_failure:ratio_1h). Red from {TASK_FAILURE_RATIO.value:.0%}, where "
            f"{TASK_FAILURE_RATIO.alert} fires (with at least 10 tasks). 'Failing DAGs' below says "
            "which DAGs.",
            [Query("airflow:ti_failure:ratio_1h", instant=True)],
            "percentunit",
            steps_up(GREEN, (YELLOW, TASK_FAILURE_RATIO_NOTICE), (RED, TASK_FAILURE_RATIO.value)),
            decimals=1,
            no_value="no tasks ended",
        ),
    ]


def row_alerts_and_components() -> list[Panel]:
    """Alerts firing and components live against expected."""
    return [
        table(
            "Firing now",
            "Every alert firing now, one row per alert name, severity and service (the compose service "
            "that is broken, or dags), with how many series fire. Watchdog (severity info) always "
            "fires. The description and the runbook link are in the alert itself "
            "(docs/runbooks.md, under the alert's name in lower case).",
            ["alertname", "severity", "service"],
            [Column(f"count by ({ALERT_KEYS}) ({FIRING})", "Series firing")],
            sort_by="severity",
            descending=False,
            height=8,
        ),
        table(
            "Components · live vs expected",
            "Per component: how many are live (schedulers, triggerer, dag-processor: a recent "
            "heartbeat in the metadata database's job table; Celery workers: online in Flower), how "
            "many the topology expects, and how many are missing. A missing scheduler "
            "means no HA: the other carries on alone. Start it again: `make up`, then its logs.",
            ["job_type"],
            [
                Column(LIVE, "Live"),
                Column(EXPECTED, "Expected"),
                Column(MISSING, "Missing", steps=steps_up(GREEN, (RED, 1))),
            ],
            sort_by="Missing",
            height=8,
        ),
    ]


def row_capacity() -> list[Panel]:
    """Queue, capacity and success."""
    return [
        stat(
            "Broker queue · default",
            "Messages waiting in Redis for a Celery worker on the default queue. The worker-capacity "
            "service sizes default_pool to the live workers' slots, so this stays near 0; growing "
            "means workers do not consume (CeleryBrokerQueueGrowing).",
            [Query(BROKER_QUEUE)],
            "short",
            BROKER_STEPS,
            width=6,
            decimals=0,
        ),
        stat(
            "default_pool in use",
            "Slots of default_pool taken by running and queued tasks, as a share of its size. At 100% "
            "capacity is full and further tasks wait in scheduled (normal under a burst); for long: "
            "scale workers with `make scale N=...`, the pool follows.",
            [Query(POOL_IN_USE)],
            "percentunit",
            steps_up(GREEN, (YELLOW, 0.8), (ORANGE, 1)),
            width=6,
            decimals=0,
        ),
        stat(
            "Task slots · default_pool and live workers",
            "The size worker-capacity gave default_pool, and the summed slots of the live Celery "
            "workers on the default queue. They match within ~10 s of a change; apart for longer: "
            "`docker compose logs worker-capacity`.",
            [Query(POOL_SIZE, "default_pool"), Query(LIVE_SLOTS, "live workers' slots")],
            "short",
            [(BLUE, None)],
            width=6,
            decimals=0,
            sparkline=False,
        ),
        stat(
            "DAG run success · 24 h",
            "Successful / finished DAG runs of every DAG over the last 24 h (recording rule "
            "airflow:dagrun_success:ratio_1d). Per-DAG detail: the Executive overview.",
            [Query("airflow:dagrun_success:ratio_1d", instant=True)],
            "percentunit",
            RATIO_STEPS,
            width=6,
            decimals=1,
            no_value="no runs ended",
        ),
    ]


def row_failing_dags() -> list[Panel]:
    """Failing DAGs."""
    return [
        table(
            "Failing DAGs · last hour",
            "DAGs with a failed run or a failed task attempt in the last hour, from the recording "
            "rules the alerts read. Click a dag_id to open its page in the Airflow UI or its "
            "drill-down. Empty is good.",
            ["dag_id"],
            [
                Column(failing(FAILED_RUNS), "Failed runs", steps=steps_up(GREEN, (RED, 1))),
                Column(failing(FAILED_TASKS), "Failed task attempts", steps=steps_up(GREEN, (RED, 1))),
                Column(
                    failing("dag_id:airflow_dagrun_success:ratio_1h"),
                    "Run success ratio",
                    unit="percentunit",
                    steps=RATIO_STEPS,
                    decimals=1,
                ),
                Column(
                    failing("dag_id:airflow_ti_failure:ratio_1h"),
                    "Task failure ratio",
                    unit="percentunit",
                    decimals=1,
                ),
            ],
            sort_by="Failed runs",
            width=24,
            link_dag_id=True,
            dag_links=[airflow_dag_link()],
        ),
    ]


def dashboard() -> Dashboard:
    rows = [row_summary(), row_alerts_and_components(), row_capacity(), row_failing_dags()]
    return Dashboard(
        uid=ONCALL_UID,
        title="Airflow · On call",
        folder="Overview",
        description="Grafana's home: what is firing, which component is missing, scheduler lag, queue and "
        "capacity, and the DAGs failing now, with links to Airflow and the drill-down.",
        tags=[TAG, "overview", "oncall"],
        rows=rows,
        variables=[airflow_url_variable()],
        links=[*links(to_drilldown=True), airflow_ui_link()],
        time_from="now-6h",
    )
