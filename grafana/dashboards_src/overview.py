"""Executive overview: are the pipelines succeeding, which DAGs fail, how fresh is each DAG's data."""

from __future__ import annotations

from .common import OVERVIEW_UID, RATE_NOTE, TAG, dag_id_variable, links
from .panels import (
    GREEN,
    ORANGE,
    RED,
    YELLOW,
    Column,
    Dashboard,
    Panel,
    Query,
    color_override,
    nan_text,
    range_text,
    stat,
    steps_up,
    table,
    timeseries,
)
from .promql import DAG, RANGE, by, events_in, per_second, sel, since_last_increase, zero_for
from .thresholds import TASK_FAILURE_RATIO, TASK_FAILURE_RATIO_NOTICE

RUNS_OK = sel("airflow_dagrun_duration_success_count", DAG)
RUNS_FAILED = sel("airflow_dagrun_duration_failed_count", DAG)
TI_FINISH = sel("airflow_ti_finish", DAG)
TI_OK = sel("airflow_ti_finish", DAG, 'state="success"')
TI_FAILED = sel("airflow_ti_finish", DAG, 'state="failed"')
TI_RETRY = sel("airflow_ti_finish", DAG, 'state="up_for_retry"')
WEEK_SECONDS = 7 * 24 * 3600

RATIO_STEPS = [(RED, None), (ORANGE, 0.9), (YELLOW, 0.99), (GREEN, 0.999)]


def total(selector: str, window: str) -> str:
    """All events within the window, 0 when the counter has never fired."""
    return f"({by('', events_in(selector, window))} or vector(0))"


def success_rate(window: str) -> str:
    ok, failed = total(RUNS_OK, window), total(RUNS_FAILED, window)
    return f"{ok} / ({ok} + {failed})"


def task_failure_ratio(window: str) -> str:
    ok, failed = total(TI_OK, window), total(TI_FAILED, window)
    return f"{failed} / ({ok} + {failed})"


def per_dag(selector: str, known: str, window: str = RANGE) -> str:
    """Events per dag_id within the window, 0 for DAGs that `known` has but `selector` has not."""
    return zero_for(by("dag_id", events_in(selector, window)), by("dag_id", events_in(known, window)))


def success_rate_stat(window: str, label: str) -> Panel:
    return stat(
        f"DAG run success rate · {label}",
        f"Successful DAG runs / finished DAG runs (succeeded + failed) in the last {label}, for the "
        "selected DAGs; from the run-duration timers Airflow sends when a run ends. A run that is still "
        "running counts only once it ends. 'no runs' means none ended. Below 99 %: open 'Failing DAGs' "
        "below, then the DAG's drill-down, to see which task fails and whether it retries.",
        [Query(success_rate(window), instant=True)],
        "percentunit",
        RATIO_STEPS,
        width=6,
        height=5,
        decimals=1,
        mappings=[nan_text("no runs")],
    )


def row_success() -> list[Panel]:
    """Success and failure."""
    return [
        success_rate_stat("24h", "24 h"),
        success_rate_stat("7d", "7 d"),
        stat(
            "Failed DAG runs · 24 h",
            "DAG runs of the selected DAGs that ended failed in the last 24 h (timed-out runs "
            "included). Anything above 0: find the DAG in 'Failing DAGs' and open its drill-down.",
            [Query(total(RUNS_FAILED, "24h"), instant=True)],
            "short",
            steps_up(GREEN, (RED, 1)),
            width=6,
            height=5,
            decimals=0,
        ),
        stat(
            "Task failure ratio · 24 h",
            "Task attempts that ended failed / attempts that ended success or failed, last 24 h, "
            "selected DAGs. Attempts that will be retried (up_for_retry) are not failures here. Tasks "
            "killed from outside (OOM, SIGKILL) never report an end and are missing from both sides. "
            "Rising: the drill-down shows which task; check its logs and upstream systems. Red from "
            f"{TASK_FAILURE_RATIO.value:.0%}, the ratio at which the {TASK_FAILURE_RATIO.alert} alert "
            "fires (over the last hour).",
            [Query(task_failure_ratio("24h"), instant=True)],
            "percentunit",
            steps_up(GREEN, (YELLOW, TASK_FAILURE_RATIO_NOTICE), (RED, TASK_FAILURE_RATIO.value)),
            width=6,
            height=5,
            decimals=1,
            mappings=[nan_text("no tasks")],
        ),
    ]


def row_components() -> list[Panel]:
    """Components and load."""
    return [
        stat(
            "Scheduler heartbeats / min",
            "Heartbeats of all schedulers together (one counter, no per-scheduler label): each beats "
            "about every 5 s, so two healthy schedulers give about 24/min and one gives about 12. "
            "Below 16: a scheduler is down or stuck; see the Scheduler dashboard and "
            "`make logs S=airflow-scheduler`.",
            [Query(f"sum({per_second('airflow_scheduler_heartbeat')}) * 60")],
            "short",
            [(RED, None), (ORANGE, 1), (GREEN, 16)],
            width=6,
            decimals=0,
        ),
        stat(
            "Celery workers online",
            "Celery workers Flower sees online (a stopped worker stays listed with 0). It should equal "
            "the number you scaled to (`make scale N=...`). Fewer: `make ps` and the worker's logs.",
            [Query("sum(flower_worker_online)")],
            "short",
            [(RED, None), (GREEN, 1)],
            width=6,
            decimals=0,
        ),
        stat(
            "DAG import errors",
            "DAG files that failed to import at their last parse. While a file fails, its DAGs are "
            "not updated and are later marked stale. Above 0: Airflow UI > DAGs > import errors "
            "names the file and the exception.",
            [Query("sum(airflow_dag_processing_import_errors)")],
            "short",
            steps_up(GREEN, (RED, 1)),
            width=6,
            decimals=0,
        ),
        stat(
            "DAG runs running",
            "DAG runs in state running right now (a database count that each scheduler reports; the "
            "highest report is shown). A number that only grows means runs do not finish: look for "
            "tasks stuck queued on the Workers dashboard.",
            [Query("max(airflow_scheduler_dagruns_running)")],
            "short",
            [(GREEN, None)],
            width=6,
            decimals=0,
        ),
    ]


def row_failing_dags() -> list[Panel]:
    """Failing DAGs and freshness."""
    return [
        table(
            "Failing DAGs · selected time range",
            "Per DAG, within the selected time range: DAG runs failed and succeeded, task attempts "
            "failed, and attempts that were retried. Sorted by failed runs; red cells need a look. "
            "Click a dag_id for its drill-down. Zeros are true zeros: a DAG is listed once it has "
            "run at all since statsd_exporter started.",
            ["dag_id"],
            [
                Column(per_dag(RUNS_FAILED, RUNS_OK), "Failed runs", steps=steps_up(GREEN, (RED, 1))),
                Column(per_dag(RUNS_OK, RUNS_FAILED), "Successful runs"),
                Column(per_dag(TI_FAILED, TI_FINISH), "Failed tasks", steps=steps_up(GREEN, (RED, 1))),
                Column(per_dag(TI_RETRY, TI_FINISH), "Retried tasks", steps=steps_up(GREEN, (YELLOW, 1))),
            ],
            sort_by="Failed runs",
            link_dag_id=True,
        ),
        table(
            "Freshness · time since each DAG's last successful run",
            "Time since the DAG's success counter last went up, i.e. since its last successful run "
            "ended (exact to 5 min, looking back 7 days; '7 d or more' when none in that time). "
            "Counters carry no event time, so this is computed from when the counter changed, not "
            "from timestamp(). Runs that succeeded before Prometheus started count as succeeding at "
            "its start. Judge it against the DAG's schedule: a daily DAG over 24 h is late. "
            "'Successes · 24 h' counts successful runs in the last 24 h.",
            ["dag_id"],
            [
                Column(
                    f"({since_last_increase(RUNS_OK, 'dag_id')}) "
                    f"or (max by (dag_id) ({TI_FINISH}) * 0 + {WEEK_SECONDS})",
                    "Since last success",
                    unit="s",
                    steps=steps_up(GREEN, (YELLOW, 86400), (RED, 2 * 86400)),
                    decimals=None,
                    mappings=[range_text(WEEK_SECONDS, "7 d or more", RED)],
                ),
                Column(
                    zero_for(by("dag_id", events_in(RUNS_OK, "24h")), f"max by (dag_id) ({TI_FINISH})"),
                    "Successes · 24 h",
                ),
            ],
            sort_by="Since last success",
            link_dag_id=True,
        ),
    ]


def row_throughput() -> list[Panel]:
    """Throughput."""
    return [
        timeseries(
            "DAG runs finished per hour",
            "DAG runs of the selected DAGs ending, as an hourly rate: succeeded and failed. A failed "
            "line above zero is a failing pipeline; the table above says which." + RATE_NOTE,
            [
                Query(f"sum({per_second(RUNS_OK)}) * 3600", "succeeded"),
                Query(f"(sum({per_second(RUNS_FAILED)}) * 3600) or vector(0)", "failed"),
            ],
            "short",
            overrides=[color_override("succeeded", GREEN), color_override("failed", RED)],
        ),
        timeseries(
            "Task attempts finished per minute, by state",
            "Task attempts of the selected DAGs ending, per minute, by the state they ended in "
            "(success, failed, up_for_retry, skipped; deferred = handed to the triggerer). Many "
            "up_for_retry: a flaky dependency; failed: see the drill-down." + RATE_NOTE,
            [Query(f"sum by (state) ({per_second(TI_FINISH)}) * 60", "{{state}}")],
            "short",
            overrides=[
                color_override("success", GREEN),
                color_override("failed", RED),
                color_override("up_for_retry", ORANGE),
            ],
        ),
    ]


def dashboard() -> Dashboard:
    rows = [row_success(), row_components(), row_failing_dags(), row_throughput()]
    return Dashboard(
        uid=OVERVIEW_UID,
        title="Airflow · Executive overview",
        folder="Overview",
        description="Are the pipelines succeeding, which DAGs fail, how fresh is each DAG. "
        "Pick DAGs with the DAG variable; the drill-down link keeps the selection.",
        tags=[TAG, "overview"],
        rows=rows,
        variables=[dag_id_variable()],
        links=links(to_drilldown=True),
        time_from="now-24h",
    )
