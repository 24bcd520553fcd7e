"""The benchmark's stack: its project name, host ports and env file, and stackkit's Stack with what
the benchmark adds (up / scale / reconfigure / down with timings, `docker stats` samples, a kill).

A benchmark stack runs under its own compose project name (airflow-bench), with its own env file
(fresh random secrets, its own host ports), so it never touches a user's `.env`, a stack started
with `make up`, or the integration tests' stack. Images come from the environment, as with `make`:
OFFLINE=1 uses the offline kit's images (stackkit.images) unless the caller exported them.
The pure parts (env file text, command lines) are separate functions, so the unit tests check them
without Docker.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import docker.errors
from docker.models.containers import Container

from bench import configs
from bench.errors import BenchError
from bench.measure import CpuSample, cpu_usage_ns, memory_snapshot, memory_used
from bench.record import MemorySnapshot
from scripts.generate_env import render
from stackkit import REPO, compose, envfile
from stackkit.containers import docker_client, service_of
from stackkit.errors import StackError
from stackkit.stack import Stack

PROJECT = "airflow-bench"
# Host ports of a benchmark stack: apart from `make up` (8080 ...) and the tests' (18080 ...).
PORTS = {"AIRFLOW_API_PORT": "28080", "FLOWER_PORT": "25555", "GRAFANA_PORT": "23000"}
# Values the benchmark sets in its env file, whatever .env.example says.
ENV_SETTINGS = {
    # Teardown must not wait 10 minutes for a worker's warm shutdown (the failover run may leave tasks).
    "AIRFLOW_WORKER_STOP_GRACE_PERIOD": "30s",
    # The benchmark DAGs have no callbacks; nothing is sent anywhere.
    "ALERT_WEBHOOK_URL": "",
}
ONE_SHOT = {"airflow-init"}


# --- pure parts -----------------------------------------------------------------------------------
def compose_files(config: str, extra: Sequence[str] = ()) -> list[str]:
    """docker-compose.yml, the configuration's overrides (bench/configs.py), then `extra` (the overload's)."""
    return [*configs.get(config).files, *extra]


def compose_paths(config: str, extra: Sequence[str] = ()) -> list[Path]:
    return [REPO / name for name in compose_files(config, extra)]


def compose_command(config: str, env_file: Path, *args: str, extra_files: Sequence[str] = ()) -> list[str]:
    return compose.command(PROJECT, compose_paths(config, extra_files), env_file, *args)


def env_file_text(example: str, with_grafana: bool) -> str:
    """.env.example with fresh secrets (scripts/generate_env.py's render), the benchmark's ports and
    settings, and the grafana profile only where its image is present."""
    wanted = {**PORTS, **ENV_SETTINGS, "COMPOSE_PROFILES": "grafana" if with_grafana else ""}
    return envfile.with_values(render(example), wanted)


# --- the live stack -------------------------------------------------------------------------------
@dataclass
class BenchStack(Stack):
    config: str = ""
    log: Callable[[str], None] = print
    _postgres_id: str | None = field(init=False, default=None)

    @classmethod
    def of(
        cls,
        config: str,
        env_file: Path,
        environment: dict[str, str],
        log: Callable[[str], None] = print,
        extra_files: Sequence[str] = (),
    ) -> BenchStack:
        """CONFIG's stack: its compose files, then EXTRA_FILES (the overload's override)."""
        files = compose_paths(config, extra_files)
        return cls(PROJECT, files, env_file, environment, config=config, log=log)

    # --- compose ----------------------------------------------------------------------------------
    def build(self) -> None:
        self.compose("build", timeout=3600)

    def _up_and_wait(self, timeout: float, *extra: str) -> float:
        """`compose up` with images already present, waiting until healthy; the seconds it took."""
        started = time.monotonic()
        self.compose(
            "up", "--detach", "--wait", "--wait-timeout", str(int(timeout)), "--no-build", "--pull", "never",
            *extra,
            timeout=timeout + 120,
        )  # fmt: skip
        return time.monotonic() - started

    def up(self, timeout: float) -> float:
        """Start everything and wait until healthy; the seconds it took (images must be present)."""
        return self._up_and_wait(timeout, "--remove-orphans")

    def _workers_running(self, count: int) -> None:
        running = len(self.containers("airflow-worker"))
        if running != count:
            raise BenchError(f"asked for {count} workers, {running} are running")

    def scale_workers(self, count: int, timeout: float) -> float:
        took = self._up_and_wait(timeout, "--no-recreate", "--scale", f"airflow-worker={count}")
        self._workers_running(count)
        return took

    def reconfigure(self, workers: int, extra_files: Sequence[str], timeout: float) -> float:
        """Add compose files and `up` again with `workers` workers: compose recreates the services whose
        configuration changed (and starts any that were stopped, like a killed scheduler)."""
        self.files = compose_paths(self.config, extra_files)
        took = self._up_and_wait(timeout, "--scale", f"airflow-worker={workers}")
        self._workers_running(workers)
        return took

    def down(self) -> None:
        """Remove containers, volumes and network; never raises (it runs on the way out of errors)."""
        try:
            self.compose(
                "--profile",
                "grafana",
                "down",
                "--volumes",
                "--remove-orphans",
                "--timeout",
                "30",
                timeout=600,
            )
        except StackError as error:
            self.log(f"teardown problem: {error}")

    def diagnostics(self) -> str:
        """`ps` and the last log lines of every service, for the failure log."""
        parts = []
        for args in (("ps", "--all"), ("logs", "--no-color", "--timestamps", "--tail=80")):
            try:
                parts.append(self.compose(*args, timeout=120, check=False))
            except StackError as error:
                parts.append(str(error))
        return "\n".join(parts)

    # --- containers and measurements --------------------------------------------------------------
    def kill(self, container: Container) -> None:
        container.kill(signal="SIGKILL")

    def postgres_id(self) -> str:
        """Looked up once: the samplers ask Postgres every second, from threads."""
        if self._postgres_id is None:
            self._postgres_id = super().postgres_id()
        return self._postgres_id

    def stats(self) -> list[tuple[str, str, float, dict]]:
        """One `docker stats` sample of each running long-lived container, read in parallel:
        (container id, service, Unix time of the reading, the stats document)."""
        targets = [(str(c.id), service_of(c)) for c in self.containers() if service_of(c) not in ONE_SHOT]
        api = docker_client().api  # one client for the pool: read-only GETs share it safely

        def sample(target: tuple[str, str]) -> tuple[str, str, float, dict]:
            container_id, service = target
            began = time.time()
            try:
                stats = api.stats(container_id, stream=False, one_shot=True)
            except docker.errors.InvalidVersion:  # API < 1.41: no one-shot, a normal (slower) sample
                stats = api.stats(container_id, stream=False)
            return container_id, service, (began + time.time()) / 2, stats

        with ThreadPoolExecutor(max_workers=6) as pool:
            return list(pool.map(sample, targets))

    def memory(self) -> MemorySnapshot:
        """Memory as `docker stats` shows it, summed per service."""
        return memory_snapshot((service, memory_used(stats)) for _, service, _, stats in self.stats())

    def cpu(self) -> list[CpuSample]:
        """Each container's CPU time so far (Docker's cpu_stats.cpu_usage.total_usage)."""
        samples = []
        for container_id, service, at, stats in self.stats():
            usage = cpu_usage_ns(stats)
            if usage is not None:
                samples.append(CpuSample(container_id, service, usage, at))
        return samples

    def image_ids(self, images: Sequence[str]) -> dict[str, str]:
        ids = {}
        for image in sorted(set(images)):
            try:
                ids[image] = str(docker_client().images.get(image).id)
            except docker.errors.ImageNotFound:
                ids[image] = "missing"
        return ids
