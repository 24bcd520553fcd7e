"""The workloads of a benchmark session: a run of K mapped no-op tasks, and the same with one of the
two schedulers killed mid-run.

Each triggers bench_noop (bench/dags/bench_noop.py) through the REST API with a run id of its own,
follows it in the metadata database, and returns a JSON-ready dict of what it measured. They only
need an object with the few methods of Workbench, so the unit tests drive them with a fake stack.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Protocol

from bench.errors import BenchError
from bench.measure import (
    CONNECTIONS_SQL,
    ConnectionSampler,
    MemorySnapshot,
    Progress,
    busiest_scheduler_sql,
    failover_figures,
    parse_progress,
    parse_run,
    parse_tasks,
    progress_sql,
    run_figures,
    run_sql,
    scheduler_jobs_sql,
    single_int,
    started_after_sql,
    task_rows_sql,
)

DAG_ID = "bench_noop"
MAPPED_TASK = "noop"
TERMINAL = {"success", "failed"}


class Container(Protocol):
    """What the workloads use of a docker SDK container."""

    @property
    def attrs(self) -> dict: ...


class Workbench(Protocol):
    """What the workloads use of a stack (bench.stack.BenchStack has all of it)."""

    def sql(self, query: str) -> list[list[str]]: ...

    def memory(self) -> MemorySnapshot: ...

    def containers(self, service: str | None = None) -> Sequence[Container]: ...

    def kill(self, container: Container) -> None: ...


class Trigger(Protocol):
    def trigger(self, dag_id: str, run_id: str, conf: dict[str, object]) -> None: ...


def new_run_id(label: str) -> str:
    return f"bench__{label}__{uuid.uuid4().hex[:10]}"


def progress(stack: Workbench, run_id: str) -> Progress | None:
    return parse_progress(stack.sql(progress_sql(DAG_ID, run_id, MAPPED_TASK)))


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


def mapped_run(
    stack: Workbench,
    api: Trigger,
    *,
    label: str,
    workers: int,
    count: int,
    timeout: float,
    sample_memory: bool = True,
    poll: float = 1.0,
    sample_interval: float = 1.0,
    allow_failed: bool = False,
) -> dict[str, object]:
    """K mapped no-op tasks end to end: throughput, start latency, trigger to first task, Postgres
    connections (max of a once-a-second sample), memory once a quarter of the tasks have started."""
    run_id = new_run_id(label)
    sampler = ConnectionSampler(lambda: single_int(stack.sql(CONNECTIONS_SQL)), interval=sample_interval)
    load: list[MemorySnapshot] = []

    def on_progress(current: Progress) -> None:
        if (
            sample_memory
            and not load
            and current.state == "running"
            and current.started >= max(1, count // 4)
        ):
            load.append(stack.memory())

    started = time.monotonic()
    sampler.start()
    try:
        api.trigger(DAG_ID, run_id, {"count": count})
        wait_for_run(stack, run_id, timeout, poll=poll, on_progress=on_progress)
    finally:
        sampler.stop()
    wall = time.monotonic() - started
    run = parse_run(stack.sql(run_sql(DAG_ID, run_id)))
    figures = run_figures(run, parse_tasks(stack.sql(task_rows_sql(DAG_ID, run_id))), MAPPED_TASK)
    problems = []
    if run.state != "success":
        problems.append(f"run ended {run.state}")
    if figures.tasks != count:
        problems.append(f"{figures.tasks} mapped tasks found, {count} expected")
    if problems and not allow_failed:
        raise BenchError(f"run {run_id} ({workers} workers): {'; '.join(problems)}")
    return {
        "kind": "mapped",
        "label": label,
        "workers": workers,
        "tasks_requested": count,
        "run_id": run_id,
        "state": run.state,
        "problems": problems,
        "wall_seconds": round(wall, 3),
        "figures": figures.as_dict(),
        "connections": sampler.as_dict(),
        "memory_load": load[0].as_dict() if load else None,
    }


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
) -> dict[str, object]:
    """Kill (SIGKILL) the scheduler that queued most of a run's tasks once a tenth of them started;
    measure the time from the kill to the next task start, and to the first task queued by the
    survivor. A run that finishes before the kill, or no task starting in time, is reported, not fatal."""
    run_id = new_run_id(label)
    kill_after = max(2, count // 10)
    result: dict[str, object] = {
        "kind": "failover",
        "label": label,
        "workers": workers,
        "tasks_requested": count,
        "run_id": run_id,
        "kill_after_started": kill_after,
        "problems": [],
    }
    problems: list[str] = result["problems"]  # type: ignore[assignment]
    schedulers = list(stack.containers("airflow-scheduler"))
    if len(schedulers) < 2:
        raise BenchError(f"failover needs two running schedulers, found {len(schedulers)}")
    api.trigger(DAG_ID, run_id, {"count": count})
    deadline = time.monotonic() + timeout
    while True:
        current = progress(stack, run_id)
        if current is not None and current.state in TERMINAL:
            problems.append(f"the run ended ({current.state}) before {kill_after} tasks had started")
            result["state"] = current.state
            return result
        if current is not None and current.started >= kill_after:
            break
        if time.monotonic() > deadline:
            raise BenchError(f"failover run {run_id}: {kill_after} tasks not started after {timeout:.0f} s")
        time.sleep(poll)

    busiest = stack.sql(busiest_scheduler_sql(DAG_ID, run_id))
    job_host = busiest[0][1] if busiest else ""
    victim = next(
        (c for c in schedulers if hostname_matches(job_host, str(c.attrs.get("Config", {}).get("Hostname")))),
        schedulers[0],
    )
    victim_host = str(victim.attrs.get("Config", {}).get("Hostname", ""))
    killed_jobs = [int(row[0]) for row in stack.sql(scheduler_jobs_sql(victim_host))]
    stack.kill(victim)
    kill_at = time.time()
    result.update(
        killed_hostname=victim_host,
        killed_was_busiest=bool(job_host) and hostname_matches(job_host, victim_host),
        killed_job_ids=killed_jobs,
        kill_at=kill_at,
    )

    deadline = time.monotonic() + next_start_timeout
    while single_int(stack.sql(started_after_sql(DAG_ID, run_id, MAPPED_TASK, kill_at))) == 0:
        current = progress(stack, run_id)
        if current is not None and current.state in TERMINAL:
            problems.append(f"the run ended ({current.state}) with no task started after the kill")
            break
        if time.monotonic() > deadline:
            problems.append(f"no task started within {next_start_timeout:.0f} s of the kill")
            break
        time.sleep(poll)

    final = wait_for_run(stack, run_id, finish_timeout, poll=1.0, fatal=False)
    result["state"] = final.state if final else "unknown"
    if result["state"] not in TERMINAL:
        problems.append(
            f"run still {result['state']} {finish_timeout:.0f} s after the kill (left to teardown)"
        )
    tasks = parse_tasks(stack.sql(task_rows_sql(DAG_ID, run_id)))
    result["figures"] = failover_figures(kill_at, tasks, MAPPED_TASK, killed_jobs).as_dict()
    return result
