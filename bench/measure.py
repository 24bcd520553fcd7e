"""What the benchmark reads and how it turns it into figures: SQL on the metadata database, parsing
psql's rows, the figures of one run or wave, the memory and CPU of containers, a once-a-second sampler.

Everything here is pure (SQL text in, rows in, numbers out) except Sampler, which calls a function it
is given; the Docker and psql plumbing lives in stackkit/ and bench/bench_stack.py, the record types
in bench/record.py.
Timestamps are read as Unix epoch seconds (EXTRACT(EPOCH FROM ...)), so no time zone or format is parsed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from bench.record import (
    Connections,
    CpuCost,
    FailoverFigures,
    IdleCpu,
    MemorySnapshot,
    RunFigures,
    StuckInQueued,
    WaveFigures,
)
from bench.stats import peak_overlap, percentile
from stackkit.sql import literal

GIB = 1024**3
MIB = 1024**2

# Postgres server processes serving clients (not autovacuum, walwriter ...), minus the psql session
# that asks. This is what max_connections limits and what PgBouncer's pool is meant to bound.
CONNECTIONS_SQL = (
    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
)


def epoch(column: str) -> str:
    return f"EXTRACT(EPOCH FROM {column})"


def run_sql(dag_id: str, run_id: str) -> str:
    """One dag_run: state, queued_at (the trigger), start_date and end_date."""
    return (
        f"SELECT state, {epoch('queued_at')}, {epoch('start_date')}, {epoch('end_date')} FROM dag_run "
        f"WHERE dag_id = {literal(dag_id)} AND run_id = {literal(run_id)}"
    )


def task_rows_sql(dag_id: str, run_id: str) -> str:
    """Every task instance of one run, with the times the figures need and who queued it."""
    return (
        "SELECT task_id, map_index, state, "
        f"{epoch('queued_dttm')}, {epoch('start_date')}, {epoch('end_date')}, queued_by_job_id "
        f"FROM task_instance WHERE dag_id = {literal(dag_id)} AND run_id = {literal(run_id)} "
        "ORDER BY task_id, map_index"
    )


def progress_sql(dag_id: str, run_id: str, task_id: str) -> str:
    """The run's state, and how many of the mapped task's instances have started and finished."""
    ti = f"dag_id = {literal(dag_id)} AND run_id = {literal(run_id)} AND task_id = {literal(task_id)}"
    return (
        "SELECT r.state, "
        f"(SELECT count(*) FROM task_instance WHERE {ti} AND start_date IS NOT NULL), "
        f"(SELECT count(*) FROM task_instance WHERE {ti} AND end_date IS NOT NULL), "
        f"(SELECT count(*) FROM task_instance WHERE {ti}) "
        f"FROM dag_run r WHERE r.dag_id = {literal(dag_id)} AND r.run_id = {literal(run_id)}"
    )


def started_after_sql(dag_id: str, run_id: str, task_id: str, after: float) -> str:
    """How many of the mapped task's instances started after a Unix time (the kill)."""
    return (
        f"SELECT count(*) FROM task_instance WHERE dag_id = {literal(dag_id)} "
        f"AND run_id = {literal(run_id)} AND task_id = {literal(task_id)} "
        f"AND start_date > to_timestamp({after:.6f})"
    )


def busiest_scheduler_sql(dag_id: str, run_id: str) -> str:
    """The scheduler job that queued most of the run's task instances so far: its id and hostname."""
    return (
        "SELECT j.id, j.hostname, count(*) FROM task_instance ti JOIN job j ON j.id = ti.queued_by_job_id "
        f"WHERE ti.dag_id = {literal(dag_id)} AND ti.run_id = {literal(run_id)} "
        "GROUP BY j.id, j.hostname ORDER BY count(*) DESC, j.id LIMIT 1"
    )


def in_list(values: Sequence[str]) -> str:
    if not values:
        raise ValueError("an empty IN list")
    return "(" + ", ".join(literal(value) for value in values) + ")"


def runs_sql(dag_id: str, run_ids: Sequence[str]) -> str:
    """Several dag_runs (a wave): run_id, state, queued_at, start_date and end_date."""
    return (
        f"SELECT run_id, state, {epoch('queued_at')}, {epoch('start_date')}, {epoch('end_date')} "
        f"FROM dag_run WHERE dag_id = {literal(dag_id)} AND run_id IN {in_list(run_ids)} ORDER BY run_id"
    )


def runs_progress_sql(dag_id: str, run_ids: Sequence[str], task_id: str) -> str:
    """Per run of a wave: its state, and how many of its mapped task's instances started and ended."""
    ti = f"ti.dag_id = r.dag_id AND ti.run_id = r.run_id AND ti.task_id = {literal(task_id)}"
    return (
        "SELECT r.run_id, r.state, "
        f"(SELECT count(*) FROM task_instance ti WHERE {ti} AND ti.start_date IS NOT NULL), "
        f"(SELECT count(*) FROM task_instance ti WHERE {ti} AND ti.end_date IS NOT NULL), "
        f"(SELECT count(*) FROM task_instance ti WHERE {ti}) "
        f"FROM dag_run r WHERE r.dag_id = {literal(dag_id)} AND r.run_id IN {in_list(run_ids)} "
        "ORDER BY r.run_id"
    )


def wave_tasks_sql(dag_id: str, run_ids: Sequence[str]) -> str:
    """Every task instance of a wave's runs: the columns of task_rows_sql."""
    return (
        "SELECT task_id, map_index, state, "
        f"{epoch('queued_dttm')}, {epoch('start_date')}, {epoch('end_date')}, queued_by_job_id "
        f"FROM task_instance WHERE dag_id = {literal(dag_id)} AND run_id IN {in_list(run_ids)} "
        "ORDER BY run_id, task_id, map_index"
    )


# The scheduler's `log` rows for a task instance found in queued after [scheduler] task_queued_timeout
# (airflow/jobs/scheduler_job_runner.py): set back to scheduled, or failed after the last retry.
STUCK_IN_QUEUED_EVENT = "stuck in queued reschedule"
STUCK_TRIES_EXCEEDED_EVENT = "stuck in queued tries exceeded"


def stuck_in_queued_sql(dag_id: str, run_ids: Sequence[str]) -> str:
    """Reschedule rows, distinct task instances rescheduled, and tries-exceeded rows of a wave."""
    stuck = f"event = {literal(STUCK_IN_QUEUED_EVENT)}"
    return (
        f"SELECT count(*) FILTER (WHERE {stuck}), "
        f"count(DISTINCT concat_ws(' ', run_id, task_id, map_index)) FILTER (WHERE {stuck}), "
        f"count(*) FILTER (WHERE event = {literal(STUCK_TRIES_EXCEEDED_EVENT)}) "
        f"FROM log WHERE dag_id = {literal(dag_id)} AND run_id IN {in_list(run_ids)}"
    )


def pool_slots_sql(pool: str = "default_pool") -> str:
    return f"SELECT slots FROM slot_pool WHERE pool = {literal(pool)}"


def scheduler_jobs_sql(hostname: str) -> str:
    """Ids of the scheduler jobs that ran on one host (container), so a killed one's can be told apart.
    Airflow records socket.getfqdn(), a container knows its short hostname: the first labels compare."""
    return (
        "SELECT id FROM job WHERE job_type = 'SchedulerJob' "
        f"AND split_part(hostname, '.', 1) = split_part({literal(hostname)}, '.', 1)"
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


def parse_runs(rows: Sequence[Sequence[str]]) -> dict[str, RunRow]:
    """runs_sql rows: run_id -> RunRow."""
    return {
        run_id: RunRow(state, parse_float(queued), parse_float(start), parse_float(end))
        for run_id, state, queued, start, end in rows
    }


def parse_runs_progress(rows: Sequence[Sequence[str]]) -> dict[str, Progress]:
    """runs_progress_sql rows: run_id -> Progress (runs not in the database yet are absent)."""
    return {
        run_id: Progress(state, int(started), int(finished), int(total))
        for run_id, state, started, finished, total in rows
    }


def parse_stuck(rows: Sequence[Sequence[str]]) -> StuckInQueued:
    if len(rows) != 1 or len(rows[0]) != 3:
        raise ValueError(f"expected one row of three counts, got {rows!r}")
    events, instances, exceeded = (int(cell or 0) for cell in rows[0])
    return StuckInQueued(events=events, task_instances=instances, tries_exceeded=exceeded)


# --- figures of one run -------------------------------------------------------------------------------
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


def wave_figures(runs: Iterable[RunRow], tasks: Iterable[TaskRow], mapped_task_id: str) -> WaveFigures:
    """A wave of concurrent runs as one: its span is the earliest run start to the latest run end, and
    the peak counts the mapped tasks of every run together."""
    run_rows = list(runs)
    all_tasks = list(tasks)
    mapped = [t for t in all_tasks if t.task_id == mapped_task_id]
    starts = [r.start for r in run_rows if r.start is not None]
    ends = [r.end for r in run_rows if r.end is not None]
    complete = bool(run_rows) and len(ends) == len(run_rows)
    span = max(ends) - min(starts) if complete and starts else None
    waits = [t.start - t.queued for t in mapped if t.start is not None and t.queued is not None]
    busy = [t.end - t.start for t in mapped if t.start is not None and t.end is not None]
    queued_at = [r.queued_at for r in run_rows if r.queued_at is not None]
    any_starts = [t.start for t in all_tasks if t.start is not None]
    succeeded = sum(1 for t in mapped if t.state == "success")
    failed = sum(1 for t in mapped if t.state in ("failed", "upstream_failed"))
    return WaveFigures(
        runs=len(run_rows),
        tasks=len(mapped),
        succeeded=succeeded,
        failed=failed,
        unfinished=len(mapped) - succeeded - failed,
        wave_seconds=span,
        throughput=len(mapped) / span if span else None,
        task_seconds_total=sum(busy) if busy else None,
        queue_wait_p50=percentile(waits, 50),
        queue_wait_p95=percentile(waits, 95),
        queue_wait_max=max(waits) if waits else None,
        peak_concurrency=peak_overlap(
            (t.start, t.end) for t in mapped if t.start is not None and t.end is not None
        ),
        trigger_to_first_start=min(any_starts) - min(queued_at) if any_starts and queued_at else None,
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


def memory_snapshot(samples: Iterable[tuple[str, int]]) -> MemorySnapshot:
    """samples: (service, bytes) per container."""
    services: dict[str, int] = {}
    counts: dict[str, int] = {}
    for service, used in samples:
        services[service] = services.get(service, 0) + used
        counts[service] = counts.get(service, 0) + 1
    return MemorySnapshot(
        sum(services.values()), dict(sorted(services.items())), dict(sorted(counts.items()))
    )


# --- CPU ------------------------------------------------------------------------------------------------
NS = 1_000_000_000


def cpu_usage_ns(stats: Mapping[str, object]) -> int | None:
    """A container's CPU time so far (nanoseconds, all its processes): Docker's cpu_stats, the same on
    cgroup v1 (cpuacct.usage) and v2 (cpu.stat usage_usec x 1000)."""
    cpu = stats.get("cpu_stats") or {}
    assert isinstance(cpu, Mapping)
    usage = cpu.get("cpu_usage") or {}
    assert isinstance(usage, Mapping)
    total = usage.get("total_usage")
    return None if total is None else int(total)


@dataclass(frozen=True)
class CpuSample:
    container: str  # container id
    service: str
    usage_ns: int
    at: float  # Unix time of the reading


@dataclass(frozen=True)
class IdleRates:
    """Each container's CPU rate (cores) over a quiet window, to subtract from a run's usage."""

    window_seconds: float
    containers: dict[str, tuple[str, float]]  # container id -> (service, cores)

    def by_service(self) -> dict[str, float]:
        cores: dict[str, float] = {}
        for service, rate in self.containers.values():
            cores[service] = cores.get(service, 0.0) + rate
        return dict(sorted(cores.items()))

    def rate_of(self, container: str, service: str) -> float:
        """The container's own idle rate; for one that was not there (a worker added since), the mean
        of its service's measured containers; 0 for a service never measured."""
        if container in self.containers:
            return self.containers[container][1]
        rates = [rate for name, rate in self.containers.values() if name == service]
        return sum(rates) / len(rates) if rates else 0.0

    def record(self) -> IdleCpu:
        counts: dict[str, int] = {}
        for service, _ in self.containers.values():
            counts[service] = counts.get(service, 0) + 1
        return IdleCpu(
            window_seconds=round(self.window_seconds, 3),
            cores={name: round(value, 5) for name, value in self.by_service().items()},
            containers=dict(sorted(counts.items())),
        )


def idle_rates(before: Iterable[CpuSample], after: Iterable[CpuSample]) -> IdleRates:
    """Rates of the containers read at both ends of the window (a restarted one, whose counter went
    back, and one that came or went are left out)."""
    first = {sample.container: sample for sample in before}
    containers: dict[str, tuple[str, float]] = {}
    windows = []
    for sample in after:
        start = first.get(sample.container)
        if start is None or sample.usage_ns < start.usage_ns or sample.at <= start.at:
            continue
        seconds = sample.at - start.at
        windows.append(seconds)
        containers[sample.container] = (sample.service, (sample.usage_ns - start.usage_ns) / NS / seconds)
    return IdleRates(sum(windows) / len(windows) if windows else 0.0, containers)


def cpu_cost(
    before: Iterable[CpuSample], after: Iterable[CpuSample], idle: IdleRates | None, tasks: int
) -> CpuCost:
    """CPU-seconds per service between two readings, and what the idle rates account for in that time.

    A container present at both readings counts its counter's difference; one started in between (its
    counter began at 0) counts all of it; one restarted (its counter went back) counts what it used
    since; one gone by the second reading cannot be counted. Each case other than the first is named in
    `problems`."""
    first = {sample.container: sample for sample in before}
    start_of_window = min((sample.at for sample in first.values()), default=None)
    gross: dict[str, float] = {}
    subtracted: dict[str, float] = {}
    windows = []
    problems = []
    seen = set()
    for sample in after:
        seen.add(sample.container)
        start = first.get(sample.container)
        if start is None:
            used = sample.usage_ns
            since = start_of_window if start_of_window is not None else sample.at
            problems.append(
                f"{sample.service} {sample.container[:12]} started during the run: all its CPU counted"
            )
        elif sample.usage_ns < start.usage_ns:
            used, since = sample.usage_ns, start.at
            problems.append(f"{sample.service} {sample.container[:12]} restarted during the run")
        else:
            used, since = sample.usage_ns - start.usage_ns, start.at
            windows.append(sample.at - start.at)
        seconds = max(0.0, sample.at - since)
        gross[sample.service] = gross.get(sample.service, 0.0) + used / NS
        rate = idle.rate_of(sample.container, sample.service) if idle is not None else 0.0
        subtracted[sample.service] = subtracted.get(sample.service, 0.0) + rate * seconds
    for container, sample in first.items():
        if container not in seen:
            problems.append(f"{sample.service} {container[:12]} gone before the end of the run: not counted")
    return CpuCost(
        window_seconds=round(sum(windows) / len(windows), 3) if windows else 0.0,
        tasks=tasks,
        gross={name: round(value, 4) for name, value in sorted(gross.items())},
        idle={name: round(value, 4) for name, value in sorted(subtracted.items())},
        problems=problems,
    )


# --- sampling while a run goes on ---------------------------------------------------------------------
@dataclass
class Sampler:
    """Calls `query` every `interval` seconds in a thread until stopped; keeps each value and errors.

    A failed sample is counted, not fatal: one slow `docker exec` must not end a run.
    """

    query: Callable[[], int]
    interval: float = 1.0
    samples: list[tuple[float, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._loop, name="bench-sampler", daemon=True)
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

    def summary(self) -> Connections:
        values = [value for _, value in self.samples]
        return Connections(
            max=self.peak,
            samples=len(values),
            min=min(values, default=None),
            errors=len(self.errors),
            first_error=self.errors[0] if self.errors else None,
        )


ConnectionSampler = Sampler  # what it samples during a run: CONNECTIONS_SQL
