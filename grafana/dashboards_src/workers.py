"""Workers and Celery: workers online, capacity, slots, broker queue, task durations, pools, triggers."""

from __future__ import annotations

from .common import BROKER_QUEUE, BROKER_STEPS, LAST_WRITER_NOTE, RATE_NOTE, TAG, WORKERS_UID, links
from .panels import (
    GREEN,
    ORANGE,
    RED,
    Column,
    Dashboard,
    Panel,
    Query,
    color_override,
    stat,
    steps_up,
    table,
    timeseries,
)
from .promql import RATE, per_second, quantile

CELERY_RESULTS = 'flower_events_total{type=~"task-succeeded|task-failed"}'
POOL_METRICS = [
    ("airflow_pool_open_slots", "Open"),
    ("airflow_pool_running_slots", "Running"),
    ("airflow_pool_queued_slots", "Queued"),
    ("airflow_pool_scheduled_slots", "Scheduled"),
    ("airflow_pool_deferred_slots", "Deferred"),
    ("airflow_pool_starving_tasks", "Starving"),
]


DEFAULT_POOL = 'pool_name="default_pool"'
# What the worker-capacity service (scripts/worker_capacity.py) exports; one target, max drops its labels.
LIVE_SLOTS = 'max(airflow_capacity_target_slots{queue="default"})'
POOL_SIZE = 'max(airflow_capacity_pool_slots{pool="default_pool"})'


def pool(metric: str) -> str:
    # Every scheduler reports the same database count per pool; max keeps one value per pool.
    return f"max by (pool_name) ({metric})"


def executor(how: str, gauge: str) -> str:
    """The highest (max) or lowest (min) value an executor gauge took within each interval."""
    return f"{how} by (executor_class_name) ({how}_over_time({gauge}[{RATE}]))"


def row_summary() -> list[Panel]:
    """Headline numbers."""
    return [
        stat(
            "Celery workers online",
            "Workers Flower sees online; a stopped worker stays listed with 0. Should equal the "
            "number you scaled to. Fewer: `make ps`, then the missing worker's logs.",
            [Query("sum(flower_worker_online)")],
            "short",
            [(RED, None), (GREEN, 1)],
            decimals=0,
        ),
        stat(
            "Tasks executing on workers",
            "Celery tasks (one per Airflow task attempt) running on all workers now. Each worker "
            "runs at most [celery] worker_concurrency (16) at once.",
            [Query("sum(flower_worker_number_of_currently_executing_tasks)")],
            "short",
            [(GREEN, None)],
            decimals=0,
        ),
        stat(
            "Broker queue · default",
            "Messages waiting in Redis for a worker (the Celery queue `default`). A few during bursts "
            "are normal. Growing while workers are idle: they stopped consuming (restart them); "
            "growing while all are busy: default_pool is above the live workers' slots (Capacity "
            "panels; `docker compose logs worker-capacity`).",
            [Query(BROKER_QUEUE)],
            "short",
            BROKER_STEPS,
            decimals=0,
        ),
        stat(
            "Task slots free (default_pool)",
            "Lowest number of free slots in default_pool in the interval: the stack-wide cap on "
            "tasks queued or running at once, sized by worker-capacity to the live workers' slots "
            "(16 each). 0 for long: tasks wait in scheduled; `make scale N=...` adds workers and "
            "the pool grows by itself, up to WORKER_SLOTS_CEILING in .env.",
            [Query(f'min(min_over_time(airflow_pool_open_slots{{pool_name="default_pool"}}[{RATE}]))')],
            "short",
            [(RED, None), (GREEN, 1)],
            decimals=0,
        ),
        stat(
            "Tasks starving for pool slots",
            "Task instances ready to run but held back because their pool is full, all pools. "
            "Above 0 for long: raise the pool's slots (config/pools.json) or accept the throttle; "
            "for default_pool add workers (`make scale N=...`).",
            [Query(f"sum({pool('airflow_pool_starving_tasks')})")],
            "short",
            steps_up(GREEN, (ORANGE, 1)),
            decimals=0,
        ),
        stat(
            "Triggerer capacity left",
            "Triggers the fullest triggerer can still take ([triggerer] capacity 200). At 0, new "
            "deferred tasks wait for a free place: add a triggerer or fix triggers that never fire.",
            [Query("min(airflow_triggerer_capacity_left)")],
            "short",
            [(RED, None), (ORANGE, 1), (GREEN, 20)],
            decimals=0,
        ),
    ]


def row_workers() -> list[Panel]:
    """Per worker."""
    return [
        timeseries(
            "Workers online",
            "1 per worker Flower sees online (stacked: the total). A worker dropping to 0 without a "
            "scale-down was stopped or lost its broker connection.",
            [Query("sum by (worker) (flower_worker_online)", "{{worker}}")],
            "short",
            width=8,
            stack=True,
        ),
        timeseries(
            "Tasks executing per worker",
            "Celery tasks running on each worker (stacked). Uneven for long with a queue in Redis: "
            "one worker is not taking work; check its logs.",
            [
                Query(
                    "sum by (worker) (flower_worker_number_of_currently_executing_tasks)",
                    "{{worker}}",
                )
            ],
            "short",
            width=8,
            stack=True,
        ),
        timeseries(
            "Prefetched tasks per worker",
            "Tasks a worker has taken from Redis but not started yet (prefetch multiplier 1, so at "
            "most one per free process). High on one worker while others are idle: that worker is "
            "stuck; restart it (its unacknowledged tasks are redelivered).",
            [Query("sum by (worker) (flower_worker_prefetched_tasks)", "{{worker}}")],
            "short",
            width=8,
        ),
    ]


def row_capacity() -> list[Panel]:
    """Capacity: live slots and default_pool."""
    return [
        timeseries(
            "Capacity · task slots: live workers and default_pool",
            "Slots of the live Celery workers on the default queue (16 each, capped by "
            "WORKER_SLOTS_CEILING in .env) and the size worker-capacity gave default_pool: it "
            "follows within ~10 s of a worker joining, 30 s after one leaves. Apart for longer: "
            "`docker compose logs worker-capacity`.",
            [
                Query(LIVE_SLOTS, "live workers' slots"),
                Query(POOL_SIZE, "default_pool size"),
            ],
            "short",
            width=8,
        ),
        timeseries(
            "Capacity · default_pool slots in use",
            "Slots of default_pool taken by running and queued tasks, against its size. At the "
            "size, capacity is full and further tasks wait in scheduled: add workers with "
            "`make scale N=...` (the pool grows by itself), or raise WORKER_SLOTS_CEILING if it "
            "caps the pool.",
            [
                Query(
                    f"{pool(f'airflow_pool_running_slots{{{DEFAULT_POOL}}}')} + "
                    f"{pool(f'airflow_pool_queued_slots{{{DEFAULT_POOL}}}')}",
                    "running + queued",
                ),
                Query(pool(f"airflow_pool_queued_slots{{{DEFAULT_POOL}}}"), "queued"),
                Query(POOL_SIZE, "default_pool size"),
            ],
            "short",
            width=8,
            overrides=[color_override("default_pool size", RED)],
        ),
        timeseries(
            "Capacity · live workers per queue",
            "Celery workers worker-capacity counts per queue they consume (one that stops answering "
            "counts 30 s more). Below the number you scaled to: `make ps` and the missing worker's "
            "logs.",
            [Query("sum by (queue) (airflow_capacity_live_workers)", "{{queue}}")],
            "short",
            width=8,
        ),
    ]


def row_executor_and_broker() -> list[Panel]:
    """Executor slots, broker queue, Celery results."""
    return [
        timeseries(
            "Executor slots",
            "The CeleryExecutor's task counts: running = sent to Celery and not finished (waiting in "
            "Redis or executing; highest in each interval), queued = accepted from the scheduler but "
            "not yet sent, held back by parallelism (highest), open = parallelism minus running "
            "(lowest). Open at 0 with queued above 0: parallelism is the limit; running high with "
            "idle workers: tasks wait in Redis." + LAST_WRITER_NOTE,
            [
                Query(executor("max", "airflow_executor_running_tasks"), "running"),
                Query(executor("max", "airflow_executor_queued_tasks"), "queued"),
                Query(executor("min", "airflow_executor_open_slots"), "open"),
            ],
            "short",
            width=8,
        ),
        timeseries(
            "Broker queue length",
            "Messages waiting in the Redis list `default` for a worker. Growing while workers are "
            "idle: they stopped consuming (a known Celery/Redis reconnect problem): restart them. "
            "Growing while all are busy: default_pool is above the live workers' slots (see the "
            "Capacity panels).",
            [Query(BROKER_QUEUE, "default")],
            "short",
            width=8,
            steps=BROKER_STEPS,
        ),
        timeseries(
            "Celery tasks finished per worker",
            "Celery task results per minute by worker and outcome, from Flower's events. Every "
            "Airflow task attempt is one Celery task, so this is the work each worker does; a "
            "worker at 0 while others are busy is not taking work.",
            [
                Query(
                    f"sum by (worker, type) ({per_second(CELERY_RESULTS)}) * 60",
                    "{{worker}} {{type}}",
                )
            ],
            "short",
            width=8,
        ),
    ]


def row_task_durations() -> list[Panel]:
    """Task durations and throughput."""
    return [
        timeseries(
            "Task duration p95 by DAG",
            "95th percentile of task attempt run time per DAG, all end states (from the worker's "
            "start to end of the attempt). A DAG whose line climbs: a task got slower; the "
            "drill-down shows which.",
            [Query(quantile(0.95, "airflow_task_duration", (), "dag_id"), "{{dag_id}}")],
            "s",
            legend_table=True,
        ),
        timeseries(
            "Task attempts started and finished per minute",
            "Task attempts starting on workers, and ending by state, per minute, all DAGs. Started "
            "well above finished for long: tasks hang or workers die mid-task." + RATE_NOTE,
            [
                Query(f"sum({per_second('airflow_ti_start')}) * 60", "started"),
                Query(f"sum by (state) ({per_second('airflow_ti_finish')}) * 60", "{{state}}"),
            ],
            "short",
            overrides=[
                color_override("success", GREEN),
                color_override("failed", RED),
                color_override("up_for_retry", ORANGE),
            ],
        ),
    ]


def row_pools() -> list[Panel]:
    """Pools."""
    return [
        table(
            "Pool slots",
            "Per pool, now: open, running, queued, scheduled and deferred slots, and starving tasks "
            "(ready but no free slot). Deferred tasks take slots only in pools with include_deferred. "
            "Starving for long: raise the pool's slots in config/pools.json; default_pool follows "
            "the live workers, so add workers (`make scale N=...`).",
            ["pool_name"],
            [
                Column(
                    pool(metric),
                    header,
                    steps=steps_up(GREEN, (ORANGE, 1)) if header == "Starving" else None,
                )
                for metric, header in POOL_METRICS
            ],
            sort_by="Running",
            height=8,
        ),
        timeseries(
            "Running and starving tasks by pool",
            "Slots in use (running) and tasks waiting for a slot (starving) per pool. Starving while "
            "running is at the pool size: the pool is the throttle, as designed or not.",
            [
                Query(pool("airflow_pool_running_slots"), "{{pool_name}} running"),
                Query(pool("airflow_pool_starving_tasks"), "{{pool_name}} starving"),
            ],
            "short",
        ),
    ]


def row_triggers() -> list[Panel]:
    """Triggers and the worker wait."""
    return [
        timeseries(
            "Triggers running",
            "Triggers (deferred tasks waiting on an event) running in each triggerer. A triggerer "
            "that restarted under a new hostname leaves its old line frozen until statsd_exporter "
            "restarts.",
            [Query("sum by (hostname) (airflow_triggers_running)", "{{hostname}}")],
            "short",
            width=6,
        ),
        timeseries(
            "Triggerer capacity left",
            "Free trigger places per triggerer ([triggerer] capacity 200). At 0, further deferred "
            "tasks wait: add a triggerer or find triggers that never complete.",
            [Query("min by (hostname) (airflow_triggerer_capacity_left)", "{{hostname}}")],
            "short",
            width=6,
            steps=[(RED, None), (GREEN, 1)],
        ),
        timeseries(
            "Triggerer event loop blocked per hour",
            "Times per hour the triggerer's async loop was blocked longer than its warning threshold "
            "by a trigger doing blocking work. Every trigger in that triggerer is late meanwhile; "
            "the triggerer log names no trigger, so review recently added triggers.",
            [
                Query(
                    f"(sum({per_second('airflow_triggers_blocked_main_thread')}) * 3600) or vector(0)",
                    "blocked",
                )
            ],
            "short",
            width=6,
        ),
        timeseries(
            "Wait at the worker before start",
            "For the last task each worker received: seconds between receiving it from Redis and "
            "starting it. High: the worker's processes were all busy (prefetched work waits).",
            [Query("max by (worker) (flower_task_prefetch_time_seconds)", "{{worker}}")],
            "s",
            width=6,
        ),
    ]


def dashboard() -> Dashboard:
    rows = [
        row_summary(),
        row_workers(),
        row_capacity(),
        row_executor_and_broker(),
        row_task_durations(),
        row_pools(),
        row_triggers(),
    ]
    return Dashboard(
        uid=WORKERS_UID,
        title="Airflow · Workers and Celery",
        folder="Workers",
        description="Celery workers, task capacity (default_pool sized to the live workers), executor "
        "slots, the Redis broker queue, task durations and throughput, pools and triggers.",
        tags=[TAG, "workers"],
        rows=rows,
        links=links(),
    )
