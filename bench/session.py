"""One benchmark session, from a fresh stack to its teardown, and the image preparation before all.

prepare() makes sure every image is on the machine before any stack is timed (builds the Airflow
image, pulls what is missing unless offline), and decides whether Grafana runs. run_session() starts
a stack of one configuration under the benchmark's project name with a fresh env file, measures,
and always tears it down with its volumes. What it measured goes into the `record` dict as it goes,
and `save()` is called after each step, so an interrupted run still leaves its partial results.
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

from bench.airflow_api import AirflowApi
from bench.errors import BenchError
from bench.limits import ceilings
from bench.plan import FAILOVER_WORKERS, SessionSpec, Settings
from bench.stack import (
    REPO,
    BenchStack,
    assignments,
    compose_environment,
    compose_files,
    env_file_text,
    offline_images,
    service_images,
    write_env_file,
)
from bench.workloads import DAG_ID, failover_run, mapped_run

Log = Callable[[str], None]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_stack(config: str, env_path: Path, with_grafana: bool, settings: Settings, log: Log) -> BenchStack:
    """A stack object with a freshly generated env file (new secrets every session)."""
    text = env_file_text((REPO / ".env.example").read_text(), with_grafana=with_grafana)
    write_env_file(env_path, text)
    environment = compose_environment(
        os.environ, assignments(text), offline_images(os.environ, settings.offline)
    )
    return BenchStack(config=config, env_file=env_path, environment=environment, log=log)


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
    stack = new_stack("tuned", env_path, with_grafana=True, settings=settings, log=log)
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


def run_session(
    spec: SessionSpec,
    settings: Settings,
    prepared: Prepared,
    env_path: Path,
    diagnostics_path: Path,
    record: dict[str, object],
    save: Callable[[], None],
    log: Log,
) -> None:
    """Run one session; fills `record`. On a failure, writes `ps` and the services' last log lines to
    diagnostics_path, tears down, and raises."""
    stack = new_stack(spec.config, env_path, prepared.with_grafana, settings, log)
    runs: list[dict[str, object]] = []
    scale_seconds: dict[str, float] = {}
    record.update(
        config=spec.config,
        repetition=spec.repetition,
        spec=spec.as_dict(),
        compose_files=compose_files(spec.config),
        with_grafana=prepared.with_grafana,
        started_at=now(),
        ceilings=[c.as_dict() for c in ceilings(spec.config, sorted({*spec.workers, FAILOVER_WORKERS}))],
        runs=runs,
        scale_seconds=scale_seconds,
        error=None,
    )
    stack.down()  # leftovers of an interrupted earlier run of the benchmark
    try:
        log(f"{spec.name}: starting the stack ({' + '.join(compose_files(spec.config))})")
        record["up_seconds"] = round(stack.up(settings.up_timeout), 2)
        log(f"{spec.name}: all healthy in {record['up_seconds']:.1f} s")
        save()
        api = AirflowApi(
            stack.url("AIRFLOW_API_PORT"),
            stack.env["AIRFLOW_ADMIN_USER"],
            stack.env["AIRFLOW_ADMIN_PASSWORD"],
        )
        record["dag_ready_seconds"] = round(api.wait_for_dag(DAG_ID), 2)
        api.unpause(DAG_ID)
        if spec.idle_memory:
            time.sleep(settings.settle_seconds)
            idle = stack.memory()
            record["idle_memory"] = idle.as_dict()
            containers = sum(idle.containers.values())
            log(f"{spec.name}: idle memory {idle.total_gib:.2f} GiB over {containers} containers")
            save()
        current = 1
        for workers in spec.workers:
            if workers != current:
                step = f"{current}->{workers}"
                scale_seconds[step] = round(stack.scale_workers(workers, settings.scale_timeout), 2)
                log(f"{spec.name}: {workers} workers healthy in {scale_seconds[step]:.1f} s")
                current = workers
            log(f"{spec.name}: {settings.tasks} mapped tasks on {workers} worker(s)")
            run = mapped_run(
                stack,
                api,
                label=f"{spec.config}-w{workers}",
                workers=workers,
                count=settings.tasks,
                timeout=settings.run_timeout,
                # Without PgBouncer, Postgres may run out of connections: that is the finding, not an error.
                allow_failed=spec.config == "direct",
            )
            runs.append(run)
            log(f"{spec.name}: {describe_run(run)}")
            save()
        if spec.failover:
            if current != FAILOVER_WORKERS:
                step = f"{current}->{FAILOVER_WORKERS}"
                scale_seconds[step] = round(stack.scale_workers(FAILOVER_WORKERS, settings.scale_timeout), 2)
            log(f"{spec.name}: failover: {settings.failover_tasks} tasks, one scheduler killed mid-run")
            failover = failover_run(
                stack,
                api,
                label=f"{spec.config}-failover",
                workers=FAILOVER_WORKERS,
                count=settings.failover_tasks,
                timeout=settings.run_timeout,
                next_start_timeout=settings.failover_next_start_timeout,
                finish_timeout=settings.failover_finish_timeout,
            )
            record["failover"] = failover
            log(f"{spec.name}: {describe_failover(failover)}")
            save()
    except BaseException as error:
        record["error"] = str(error) if isinstance(error, BenchError) else f"{type(error).__name__}: {error}"
        if not isinstance(error, Exception):  # interrupted: tear down at once, no log collection
            raise
        try:
            diagnostics_path.parent.mkdir(parents=True, exist_ok=True)
            diagnostics_path.write_text(stack.diagnostics())
            record["diagnostics"] = str(diagnostics_path)
        except (OSError, subprocess.SubprocessError) as problem:  # never hide the original error
            log(f"{spec.name}: could not save the service logs: {problem}")
        log(f"{spec.name}: FAILED: {record['error']} (service logs: {diagnostics_path})")
        raise
    finally:
        record["finished_at"] = now()
        save()
        log(f"{spec.name}: tearing down (volumes included)")
        stack.down()


def describe_run(run: dict) -> str:
    figures = run["figures"]
    throughput = figures.get("throughput")
    p50, p95 = figures.get("latency_p50"), figures.get("latency_p95")
    connections = run["connections"].get("max")
    parts = [
        f"{run['state']}",
        f"{throughput:.2f} tasks/s" if throughput else "throughput n/a",
        f"start latency p50 {p50:.2f} s, p95 {p95:.2f} s" if p50 is not None and p95 is not None else "",
        f"peak {figures.get('peak_concurrency')} at once",
        f"Postgres connections max {connections}",
    ]
    if run.get("memory_load"):
        parts.append(f"memory under load {run['memory_load']['total_gib']:.2f} GiB")
    return ", ".join(part for part in parts if part)


def describe_failover(failover: dict) -> str:
    figures = failover.get("figures") or {}
    next_start = figures.get("next_start_seconds")
    text = (
        f"next task started {next_start:.1f} s after the kill" if next_start is not None else "no next start"
    )
    survivor = figures.get("survivor_queued_seconds")
    if survivor is not None:
        text += f", survivor queued one after {survivor:.1f} s"
    problems = failover.get("problems") or []
    return text + (f" ({'; '.join(problems)})" if problems else "") + f"; run {failover.get('state')}"
