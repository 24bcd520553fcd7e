"""One benchmark session, from a fresh stack to its teardown, and the image preparation before all.

prepare() makes sure every image is on the machine before any stack is timed (builds the Airflow
image, pulls what is missing unless offline), and decides whether Grafana runs. run_session() starts
a stack of one configuration under the benchmark's project name with a fresh env file, runs the
session's steps (bench/plan.py), and always tears it down with its volumes. What it measured goes into
its SessionRecord (bench/record.py) as it goes, and `save()` is called after each step, so an
interrupted run still leaves its partial results.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import docker
import docker.errors

from bench import configs
from bench.bench_stack import BenchStack, compose_files, env_file_text
from bench.errors import BenchError
from bench.limits import ceilings, overload_queued_timeout, read_float, worker_concurrency
from bench.plan import FAILOVER_WORKERS, OVERLOAD_WORKERS, SessionSpec, Settings, steps
from bench.record import FailoverRun, Idle, NoopRun, SessionRecord, WaveRun
from bench.workloads import (
    DAGS,
    failover_run,
    fanout_wave,
    idle_window,
    noop_run,
    overload_wave,
    sleep_durations,
    wait_for_pool,
)
from stackkit import REPO, compose, envfile
from stackkit.airflow_api import AirflowApi
from stackkit.images import offline_images, service_images

Log = Callable[[str], None]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_stack(config: str, env_path: Path, with_grafana: bool, settings: Settings, log: Log) -> BenchStack:
    """A stack object with a freshly generated env file (new secrets every session)."""
    text = env_file_text((REPO / ".env.example").read_text(), with_grafana=with_grafana)
    envfile.write_private(env_path, text)
    environment = compose.environment(
        os.environ, envfile.parse(text), offline_images(os.environ, settings.offline)
    )
    return BenchStack.of(config, env_path, environment, log)


@dataclass(frozen=True)
class Prepared:
    with_grafana: bool
    images: dict[str, str]  # image -> image id: the same images for every session


def image_present(client: docker.DockerClient, image: str) -> bool:
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def prepare(settings: Settings, env_path: Path, log: Log) -> Prepared:
    stack = new_stack(configs.TUNED, env_path, with_grafana=True, settings=settings, log=log)
    client = docker.from_env()
    resolved = stack.compose("--profile", "grafana", "config", "--format", "json", timeout=120)
    images = service_images(json.loads(resolved))
    log("building the Airflow image (cached layers make this quick after the first time)")
    stack.build()
    pulled = [i for i in images if not i.built and not image_present(client, i.image)]
    if pulled and not settings.offline and os.environ.get("OFFLINE") != "1":
        log(f"pulling {len(pulled)} missing image(s): {', '.join(sorted({i.image for i in pulled}))}")
        stack.compose(
            "--profile", "grafana", "pull", "--ignore-buildable", "--ignore-pull-failures", timeout=3600
        )
    missing = sorted({i.image for i in images if not image_present(client, i.image)})
    grafana_images = {i.image for i in images if i.service == "grafana"}
    with_grafana = settings.grafana and not (grafana_images & set(missing))
    if grafana_images & set(missing):
        log("no Grafana image on this machine: the stacks run without Grafana (memory figures exclude it)")
    others = [image for image in missing if image not in grafana_images]
    if others:
        hint = "make offline-images (OFFLINE=1)" if settings.offline else "docker compose pull"
        raise BenchError(f"images missing: {', '.join(others)}; get them first ({hint})")
    used = [i.image for i in images if with_grafana or i.service != "grafana"]
    return Prepared(with_grafana=with_grafana, images=stack.image_ids(used))


def new_record(spec: SessionSpec, settings: Settings, prepared: Prepared) -> SessionRecord:
    noop_workers = sorted({*spec.noop_workers, *((FAILOVER_WORKERS,) if spec.failover else ())})
    limits = ceilings(spec.config, noop_workers)
    if spec.fanout_workers:
        limits += ceilings(spec.config, sorted(spec.fanout_workers), settings.fanout_runs)
    if spec.overload:
        limits += ceilings(spec.config, [OVERLOAD_WORKERS], settings.overload_runs)
    return SessionRecord(
        config=spec.config,
        repetition=spec.repetition,
        spec=spec,
        compose_files=compose_files(spec.config),
        with_grafana=prepared.with_grafana,
        started_at=now(),
        ceilings=limits,
    )


def overload_timeout(config: str, settings: Settings) -> float:
    """Enough for the tasks beyond the slots to be re-queued by the stuck check up to twice and run."""
    check = read_float(config, "scheduler", "task_queued_timeout_check_interval")
    return 3 * settings.overload_task_seconds + 2 * check + 120


def run_session(
    spec: SessionSpec,
    settings: Settings,
    prepared: Prepared,
    env_path: Path,
    diagnostics_path: Path,
    record: SessionRecord,
    save: Callable[[], None],
    log: Log,
) -> None:
    """Run one session's steps into `record`. On a failure, writes `ps` and the services' last log lines
    to diagnostics_path, tears down, and raises."""
    conf = configs.get(spec.config)
    stack = new_stack(spec.config, env_path, prepared.with_grafana, settings, log)
    slots_per_worker = worker_concurrency()
    # Without PgBouncer, Postgres may run out of connections: that is a finding, not an error.
    allow_failed = not conf.pgbouncer
    stack.down()  # leftovers of an interrupted earlier run of the benchmark
    try:
        log(f"{spec.name}: starting the stack ({' + '.join(compose_files(spec.config))})")
        record.up_seconds = round(stack.up(settings.up_timeout), 2)
        log(f"{spec.name}: all healthy in {record.up_seconds:.1f} s")
        save()
        api = AirflowApi(
            stack.url("AIRFLOW_API_PORT"),
            stack.env["AIRFLOW_ADMIN_USER"],
            stack.env["AIRFLOW_ADMIN_PASSWORD"],
            token_retry_for=120,
        )
        record.dag_ready_seconds = round(
            sum(api.wait_for_dag(dag_id, timeout=300, every=2) for dag_id in DAGS), 2
        )
        for dag_id in DAGS:
            api.unpause(dag_id)
        idle = None
        if spec.idle:
            time.sleep(settings.settle_seconds)
            memory = stack.memory()
            idle = idle_window(stack, settings.idle_seconds)
            idle_cpu = idle.record()
            record.idle = Idle(memory=memory, cpu=idle_cpu)
            log(
                f"{spec.name}: idle memory {memory.total_gib:.2f} GiB over {sum(memory.containers.values())} "
                f"containers, idle CPU {idle_cpu.total_cores:.3f} cores over {idle_cpu.window_seconds:.0f} s"
            )
            save()

        pool_ready: set[int] = set()  # the worker count default_pool was last seen sized for

        def pool_for(workers: int) -> None:
            """Before a measured run: wait until worker-capacity has sized default_pool to the workers
            (at once for added workers, ~40 s after one is gone). Not before the failover run."""
            if not conf.pool_follows_workers or workers in pool_ready:
                return
            pool_ready.clear()
            expected = slots_per_worker * workers
            seen, waited = wait_for_pool(stack, expected, settings.pool_timeout)
            if seen == expected:
                pool_ready.add(workers)
                log(f"{spec.name}: default_pool {seen} slots after {waited:.0f} s")
            else:
                log(
                    f"{spec.name}: default_pool still {seen} slots after {waited:.0f} s (expected {expected})"
                )

        current = 1
        for step in steps(spec):
            workers = step.workers
            if step.action == "scale":
                key = f"{current}->{workers}"
                record.scale_seconds[key] = round(stack.scale_workers(workers, settings.scale_timeout), 2)
                log(f"{spec.name}: {workers} workers healthy in {record.scale_seconds[key]:.1f} s")
                current = workers
                pool_ready.clear()
            elif step.action == "noop":
                pool_for(workers)
                log(f"{spec.name}: {settings.tasks} mapped no-op tasks on {workers} worker(s)")
                run = noop_run(
                    stack,
                    api,
                    label=f"{spec.config}-w{workers}",
                    workers=workers,
                    count=settings.tasks,
                    timeout=settings.run_timeout,
                    idle=idle,
                    allow_failed=allow_failed,
                )
                record.noop.append(run)
                log(f"{spec.name}: {describe_noop(run)}")
            elif step.action == "fanout":
                pool_for(workers)
                seconds = sleep_durations(
                    settings.fanout_tasks(workers), settings.fanout_min_seconds, settings.fanout_max_seconds
                )
                log(
                    f"{spec.name}: I/O fan-out: {len(seconds)} tasks of {min(seconds)}-{max(seconds)} s "
                    f"in {settings.fanout_runs} runs on {workers} worker(s)"
                )
                wave = fanout_wave(
                    stack,
                    api,
                    label=f"{spec.config}-fanout-w{workers}",
                    workers=workers,
                    seconds=seconds,
                    runs=settings.fanout_runs,
                    timeout=settings.run_timeout,
                    allow_failed=allow_failed,
                )
                record.fanout.append(wave)
                log(f"{spec.name}: {describe_wave(wave)}")
            elif step.action == "failover":
                log(f"{spec.name}: failover: {settings.failover_tasks} tasks, one scheduler killed mid-run")
                record.failover = failover_run(
                    stack,
                    api,
                    label=f"{spec.config}-failover",
                    workers=workers,
                    count=settings.failover_tasks,
                    timeout=settings.run_timeout,
                    next_start_timeout=settings.failover_next_start_timeout,
                    finish_timeout=settings.failover_finish_timeout,
                )
                log(f"{spec.name}: {describe_failover(record.failover)}")
            elif step.action == "overload-config":
                timeout = overload_queued_timeout()
                log(
                    f"{spec.name}: overload: {workers} worker, scheduler(s) recreated with "
                    f"task_queued_timeout {timeout:g} s ({configs.OVERLOAD})"
                )
                record.reconfigure_seconds = round(
                    stack.reconfigure(workers, (configs.OVERLOAD,), settings.scale_timeout), 2
                )
                current = workers
                pool_ready.clear()
            elif step.action == "overload":
                pool_for(workers)
                seconds = settings.overload_task_seconds
                log(
                    f"{spec.name}: overload: {settings.overload_tasks} tasks of {seconds} s in "
                    f"{settings.overload_runs} runs on {workers} worker ({slots_per_worker} slots)"
                )
                record.overload = overload_wave(
                    stack,
                    api,
                    label=f"{spec.config}-overload",
                    count=settings.overload_tasks,
                    runs=settings.overload_runs,
                    task_seconds=seconds,
                    queued_timeout=overload_queued_timeout(),
                    timeout=overload_timeout(spec.config, settings),
                )
                log(f"{spec.name}: {describe_overload(record.overload)}")
            save()
    except BaseException as error:
        record.error = str(error) if isinstance(error, BenchError) else f"{type(error).__name__}: {error}"
        if not isinstance(error, Exception):  # interrupted: tear down at once, no log collection
            raise
        try:
            diagnostics_path.parent.mkdir(parents=True, exist_ok=True)
            diagnostics_path.write_text(stack.diagnostics())
            record.diagnostics = str(
                diagnostics_path.relative_to(REPO)
                if diagnostics_path.is_relative_to(REPO)
                else diagnostics_path
            )
        except (OSError, subprocess.SubprocessError) as problem:  # never hide the original error
            log(f"{spec.name}: could not save the service logs: {problem}")
        log(f"{spec.name}: FAILED: {record.error} (service logs: {diagnostics_path})")
        raise
    finally:
        record.finished_at = now()
        save()
        log(f"{spec.name}: tearing down (volumes included)")
        stack.down()


# --- progress lines ------------------------------------------------------------------------------------
def describe_noop(run: NoopRun) -> str:
    figures = run.figures
    parts = [
        run.state,
        f"{figures.throughput:.2f} tasks/s" if figures.throughput else "throughput n/a",
        f"start latency p50 {figures.latency_p50:.2f} s, p95 {figures.latency_p95:.2f} s"
        if figures.latency_p50 is not None and figures.latency_p95 is not None
        else "",
        f"peak {figures.peak_concurrency} at once",
        f"Postgres connections max {run.connections.max}",
    ]
    if run.memory_load:
        parts.append(f"memory under load {run.memory_load.total_gib:.2f} GiB")
    if run.cpu and run.cpu.per_task_total is not None:
        parts.append(f"CPU {run.cpu.per_task_total:.3f} core-s per task (most: {run.cpu.biggest})")
    return ", ".join(part for part in parts if part)


def describe_wave(wave: WaveRun) -> str:
    figures = wave.figures
    parts = [
        f"{figures.throughput:.3f} tasks/s over {figures.wave_seconds:.0f} s"
        if figures.throughput and figures.wave_seconds
        else "throughput n/a",
        f"peak {figures.peak_concurrency} at once",
        f"queue wait p95 {figures.queue_wait_p95:.1f} s" if figures.queue_wait_p95 is not None else "",
        f"default_pool {wave.pool_slots}" if wave.pool_slots is not None else "",
        "; ".join(wave.problems),
    ]
    return ", ".join(part for part in parts if part)


def describe_overload(wave: WaveRun) -> str:
    figures, stuck = wave.figures, wave.stuck
    requeued = f"{stuck.task_instances} re-queued as stuck in queued ({stuck.events} times)" if stuck else ""
    return ", ".join(
        part
        for part in (
            f"{figures.succeeded} succeeded, {figures.failed} failed, {figures.unfinished} unfinished",
            requeued,
            f"over {figures.wave_seconds:.0f} s" if figures.wave_seconds else "",
            "not finished in time" if not wave.finished else "",
        )
        if part
    )


def describe_failover(failover: FailoverRun) -> str:
    figures = failover.figures
    next_start = figures.next_start_seconds if figures else None
    text = (
        f"next task started {next_start:.1f} s after the kill" if next_start is not None else "no next start"
    )
    survivor = figures.survivor_queued_seconds if figures else None
    if survivor is not None:
        text += f", survivor queued one after {survivor:.1f} s"
    problems = failover.problems
    return text + (f" ({'; '.join(problems)})" if problems else "") + f"; run {failover.state}"
