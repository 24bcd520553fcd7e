"""What the benchmark reads and how it turns it into figures: SQL on the metadata database, parsing
psql's rows, the figures of one run, the memory of containers, a once-a-second sampler.

Everything here is pure (SQL text in, rows in, numbers out) except ConnectionSampler, which calls a
function it is given; the Docker and psql plumbing lives in bench/stack.py. Timestamps are read as
Unix epoch seconds (EXTRACT(EPOCH FROM ...)), so no time zone or format is parsed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

from bench.stats import peak_overlap, percentile

GIB = 1024**3
MIB = 1024**2

# Postgres server processes serving clients (not autovacuum, walwriter ...), minus the psql session
# that asks. This is what max_connections limits and what PgBouncer's pool is meant to bound.
CONNECTIONS_SQL = (
    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
)


def sql_literal(text: str) -> str:
    """A SQL string literal (standard_conforming_strings is on in Postgres 9.1+: only ' is special)."""
    if "\x00" in text:
        raise ValueError("NUL in a SQL literal")
    return "'" + text.replace("'", "''") + "'"


def epoch(column: str) -> str:
    return f"EXTRACT(EPOCH FROM {column})"


def run_sql(dag_id: str, run_id: str) -> str:
    """One dag_run: state, queued_at (the trigger), start_date and end_date."""
    return (
        f"SELECT state, {epoch('queued_at')}, {epoch('start_date')}, {epoch('end_date')} FROM dag_run "
        f"WHERE dag_id = {sql_literal(dag_id)} AND run_id = {sql_literal(run_id)}"
    )


def task_rows_sql(dag_id: str, run_id: str) -> str:
    """Every task instance of one run, with the times the figures need and who queued it."""
    return (
        "SELECT task_id, map_index, state, "
        f"{epoch('queued_dttm')}, {epoch('start_date')}, {epoch('end_date')}, queued_by_job_id "
        f"FROM task_instance WHERE dag_id = {sql_literal(dag_id)} AND run_id = {sql_literal(run_id)} "
        "ORDER BY task_id, map_index"
    )


def progress_sql(dag_id: str, run_id: str, task_id: str) -> str:
    """The run's state, and how many of the mapped task's instances have started and finished."""
    ti = (
        f"dag_id = {sql_literal(dag_id)} AND run_id = {sql_literal(run_id)} "
        f"AND task_id = {sql_literal(task_id)}"
    )
    return (
        "SELECT r.state, "
        f"(SELECT count(*) FROM task_instance WHERE {ti} AND start_date IS NOT NULL), "
        f"(SELECT count(*) FROM task_instance WHERE {ti} AND end_date IS NOT NULL), "
        f"(SELECT count(*) FROM task_instance WHERE {ti}) "
        f"FROM dag_run r WHERE r.dag_id = {sql_literal(dag_id)} AND r.run_id = {sql_literal(run_id)}"
    )


def started_after_sql(dag_id: str, run_id: str, task_id: str, after: float) -> str:
    """How many of the mapped task's instances started after a Unix time (the kill)."""
    return (
        f"SELECT count(*) FROM task_instance WHERE dag_id = {sql_literal(dag_id)} "
        f"AND run_id = {sql_literal(run_id)} AND task_id = {sql_literal(task_id)} "
        f"AND start_date > to_timestamp({after:.6f})"
    )


def busiest_scheduler_sql(dag_id: str, run_id: str) -> str:
    """The scheduler job that queued most of the run's task instances so far: its id and hostname."""
    return (
        "SELECT j.id, j.hostname, count(*) FROM task_instance ti JOIN job j ON j.id = ti.queued_by_job_id "
        f"WHERE ti.dag_id = {sql_literal(dag_id)} AND ti.run_id = {sql_literal(run_id)} "
        "GROUP BY j.id, j.hostname ORDER BY count(*) DESC, j.id LIMIT 1"
    )


def scheduler_jobs_sql(hostname: str) -> str:
    """Ids of the scheduler jobs that ran on one host (container), so a killed one's can be told apart.
    Airflow records socket.getfqdn(), a container knows its short hostname: the first labels compare."""
    return (
        "SELECT id FROM job WHERE job_type = 'SchedulerJob' "
        f"AND split_part(hostname, '.', 1) = split_part({sql_literal(hostname)}, '.', 1)"
    )


# --- parsing psql -tA rows (lists of strings; NULL is the empty string) -------------------------------
def parse_float(cell: str) -> float | None:
    return None if cell.strip() == "" else float(cell)


def parse_int(cell: str) -> int | None:
    return None if cell.strip() == "" else int(cell)


def single_int(rows: Sequence[Sequence[str]]) -> int:
    if len(rows) != 1 or len(rows[0]) != 1:
        raise ValueError(f"expected one value, got {rows!r}")
    value = parse_int(rows[0][0])
    if value is None:
        raise ValueError("expected a number, got NULL")
    return value


@dataclass(frozen=True)
class RunRow:
    state: str
    queued_at: float | None
    start: float | None
    end: float | None


def parse_run(rows: Sequence[Sequence[str]]) -> RunRow:
    if len(rows) != 1:
        raise ValueError(f"expected one dag_run row, got {len(rows)}")
    state, queued, start, end = rows[0]
    return RunRow(state, parse_float(queued), parse_float(start), parse_float(end))


@dataclass(frozen=True)
class TaskRow:
    task_id: str
    map_index: int
    state: str
    queued: float | None
    start: float | None
    end: float | None
    queued_by_job_id: int | None


def parse_tasks(rows: Sequence[Sequence[str]]) -> list[TaskRow]:
    tasks = []
    for row in rows:
        task_id, map_index, state, queued, start, end, job = row
        tasks.append(
            TaskRow(
                task_id,
                int(map_index),
                state,
                parse_float(queued),
                parse_float(start),
                parse_float(end),
                parse_int(job),
            )
        )
    return tasks


@dataclass(frozen=True)
class Progress:
    state: str
    started: int
    finished: int
    total: int


def parse_progress(rows: Sequence[Sequence[str]]) -> Progress | None:
    """None while the run is not in the database yet."""
    if not rows:
        return None
    state, started, finished, total = rows[0]
    return Progress(state, int(started), int(finished), int(total))


# --- figures of one run -------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunFigures:
    """What one run of K mapped tasks measured (seconds, tasks per second)."""

    tasks: int  # mapped task instances found
    succeeded: int
    run_seconds: float | None  # dag_run start_date -> end_date
    throughput: float | None  # tasks / run_seconds: the throughput figure
    task_span_seconds: float | None  # first mapped start -> last mapped end
    task_throughput: float | None  # tasks / task_span_seconds (scheduling of the first task excluded)
    latency_p50: float | None  # queued_dttm -> start_date of the mapped tasks
    latency_p95: float | None
    latency_max: float | None
    trigger_to_first_start: float | None  # dag_run queued_at -> first start_date of any task
    peak_concurrency: int  # most mapped tasks running at one instant

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def run_figures(run: RunRow, tasks: Iterable[TaskRow], mapped_task_id: str) -> RunFigures:
    all_tasks = list(tasks)
    mapped = [t for t in all_tasks if t.task_id == mapped_task_id]
    count = len(mapped)
    run_seconds = run.end - run.start if run.start is not None and run.end is not None else None
    starts = [t.start for t in mapped if t.start is not None]
    ends = [t.end for t in mapped if t.end is not None]
    span = max(ends) - min(starts) if starts and ends else None
    latencies = [t.start - t.queued for t in mapped if t.start is not None and t.queued is not None]
    any_starts = [t.start for t in all_tasks if t.start is not None]
    first = min(any_starts) - run.queued_at if any_starts and run.queued_at is not None else None
    intervals = [(t.start, t.end) for t in mapped if t.start is not None and t.end is not None]
    return RunFigures(
        tasks=count,
        succeeded=sum(1 for t in mapped if t.state == "success"),
        run_seconds=run_seconds,
        throughput=count / run_seconds if run_seconds else None,
        task_span_seconds=span,
        task_throughput=count / span if span else None,
        latency_p50=percentile(latencies, 50),
        latency_p95=percentile(latencies, 95),
        latency_max=max(latencies) if latencies else None,
        trigger_to_first_start=first,
        peak_concurrency=peak_overlap(intervals),
    )


@dataclass(frozen=True)
class FailoverFigures:
    next_start_seconds: float | None  # kill -> first mapped start_date after it: the failover figure
    survivor_queued_seconds: float | None  # kill -> first task queued after it by another scheduler
    started_before_kill: int
    queued_before_kill: int

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def failover_figures(
    kill_at: float, tasks: Iterable[TaskRow], mapped_task_id: str, killed_job_ids: Iterable[int]
) -> FailoverFigures:
    mapped = [t for t in tasks if t.task_id == mapped_task_id]
    killed = set(killed_job_ids)
    after = [t.start for t in mapped if t.start is not None and t.start > kill_at]
    survivor = [
        t.queued
        for t in mapped
        if t.queued is not None
        and t.queued > kill_at
        and t.queued_by_job_id is not None
        and t.queued_by_job_id not in killed
    ]
    return FailoverFigures(
        next_start_seconds=min(after) - kill_at if after else None,
        survivor_queued_seconds=min(survivor) - kill_at if survivor else None,
        started_before_kill=sum(1 for t in mapped if t.start is not None and t.start <= kill_at),
        queued_before_kill=sum(1 for t in mapped if t.queued is not None and t.queued <= kill_at),
    )


# --- memory -------------------------------------------------------------------------------------------
def memory_used(stats: Mapping[str, object]) -> int:
    """A container's memory as `docker stats` shows it: usage minus inactive page cache.

    The same formula as the docker CLI (calculateMemUsageUnixNoCache): total_inactive_file on
    cgroup v1, inactive_file on cgroup v2, each only when smaller than the usage.
    """
    memory = stats.get("memory_stats") or {}
    assert isinstance(memory, Mapping)
    usage = int(memory.get("usage") or 0)
    detail = memory.get("stats") or {}
    assert isinstance(detail, Mapping)
    if "total_inactive_file" in detail and int(detail["total_inactive_file"]) < usage:
        return usage - int(detail["total_inactive_file"])
    inactive = int(detail.get("inactive_file") or 0)
    return usage - inactive if inactive < usage else usage


@dataclass(frozen=True)
class MemorySnapshot:
    """One sample per running container, summed per compose service and over the stack."""

    total_bytes: int
    services: dict[str, int]  # service -> bytes, all its replicas together
    containers: dict[str, int]  # service -> number of containers sampled

    @property
    def total_gib(self) -> float:
        return self.total_bytes / GIB

    def as_dict(self) -> dict[str, object]:
        return {
            "total_bytes": self.total_bytes,
            "total_gib": round(self.total_gib, 4),
            "services": dict(sorted(self.services.items())),
            "containers": dict(sorted(self.containers.items())),
        }


def memory_snapshot(samples: Iterable[tuple[str, int]]) -> MemorySnapshot:
    """samples: (service, bytes) per container."""
    services: dict[str, int] = {}
    counts: dict[str, int] = {}
    for service, used in samples:
        services[service] = services.get(service, 0) + used
        counts[service] = counts.get(service, 0) + 1
    return MemorySnapshot(sum(services.values()), services, counts)


# --- sampling while a run goes on ---------------------------------------------------------------------
@dataclass
class ConnectionSampler:
    """Calls `query` every `interval` seconds in a thread until stopped; keeps each value and errors.

    A failed sample is counted, not fatal: one slow `docker exec` must not end a run.
    """

    query: Callable[[], int]
    interval: float = 1.0
    samples: list[tuple[float, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> ConnectionSampler:
        self._thread = threading.Thread(target=self._loop, name="connection-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self.samples.append((time.time(), self.query()))
            except Exception as error:  # any failure of one sample is recorded, not raised
                self.errors.append(f"{type(error).__name__}: {error}"[:300])
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - began)))

    @property
    def peak(self) -> int | None:
        return max((value for _, value in self.samples), default=None)

    def as_dict(self) -> dict[str, object]:
        values = [value for _, value in self.samples]
        return {
            "max": self.peak,
            "samples": len(values),
            "min": min(values, default=None),
            "errors": len(self.errors),
            "first_error": self.errors[0] if self.errors else None,
        }
