"""The workloads of a benchmark session, each returning its typed record (bench/record.py):

- noop_run: one run of K mapped no-op tasks (bench_noop): the platform's cost per task, its
  throughput, start latency, Postgres connections, memory under load and CPU per task by service.
- fanout_wave: the I/O fan-out: several concurrent runs of bench_sleep, mapped tasks that sleep
  20-60 s, sized to keep every worker slot busy twice over: throughput over the wave, peak tasks
  running at once, queue wait.
- overload_wave: the same DAG on one worker with more long tasks than slots (task_queued_timeout + 15 s
  each): what fails and what the scheduler re-queues as stuck in queued.
- failover_run: a no-op run with the scheduler that queued most of it killed mid-run.

Each triggers its DAG through the REST API with run ids of its own and follows the runs in the metadata
database. They only need an object with the few methods of Workbench, so the unit tests drive them with
a fake stack.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from bench.errors import BenchError
from bench.measure import (
    CONNECTIONS_SQL,
    CpuSample,
    IdleRates,
    Progress,
    Sampler,
    busiest_scheduler_sql,
    cpu_cost,
    failover_figures,
    idle_rates,
    parse_progress,
    parse_run,
    parse_runs,
    parse_runs_progress,
    parse_stuck,
    parse_tasks,
    pool_slots_sql,
    progress_sql,
    run_figures,
    run_sql,
    runs_progress_sql,
    runs_sql,
    scheduler_jobs_sql,
    single_int,
    started_after_sql,
    stuck_in_queued_sql,
    task_rows_sql,
    wave_figures,
    wave_tasks_sql,
)
from bench.record import FailoverRun, MemorySnapshot, NoopRun, WaveRun

NOOP_DAG = "bench_noop"
NOOP_TASK = "noop"
SLEEP_DAG = "bench_sleep"
SLEEP_TASK = "sleep"
DAGS = (NOOP_DAG, SLEEP_DAG)
# The names the no-op workload has always used.
DAG_ID, MAPPED_TASK = NOOP_DAG, NOOP_TASK
TERMINAL = {"success", "failed"}

T = TypeVar("T")


class Container(Protocol):
    """What the workloads use of a docker SDK container."""

    @property
    def attrs(self) -> dict: ...


class Workbench(Protocol):
    """What the workloads use of a stack (bench.bench_stack.BenchStack has all of it)."""

    def sql(self, query: str) -> list[list[str]]: ...

    def memory(self) -> MemorySnapshot: ...

    def cpu(self) -> list[CpuSample]: ...

    def containers(self, service: str | None = None) -> Sequence[Container]: ...

    def kill(self, container: Container) -> None: ...


class Trigger(Protocol):
    def trigger_run(self, dag_id: str, run_id: str | None, conf: dict[str, object]) -> object: ...


def new_run_id(label: str) -> str:
    return f"bench__{label}__{uuid.uuid4().hex[:10]}"


# --- pure parts -----------------------------------------------------------------------------------------
GOLDEN = (math.sqrt(5) - 1) / 2


def sleep_durations(count: int, low: int, high: int) -> list[int]:
    """`count` whole seconds in [low, high], spread evenly (a golden-ratio sequence): the same list for
    every configuration, and any slice of it (a run's share, the first wave) covers the whole range."""
    return [low + round((high - low) * ((i * GOLDEN) % 1.0)) for i in range(count)]


def split_runs(values: Sequence[T], runs: int) -> list[list[T]]:
    """Deal `values` round-robin into `runs` lists (none empty), so each run gets an even share."""
    return [chunk for chunk in (list(values[r::runs]) for r in range(runs)) if chunk]


def pool_slots(stack: Workbench) -> int | None:
    rows = stack.sql(pool_slots_sql())
    return int(rows[0][0]) if rows and rows[0] and rows[0][0] else None


def wait_for_pool(
    stack: Workbench, slots: int, timeout: float, poll: float = 2.0
) -> tuple[int | None, float]:
    """Wait until default_pool has `slots` (worker-capacity resizes it after a scale); the slots last seen
    and the seconds waited. Not fatal: the run records the slots it started with."""
    started = time.monotonic()
    while True:
        seen = pool_slots(stack)
        if seen == slots or time.monotonic() - started > timeout:
            return seen, time.monotonic() - started
        time.sleep(poll)


def idle_window(stack: Workbench, seconds: float, interval: float = 1.0) -> IdleRates:
    """Each container's CPU rate over `seconds` with no run going on. The harness samples the database
    as during a no-op run (the connection count and a progress query, once a second each, both psql
    execs in the postgres container), so the rates subtracted later include its own cost."""
    before = stack.cpu()
    samplers = [
        Sampler(lambda: single_int(stack.sql(CONNECTIONS_SQL)), interval=interval),
        Sampler(lambda: len(stack.sql(progress_sql(NOOP_DAG, "bench__idle", NOOP_TASK))), interval=interval),
    ]
    for sampler in samplers:
        sampler.start()
    try:
        time.sleep(seconds)
    finally:
        for sampler in samplers:
            sampler.stop()
    return idle_rates(before, stack.cpu())


# --- following runs ------------------------------------------------------------------------------------
def progress(
    stack: Workbench, run_id: str, dag_id: str = NOOP_DAG, task_id: str = NOOP_TASK
) -> Progress | None:
    return parse_progress(stack.sql(progress_sql(dag_id, run_id, task_id)))


def wait_for_run(
    stack: Workbench,
    run_id: str,
    timeout: float,
    poll: float = 1.0,
    on_progress: Callable[[Progress], None] | None = None,
    fatal: bool = True,
) -> Progress | None:
    """Poll until the run is success or failed; on timeout raise (fatal) or return the last progress."""
    deadline = time.monotonic() + timeout
    while True:
        current = progress(stack, run_id)
        if current is not None and on_progress is not None:
            on_progress(current)
        if current is not None and current.state in TERMINAL:
            return current
        if time.monotonic() > deadline:
            if fatal:
                raise BenchError(f"run {run_id} not finished after {timeout:.0f} s: {current}")
            return current
        time.sleep(poll)


def wait_for_wave(
    stack: Workbench, dag_id: str, task_id: str, run_ids: Sequence[str], timeout: float, poll: float
) -> tuple[dict[str, Progress], bool]:
    """Poll until every run of a wave is success or failed, or the timeout; the last progress of each
    run and whether all ended."""
    deadline = time.monotonic() + timeout
    while True:
        current = parse_runs_progress(stack.sql(runs_progress_sql(dag_id, run_ids, task_id)))
        done = len(current) == len(run_ids) and all(p.state in TERMINAL for p in current.values())
        if done or time.monotonic() > deadline:
            return current, done
        time.sleep(poll)


# --- the no-op run -------------------------------------------------------------------------------------
def noop_run(
    stack: Workbench,
    api: Trigger,
    *,
    label: str,
    workers: int,
    count: int,
    timeout: float,
    idle: IdleRates | None = None,
    sample_memory: bool = True,
    poll: float = 1.0,
    sample_interval: float = 1.0,
    allow_failed: bool = False,
) -> NoopRun:
    """K mapped no-op tasks end to end: throughput, start latency, trigger to first task, Postgres
    connections (max of a once-a-second sample), memory once a quarter of the tasks have started, and,
    given the idle rates, the CPU the run cost by service (readings just before the trigger and once
    the run has ended)."""
    run_id = new_run_id(label)
    sampler = Sampler(lambda: single_int(stack.sql(CONNECTIONS_SQL)), interval=sample_interval)
    load: list[MemorySnapshot] = []

    def on_progress(current: Progress) -> None:
        if (
            sample_memory
            and not load
            and current.state == "running"
            and current.started >= max(1, count // 4)
        ):
            load.append(stack.memory())

    slots = pool_slots(stack)
    cpu_before = stack.cpu() if idle is not None else []
    started = time.monotonic()
    sampler.start()
    try:
        api.trigger_run(NOOP_DAG, run_id, {"count": count})
        wait_for_run(stack, run_id, timeout, poll=poll, on_progress=on_progress)
    finally:
        sampler.stop()
    wall = time.monotonic() - started
    cost = cpu_cost(cpu_before, stack.cpu(), idle, count) if idle is not None else None
    run = parse_run(stack.sql(run_sql(NOOP_DAG, run_id)))
    figures = run_figures(run, parse_tasks(stack.sql(task_rows_sql(NOOP_DAG, run_id))), NOOP_TASK)
    problems = []
    if run.state != "success":
        problems.append(f"run ended {run.state}")
    if figures.tasks != count:
        problems.append(f"{figures.tasks} mapped tasks found, {count} expected")
    if problems and not allow_failed:
        raise BenchError(f"run {run_id} ({workers} workers): {'; '.join(problems)}")
    return NoopRun(
        label=label,
        workers=workers,
        tasks_requested=count,
        run_id=run_id,
        state=run.state,
        wall_seconds=round(wall, 3),
        figures=figures,
        connections=sampler.summary(),
        problems=problems,
        memory_load=load[0] if load else None,
        cpu=cost,
        pool_slots=slots,
    )


# --- waves of bench_sleep ------------------------------------------------------------------------------
def trigger_wave(api: Trigger, label: str, chunks: Sequence[Sequence[int]]) -> list[str]:
    run_ids = []
    for index, seconds in enumerate(chunks, start=1):
        run_id = new_run_id(f"{label}-r{index}")
        api.trigger_run(SLEEP_DAG, run_id, {"seconds": list(seconds)})
        run_ids.append(run_id)
    return run_ids


def sleep_wave(
    stack: Workbench,
    api: Trigger,
    *,
    kind: str,
    label: str,
    workers: int,
    seconds: Sequence[int],
    runs: int,
    timeout: float,
    poll: float,
) -> WaveRun:
    """Trigger `runs` runs of bench_sleep sharing `seconds` (one mapped task per entry), follow them until
    all end or the timeout, and read the wave's figures. Nothing here is fatal: the caller decides."""
    chunks = split_runs(seconds, runs)
    slots = pool_slots(stack)
    started = time.monotonic()
    run_ids = trigger_wave(api, label, chunks)
    last, finished = wait_for_wave(stack, SLEEP_DAG, SLEEP_TASK, run_ids, timeout, poll)
    wall = time.monotonic() - started
    rows = parse_runs(stack.sql(runs_sql(SLEEP_DAG, run_ids)))
    tasks = parse_tasks(stack.sql(wave_tasks_sql(SLEEP_DAG, run_ids)))
    figures = wave_figures(rows.values(), tasks, SLEEP_TASK)
    states = {run_id: (rows[run_id].state if run_id in rows else "missing") for run_id in run_ids}
    problems = []
    if not finished:
        waiting = {p.state for p in last.values()} or {"not created"}
        problems.append(f"not finished after {timeout:.0f} s (runs {', '.join(sorted(waiting))})")
    if figures.failed:
        problems.append(f"{figures.failed} of {figures.tasks} tasks failed")
    if figures.tasks != len(seconds):
        problems.append(f"{figures.tasks} mapped tasks found, {len(seconds)} expected")
    return WaveRun(
        kind=kind,
        label=label,
        workers=workers,
        run_ids=run_ids,
        tasks_requested=len(seconds),
        task_seconds_min=min(seconds),
        task_seconds_max=max(seconds),
        task_seconds_total=sum(seconds),
        wall_seconds=round(wall, 3),
        finished=finished,
        run_states=states,
        figures=figures,
        problems=problems,
        pool_slots=slots,
    )


def fanout_wave(
    stack: Workbench,
    api: Trigger,
    *,
    label: str,
    workers: int,
    seconds: Sequence[int],
    runs: int,
    timeout: float,
    poll: float = 2.0,
    allow_failed: bool = False,
) -> WaveRun:
    """The I/O fan-out on `workers` workers. A wave that does not end in time, or (unless allowed) has
    failed tasks, stops the benchmark: its throughput would mean nothing."""
    wave = sleep_wave(
        stack,
        api,
        kind="fanout",
        label=label,
        workers=workers,
        seconds=seconds,
        runs=runs,
        timeout=timeout,
        poll=poll,
    )
    if not wave.finished or (wave.problems and not allow_failed):
        raise BenchError(f"fan-out wave {label} ({workers} workers): {'; '.join(wave.problems)}")
    return wave


def overload_wave(
    stack: Workbench,
    api: Trigger,
    *,
    label: str,
    count: int,
    runs: int,
    task_seconds: int,
    queued_timeout: float,
    timeout: float,
    poll: float = 2.0,
) -> WaveRun:
    """More long tasks than one worker's slots. Failures, re-queues and even a wave that does not end in
    time are the findings, never an error: the run records them (and the teardown removes what is left)."""
    wave = sleep_wave(
        stack,
        api,
        kind="overload",
        label=label,
        workers=1,
        seconds=[task_seconds] * count,
        runs=runs,
        timeout=timeout,
        poll=poll,
    )
    wave.stuck = parse_stuck(stack.sql(stuck_in_queued_sql(SLEEP_DAG, wave.run_ids)))
    wave.task_queued_timeout = queued_timeout
    return wave


# --- failover ------------------------------------------------------------------------------------------
def hostname_matches(job_hostname: str, container_hostname: str) -> bool:
    """Airflow records socket.getfqdn(); a container's hostname is its short id: compare the first label."""
    return bool(container_hostname) and job_hostname.split(".")[0] == container_hostname.split(".")[0]


def failover_run(
    stack: Workbench,
    api: Trigger,
    *,
    label: str,
    workers: int,
    count: int,
    timeout: float,
    next_start_timeout: float,
    finish_timeout: float,
    poll: float = 0.5,
) -> FailoverRun:
    """Kill (SIGKILL) the scheduler that queued most of a run's tasks once a tenth of them started;
    measure the time from the kill to the next task start, and to the first task queued by the
    survivor. A run that finishes before the kill, or no task starting in time, is reported, not fatal."""
    run_id = new_run_id(label)
    kill_after = max(2, count // 10)
    result = FailoverRun(
        label=label, workers=workers, tasks_requested=count, run_id=run_id, kill_after_started=kill_after
    )
    problems = result.problems
    schedulers = list(stack.containers("airflow-scheduler"))
    if len(schedulers) < 2:
        raise BenchError(f"failover needs two running schedulers, found {len(schedulers)}")
    api.trigger_run(NOOP_DAG, run_id, {"count": count})
    deadline = time.monotonic() + timeout
    while True:
        current = progress(stack, run_id)
        if current is not None and current.state in TERMINAL:
            problems.append(f"the run ended ({current.state}) before {kill_after} tasks had started")
            result.state = current.state
            return result
        if current is not None and current.started >= kill_after:
            break
        if time.monotonic() > deadline:
            raise BenchError(f"failover run {run_id}: {kill_after} tasks not started after {timeout:.0f} s")
        time.sleep(poll)

    busiest = stack.sql(busiest_scheduler_sql(NOOP_DAG, run_id))
    job_host = busiest[0][1] if busiest else ""
    victim = next(
        (c for c in schedulers if hostname_matches(job_host, str(c.attrs.get("Config", {}).get("Hostname")))),
        schedulers[0],
    )
    victim_host = str(victim.attrs.get("Config", {}).get("Hostname", ""))
    killed_jobs = [int(row[0]) for row in stack.sql(scheduler_jobs_sql(victim_host))]
    stack.kill(victim)
    kill_at = time.time()
    result.killed_hostname = victim_host
    result.killed_was_busiest = bool(job_host) and hostname_matches(job_host, victim_host)
    result.killed_job_ids = killed_jobs
    result.kill_at = kill_at

    deadline = time.monotonic() + next_start_timeout
    while single_int(stack.sql(started_after_sql(NOOP_DAG, run_id, NOOP_TASK, kill_at))) == 0:
        current = progress(stack, run_id)
        if current is not None and current.state in TERMINAL:
            problems.append(f"the run ended ({current.state}) with no task started after the kill")
            break
        if time.monotonic() > deadline:
            problems.append(f"no task started within {next_start_timeout:.0f} s of the kill")
            break
        time.sleep(poll)

    final = wait_for_run(stack, run_id, finish_timeout, poll=1.0, fatal=False)
    result.state = final.state if final else "unknown"
    if result.state not in TERMINAL:
        problems.append(f"run still {result.state} {finish_timeout:.0f} s after the kill (left to teardown)")
    tasks = parse_tasks(stack.sql(task_rows_sql(NOOP_DAG, run_id)))
    result.figures = failover_figures(kill_at, tasks, NOOP_TASK, killed_jobs)
    return result
