"""Per-DAG drill-down: runs, task outcomes, durations, scheduling delay and retries, by dag_id and task_id."""

from __future__ import annotations

from .common import DRILLDOWN_UID, RATE_NOTE, TAG, dag_id_variable, links, task_id_variable
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
    stat,
    steps_up,
    table,
    timeseries,
)
from .promql import DAG, RANGE, TASK, by, events_in, per_second, quantile, quantile_over, sel, zero_for

RUNS_OK = sel("airflow_dagrun_duration_success_count", DAG)
RUNS_FAILED = sel("airflow_dagrun_duration_failed_count", DAG)
RUN_DURATION = "airflow_dagrun_duration_success"
TASK_DURATION = "airflow_task_duration"
SCHEDULED = "airflow_task_scheduled_duration"
TI = sel("airflow_ti_finish", DAG, TASK)
TASKS = (DAG, TASK)
PER_TASK = "dag_id, task_id"


def ti_state(state: str) -> str:
    return sel("airflow_ti_finish", DAG, TASK, f'state="{state}"')


def total(selector: str) -> str:
    """All events within the selected range, 0 when the counter has never fired."""
    return f"({by('', events_in(selector, RANGE))} or vector(0))"


def per_task(selector: str) -> str:
    """Events per task within the range, 0 for tasks that finished but never had this event."""
    return zero_for(by(PER_TASK, events_in(selector, RANGE)), by(PER_TASK, events_in(TI, RANGE)))


def count_stat(title: str, description: str, selector: str, steps: list[tuple[str, float | None]]) -> Panel:
    return stat(title, description, [Query(total(selector), instant=True)], "short", steps, decimals=0)


OPERATOR_OK = sel("airflow_operator_successes", DAG, TASK)
OPERATOR_FAILED = sel("airflow_operator_failures", DAG, TASK)


def row_summary() -> list[Panel]:
    """Totals over the selected range."""
    return [
        count_stat(
            "Runs succeeded · range",
            "DAG runs of the selected DAGs that ended successfully within the selected time range.",
            RUNS_OK,
            [(GREEN, None)],
        ),
        count_stat(
            "Runs failed · range",
            "DAG runs of the selected DAGs that ended failed (including timed out) within the range. "
            "Above 0: the task tables below show which task failed; then read its log in the UI.",
            RUNS_FAILED,
            steps_up(GREEN, (RED, 1)),
        ),
        count_stat(
            "Task attempts failed · range",
            "Attempts of the selected tasks that ended failed, with no retry left, within the range. "
            "Above 0: see 'Retries and failures per task' and the task's log.",
            ti_state("failed"),
            steps_up(GREEN, (RED, 1)),
        ),
        count_stat(
            "Retries · range",
            "Attempts of the selected tasks that failed and were set up_for_retry within the range. "
            "Retries that then succeed hide flaky dependencies: many here deserve a look even when "
            "runs succeed.",
            ti_state("up_for_retry"),
            steps_up(GREEN, (YELLOW, 1), (ORANGE, 10)),
        ),
        stat(
            "Run duration p95 · range",
            "95th percentile of successful run durations (start to end) of the selected DAGs in the "
            "range. Compare with the DAG's schedule interval: runs longer than it pile up.",
            [Query(quantile_over(0.95, RUN_DURATION, (DAG,), "", RANGE), instant=True)],
            "s",
            [(GREEN, None)],
            mappings=[nan_text("no runs")],
        ),
        stat(
            "Scheduling delay p95 · range",
            "95th percentile of the time the selected tasks waited from schedulable to queued (first "
            "attempts) in the range. Over a minute: executor slots, pools or max_active_tasks are "
            "the limit; see the Workers dashboard.",
            [Query(quantile_over(0.95, SCHEDULED, TASKS, "", RANGE), instant=True)],
            "s",
            steps_up(GREEN, (ORANGE, 60), (RED, 300)),
            mappings=[nan_text("no tasks")],
        ),
    ]


def row_runs() -> list[Panel]:
    """DAG runs finished and their duration."""
    return [
        timeseries(
            "DAG runs finished per hour, by DAG and outcome",
            "Runs ending per DAG as an hourly rate, succeeded and failed. A DAG with a failed line "
            "needs its failing task found (tables below)." + RATE_NOTE,
            [
                Query(f"sum by (dag_id) ({per_second(RUNS_OK)}) * 3600", "{{dag_id}} succeeded"),
                Query(
                    f"(sum by (dag_id) ({per_second(RUNS_FAILED)}) * 3600) or vector(0)",
                    "{{dag_id}} failed",
                ),
            ],
            "short",
        ),
        timeseries(
            "Run duration (successful runs)",
            "Median and 95th percentile of successful run durations per DAG. A step up after a "
            "deploy is a slower task; the per-task durations below show which.",
            [
                Query(quantile(0.5, RUN_DURATION, (DAG,), "dag_id"), "{{dag_id}} p50"),
                Query(quantile(0.95, RUN_DURATION, (DAG,), "dag_id"), "{{dag_id}} p95"),
            ],
            "s",
        ),
    ]


def row_task_outcomes() -> list[Panel]:
    """Task outcomes and attempts."""
    return [
        table(
            "Task outcomes by task and state · range",
            "Attempts of each selected task within the range, by the state the attempt ended in: "
            "success, failed, up_for_retry, skipped, deferred (handed to the triggerer, resumed "
            "later), up_for_reschedule. Tasks killed from outside (OOM) report no end state.",
            ["dag_id", "task_id", "state"],
            [Column(by("dag_id, task_id, state", events_in(TI, RANGE)), "Attempts")],
            sort_by="Attempts",
        ),
        timeseries(
            "Task attempts finished per minute, by state",
            "Attempts of the selected tasks ending per minute, by end state." + RATE_NOTE,
            [Query(f"sum by (state) ({per_second(TI)}) * 60", "{{state}}")],
            "short",
            height=9,
            overrides=[
                color_override("success", GREEN),
                color_override("failed", RED),
                color_override("up_for_retry", ORANGE),
            ],
        ),
    ]


def row_task_latency() -> list[Panel]:
    """Task duration and scheduling delay."""
    return [
        timeseries(
            "Task duration p95 per task",
            "95th percentile of attempt run time per task, all end states. A task whose line climbs "
            "got slower: its input grew or a dependency slowed down.",
            [Query(quantile(0.95, TASK_DURATION, TASKS, PER_TASK), "{{dag_id}}.{{task_id}}")],
            "s",
            legend_table=True,
        ),
        timeseries(
            "Task scheduling delay p95 per task (scheduled → queued)",
            "95th percentile of the wait between a task becoming schedulable and being queued to "
            "Celery, first attempts, per task. One task high while others are not: its pool or "
            "max_active_tasks is the limit; all high: executor slots or the scheduler.",
            [Query(quantile(0.95, SCHEDULED, TASKS, PER_TASK), "{{dag_id}}.{{task_id}}")],
            "s",
            legend_table=True,
            steps=steps_up(GREEN, (ORANGE, 60)),
        ),
    ]


def row_per_task() -> list[Panel]:
    """Per task over the range: duration, retries and failures, operators."""
    return [
        table(
            "Task duration per task · range",
            "Per task, attempts within the range: median, 95th percentile (from histogram buckets, "
            "so approximate) and mean run time, and the number of attempts.",
            ["dag_id", "task_id"],
            [
                Column(quantile_over(0.5, TASK_DURATION, TASKS, PER_TASK, RANGE), "p50", "s", decimals=None),
                Column(quantile_over(0.95, TASK_DURATION, TASKS, PER_TASK, RANGE), "p95", "s", decimals=None),
                Column(
                    f"{by(PER_TASK, events_in(sel(TASK_DURATION + '_sum', *TASKS), RANGE))} / "
                    f"{by(PER_TASK, events_in(sel(TASK_DURATION + '_count', *TASKS), RANGE))}",
                    "mean",
                    "s",
                    decimals=None,
                ),
                Column(by(PER_TASK, events_in(sel(TASK_DURATION + "_count", *TASKS), RANGE)), "Attempts"),
            ],
            sort_by="p95",
            width=10,
        ),
        table(
            "Retries and failures per task · range",
            "Per task within the range: attempts retried, attempts failed for good, attempts that "
            "succeeded. Retries with eventual success are flaky dependencies; fix before they fail.",
            ["dag_id", "task_id"],
            [
                Column(per_task(ti_state("up_for_retry")), "Retries", steps=steps_up(GREEN, (YELLOW, 1))),
                Column(per_task(ti_state("failed")), "Failed", steps=steps_up(GREEN, (RED, 1))),
                Column(per_task(ti_state("success")), "Succeeded"),
            ],
            sort_by="Retries",
            width=8,
        ),
        table(
            "Operator outcomes · range",
            "Task attempts by operator class within the range (selected DAGs and tasks): how often "
            "each operator succeeded and failed. A failing operator across many DAGs points at a "
            "shared connection or provider.",
            ["operator_name"],
            [
                Column(
                    zero_for(
                        by("operator_name", events_in(OPERATOR_OK, RANGE)),
                        by("operator_name", events_in(OPERATOR_FAILED, RANGE)),
                    ),
                    "Succeeded",
                ),
                Column(
                    zero_for(
                        by("operator_name", events_in(OPERATOR_FAILED, RANGE)),
                        by("operator_name", events_in(OPERATOR_OK, RANGE)),
                    ),
                    "Failed",
                    steps=steps_up(GREEN, (RED, 1)),
                ),
            ],
            sort_by="Failed",
            width=6,
        ),
    ]


def dashboard() -> Dashboard:
    rows = [row_summary(), row_runs(), row_task_outcomes(), row_task_latency(), row_per_task()]
    return Dashboard(
        uid=DRILLDOWN_UID,
        title="Airflow · DAG drill-down",
        folder="DAGs",
        description="One DAG (or several) in detail: runs, task outcomes, durations, scheduling delay, "
        "retries. Pick DAGs and tasks with the variables; the overview's tables link here.",
        tags=[TAG, "dag"],
        rows=rows,
        variables=[dag_id_variable(), task_id_variable()],
        links=links(),
        time_from="now-24h",
    )
