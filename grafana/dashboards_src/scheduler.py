"""Scheduler and DAG processing: heartbeats, loop and critical-section times, scheduling delay, parsing."""

from __future__ import annotations

from .common import LAST_WRITER_NOTE, SCHEDULER_UID, TAG, links
from .panels import (
    GREEN,
    ORANGE,
    RED,
    YELLOW,
    Dashboard,
    Panel,
    Query,
    bargauge,
    stat,
    steps_up,
    timeseries,
)
from .promql import RANGE, by, events_in, mean, per_second, quantile

LOOP = "airflow_scheduler_scheduler_loop_duration"
CRITICAL = "airflow_scheduler_critical_section_duration"
CRITICAL_QUERY = "airflow_scheduler_critical_section_query_duration"
SCHEDULED = "airflow_task_scheduled_duration"
PARSE = "airflow_dag_processing_last_duration"


def per_minute(counter: str) -> str:
    return f"sum({per_second(counter)}) * 60"


def heartbeat_stat(title: str, counter: str, expected: str, healthy: float, where: str) -> Panel:
    return stat(
        title,
        f"Heartbeats per minute, {expected}. 0 means the process is down or hung: `make ps`, then "
        f"`make logs S={where}`.",
        [Query(per_minute(counter))],
        "short",
        [(RED, None), (ORANGE, 1), (GREEN, healthy)],
        decimals=0,
    )


def row_summary() -> list[Panel]:
    """Heartbeats, import errors, loop."""
    return [
        heartbeat_stat(
            "Scheduler heartbeats / min",
            "airflow_scheduler_heartbeat",
            "both schedulers together (one counter, no per-scheduler label): about 24 with two "
            "healthy schedulers, about 12 with one. Below 16 means one is missing",
            16,
            "airflow-scheduler",
        ),
        heartbeat_stat(
            "DAG processor heartbeats / min",
            "airflow_dag_processor_heartbeat",
            "about 12 for the one dag-processor; without it new and changed DAG files are not parsed",
            8,
            "airflow-dag-processor",
        ),
        heartbeat_stat(
            "Triggerer heartbeats / min",
            "airflow_triggerer_heartbeat",
            "about 12 for the one triggerer; without it deferred tasks never resume",
            8,
            "airflow-triggerer",
        ),
        stat(
            "DAG import errors",
            "DAG files whose last parse failed. Their DAGs keep the last good version, then go stale. "
            "Above 0: Airflow UI > DAGs > import errors names the file and the exception.",
            [Query("sum(airflow_dag_processing_import_errors)")],
            "short",
            steps_up(GREEN, (RED, 1)),
            decimals=0,
        ),
        stat(
            "DAGs loaded",
            "DAGs found at the last full parse of dags/ (the dagbag size). A sudden drop with no "
            "deletion means files fail to import (see import errors) or the dags/ mount is wrong.",
            [Query("sum(airflow_dagbag_size)")],
            "short",
            [(RED, None), (GREEN, 1)],
            decimals=0,
        ),
        stat(
            "Scheduler loop p95",
            "95th percentile of one scheduling loop (both schedulers' loops together): create runs, "
            "queue tasks, sync with Celery, process events. Seconds-long loops delay every task; "
            "check the critical section and Postgres below and on the Metadata dashboard.",
            [Query(quantile(0.95, LOOP, ()))],
            "s",
            steps_up(GREEN, (ORANGE, 3), (RED, 10)),
            decimals=2,
        ),
    ]


def row_heartbeats() -> list[Panel]:
    """Heartbeats and the scheduler loop."""
    return [
        timeseries(
            "Heartbeats per minute, by component",
            "Heartbeats per minute of the schedulers (both together, ~24 when healthy), the "
            "dag-processor (~12) and the triggerer (~12). A line that drops to 0 is a process that "
            "died or hangs; halved scheduler heartbeats are one scheduler gone (the other carries on).",
            [
                Query(per_minute("airflow_scheduler_heartbeat"), "schedulers (all)"),
                Query(per_minute("airflow_dag_processor_heartbeat"), "dag-processor"),
                Query(per_minute("airflow_triggerer_heartbeat"), "triggerer"),
            ],
            "short",
        ),
        timeseries(
            "Scheduler loop duration",
            "Quantiles and mean of one scheduler loop, both schedulers' loops merged (the timer has "
            "no scheduler label). Idle sleeps are not included. A rising p95 with a busy critical "
            "section or slow Postgres means the database is the bottleneck; with many DAG runs, "
            "the scheduler itself.",
            [
                Query(quantile(0.5, LOOP, ()), "p50"),
                Query(quantile(0.95, LOOP, ()), "p95"),
                Query(quantile(0.99, LOOP, ()), "p99"),
                Query(mean(LOOP, ()), "mean"),
            ],
            "s",
            steps=steps_up(GREEN, (RED, 10)),
        ),
    ]


def row_critical_section() -> list[Panel]:
    """Critical section and executor heartbeat."""
    return [
        timeseries(
            "Critical section duration",
            "Time a scheduler holds the pool lock while it moves scheduled task instances to queued "
            "(only one scheduler at a time), and the p95 of the query that selects them. Long: "
            "Postgres is slow or many tasks wait; see the Metadata dashboard.",
            [
                Query(quantile(0.5, CRITICAL, ()), "p50"),
                Query(quantile(0.95, CRITICAL, ()), "p95"),
                Query(quantile(0.95, CRITICAL_QUERY, ()), "query p95"),
            ],
            "s",
            width=8,
        ),
        timeseries(
            "Critical section busy per minute",
            "Times per minute a scheduler found the critical-section lock held by the other one and "
            "skipped queueing in that loop. Some is normal with two schedulers; a high rate together "
            "with a growing scheduling delay means they contend: look at critical section duration.",
            [Query(f"({per_minute('airflow_scheduler_critical_section_busy')}) or vector(0)", "busy")],
            "short",
            width=8,
        ),
        timeseries(
            "Executor heartbeat duration p95",
            "95th percentile of the executor step of each scheduler loop: sending queued tasks to "
            "Redis and reading task states back. Long: Redis or the Celery result backend "
            "(Postgres via PgBouncer) is slow; see the Metadata dashboard.",
            [
                Query(
                    quantile(0.95, "airflow_scheduler_executor_heartbeat_duration", (), "executor"),
                    "{{executor}}",
                )
            ],
            "s",
            width=8,
        ),
    ]


def row_scheduling() -> list[Panel]:
    """Scheduling delay, executable and starving."""
    return [
        timeseries(
            "Task scheduling delay (scheduled → queued)",
            "How long task instances waited between becoming schedulable (dependencies met) and being "
            "queued to Celery, first attempts only, all DAGs. It grows when executor slots "
            "(parallelism), pools or max_active_tasks are full, or the loop is slow. Per task: the "
            "drill-down. (dagrun.schedule_delay is not shown: Airflow sends it only for scheduled, "
            "not triggered, runs.)",
            [
                Query(quantile(0.5, SCHEDULED, ()), "p50"),
                Query(quantile(0.95, SCHEDULED, ()), "p95"),
                Query(quantile(0.99, SCHEDULED, ()), "p99"),
            ],
            "s",
            steps=steps_up(GREEN, (ORANGE, 60)),
        ),
        timeseries(
            "Task instances executable and starving",
            "Per scheduler loop: task instances the scheduler found ready to queue (executable) and "
            "those held back because their pool had no free slot (starving); highest value in each "
            "interval. Starving for long: raise the pool's slots or spread the work." + LAST_WRITER_NOTE,
            [
                Query(
                    "max(max_over_time(airflow_scheduler_tasks_executable[$__rate_interval]))",
                    "executable",
                ),
                Query("max(max_over_time(airflow_scheduler_tasks_starving[$__rate_interval]))", "starving"),
            ],
            "short",
        ),
    ]


def row_parsing() -> list[Panel]:
    """DAG parsing."""
    return [
        timeseries(
            "Total DAG parse time",
            "Seconds one full pass of the dag-processor over every DAG file took. When it nears "
            "min_file_process_interval (180 s) files are re-parsed late: make top-level DAG code "
            "cheaper (no DB or API calls at import) before adding parsing processes.",
            [Query("max(airflow_dag_processing_total_parse_time)", "total parse time")],
            "s",
            width=8,
            steps=steps_up(GREEN, (ORANGE, 60), (RED, 180)),
        ),
        bargauge(
            "Parse duration per file · mean over range",
            "Mean time to parse each DAG file within the selected range. Airflow 3.3 sends this timer "
            "in seconds where statsd expects milliseconds, so the raw series reads 1000x too small; "
            "the query multiplies by 1000. Near 60 s (dagbag_import_timeout) a file turns into an "
            "import error: move heavy work out of module level.",
            [
                Query(
                    f"1000 * {mean(PARSE, (), 'bundle_name, file_name', RANGE)}",
                    "{{file_name}}",
                    instant=True,
                )
            ],
            "s",
            steps_up(GREEN, (ORANGE, 10), (RED, 30)),
            decimals=2,
        ),
        bargauge(
            "Time since each file was last parsed",
            "Seconds since the dag-processor last finished each file. Files are re-parsed every "
            "3 min (edited files sooner); well beyond that, parsing is behind (see total parse "
            "time) or the dag-processor is down. A deleted file keeps its last value until "
            "statsd_exporter restarts.",
            [
                Query(
                    "max by (bundle_name, file_name) (airflow_dag_processing_last_run_seconds_ago)",
                    "{{file_name}}",
                )
            ],
            "s",
            steps_up(GREEN, (ORANGE, 360), (RED, 900)),
            decimals=0,
        ),
    ]


def row_backlog() -> list[Panel]:
    """Parse backlog, orphans, running runs."""
    return [
        timeseries(
            "DAG files waiting to be parsed",
            "Files queued for the dag-processor. It empties after each pass; a queue that never "
            "empties means parsing cannot keep up (see total parse time).",
            [Query("max(airflow_dag_processing_file_path_queue_size)", "files queued")],
            "short",
            width=8,
        ),
        stat(
            "Orphaned tasks · selected range",
            "Task instances of a dead scheduler that a live one took over (adopted, still running on "
            "Celery) or reset to be scheduled again (reset), within the range. Expected after a "
            "scheduler restart; without one, look for a scheduler that crashes or loses its "
            "database connection.",
            [
                Query(
                    by("", events_in("airflow_scheduler_orphaned_tasks_adopted", RANGE)),
                    "adopted",
                    instant=True,
                ),
                Query(
                    by("", events_in("airflow_scheduler_orphaned_tasks_cleared", RANGE)),
                    "reset",
                    instant=True,
                ),
            ],
            "short",
            steps_up(GREEN, (YELLOW, 1)),
            width=8,
            height=8,
            decimals=0,
        ),
        timeseries(
            "DAG runs running",
            "DAG runs in state running (a database count each scheduler reports; the highest is "
            "shown). Growing without end: runs do not finish; look for queued or starving tasks.",
            [Query("max(airflow_scheduler_dagruns_running)", "running")],
            "short",
            width=8,
        ),
    ]


def dashboard() -> Dashboard:
    rows = [
        row_summary(),
        row_heartbeats(),
        row_critical_section(),
        row_scheduling(),
        row_parsing(),
        row_backlog(),
    ]
    return Dashboard(
        uid=SCHEDULER_UID,
        title="Airflow · Scheduler and DAG processing",
        folder="Scheduler",
        description="Heartbeats of the schedulers, dag-processor and triggerer; scheduler loop, critical "
        "section and scheduling delay; DAG parsing.",
        tags=[TAG, "scheduler"],
        rows=rows,
        links=links(),
    )
