"""One benchmark stack's lifecycle: its env file, the compose command lines, up / scale / down, and
the Docker SDK calls the measurements need (containers, psql in Postgres, memory stats, a kill).

A benchmark stack runs under its own compose project name (airflow-bench), with its own env file
(fresh random secrets, its own host ports), so it never touches a user's `.env`, a stack started
with `make up`, or the integration tests' stack. Images come from the environment, as with `make`:
OFFLINE=1 uses the offline kit's images (offline/images.env) unless the caller exported them.
The pure parts (env file text, command lines, compose's environment) are separate functions, so the
unit tests check them without Docker.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
from docker.models.containers import Container

from bench import configs
from bench.errors import BenchError
from bench.measure import CpuSample, cpu_usage_ns, memory_snapshot, memory_used
from bench.record import MemorySnapshot
from scripts.generate_env import render

REPO = Path(__file__).resolve().parents[1]
PROJECT = "airflow-bench"
BASE_FILE = configs.BASE_FILE
# Host ports of a benchmark stack: apart from `make up` (8080 ...) and the tests' (18080 ...).
PORTS = {"AIRFLOW_API_PORT": "28080", "FLOWER_PORT": "25555", "GRAFANA_PORT": "23000"}
# Values the benchmark sets in its env file, whatever .env.example says.
ENV_SETTINGS = {
    # Teardown must not wait 10 minutes for a worker's warm shutdown (the failover run may leave tasks).
    "AIRFLOW_WORKER_STOP_GRACE_PERIOD": "30s",
    # The benchmark DAGs have no callbacks; nothing is sent anywhere.
    "ALERT_WEBHOOK_URL": "",
}
OFFLINE_IMAGES_FILE = REPO / "offline" / "images.env"
ONE_SHOT = {"airflow-init"}
# psql inside the postgres container, as airflow over the local socket: tab-separated rows, no header.
PSQL = ["psql", "--username=airflow", "--dbname=airflow", "--no-psqlrc", "--set=ON_ERROR_STOP=1"]
PSQL += ["--tuples-only", "--no-align", "--field-separator=\t"]


# --- pure parts -----------------------------------------------------------------------------------
def compose_files(config: str, extra: Sequence[str] = ()) -> list[str]:
    """docker-compose.yml, the configuration's overrides (bench/configs.py), then `extra` (the overload's)."""
    return [*configs.get(config).files, *extra]


def assignments(text: str) -> dict[str, str]:
    """KEY=value lines of an env file (comments and blank lines skipped)."""
    values = {}
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and "=" in stripped:
            key, value = stripped.split("=", 1)
            values[key.strip()] = value
    return values


def env_file_text(example: str, with_grafana: bool) -> str:
    """.env.example with fresh secrets (scripts/generate_env.py's render), the benchmark's ports and
    settings, and the grafana profile only where its image is present."""
    wanted = {**PORTS, **ENV_SETTINGS, "COMPOSE_PROFILES": "grafana" if with_grafana else ""}
    lines, seen = [], set()
    for line in render(example).splitlines():
        key = line.split("=", 1)[0].strip() if "=" in line and not line.lstrip().startswith("#") else None
        if key in wanted:
            line = f"{key}={wanted[key]}"
            seen.add(key)
        lines.append(line)
    lines += [f"{key}={value}" for key, value in wanted.items() if key not in seen]
    return "\n".join(lines) + "\n"


def write_env_file(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    return path


def compose_environment(
    caller: Mapping[str, str], env_file_values: Mapping[str, str], offline_images: Mapping[str, str]
) -> dict[str, str]:
    """The environment docker compose runs in.

    A variable of the caller's shell beats the env file in compose, so every variable the env file
    sets (secrets, ports, profiles) is dropped from it, and so are COMPOSE_* (the Makefile exports
    COMPOSE_PROJECT_NAME=airflow: the project name is passed on the command line instead). Image
    variables stay: that is how OFFLINE=1 and registry mirrors reach compose. offline_images fill in
    the offline kit's images the caller did not export (empty unless OFFLINE).
    """
    environment = {
        key: value
        for key, value in caller.items()
        if not key.startswith("COMPOSE_") and key not in env_file_values
    }
    for key, value in offline_images.items():
        environment.setdefault(key, value)
    return environment


def offline_images(caller: Mapping[str, str], offline: bool) -> dict[str, str]:
    if not (offline or caller.get("OFFLINE") == "1"):
        return {}
    return assignments(OFFLINE_IMAGES_FILE.read_text())


def compose_command(
    config: str, env_file: Path, *args: str, extra_files: Sequence[str] = (), project: str = PROJECT
) -> list[str]:
    command = ["docker", "compose", "--project-name", project, "--project-directory", str(REPO)]
    for name in compose_files(config, extra_files):
        command += ["--file", str(REPO / name)]
    return [*command, "--env-file", str(env_file), *args]


@dataclass(frozen=True)
class ServiceImage:
    service: str
    image: str
    built: bool  # built from ./Dockerfile (compose build), not pulled


def service_images(resolved: Mapping[str, object]) -> list[ServiceImage]:
    """Images of a resolved compose file (`docker compose config --format json`)."""
    services = resolved.get("services") or {}
    assert isinstance(services, Mapping)
    return sorted(
        (ServiceImage(name, str(spec.get("image", "")), "build" in spec) for name, spec in services.items()),
        key=lambda item: item.service,
    )


def container_hostname(container: Container) -> str:
    return str(container.attrs.get("Config", {}).get("Hostname", ""))


# --- the live stack -------------------------------------------------------------------------------
_local = threading.local()


def docker_client() -> docker.DockerClient:
    """One Docker client per thread (the sampler and the memory snapshot run in threads)."""
    client = getattr(_local, "client", None)
    if client is None:
        client = _local.client = docker.from_env(timeout=120)
    return client


@dataclass
class BenchStack:
    config: str
    env_file: Path
    environment: dict[str, str]
    log: Callable[[str], None] = print
    extra_files: tuple[str, ...] = ()  # compose files added mid-session (the overload's override)
    env: dict[str, str] = field(init=False)
    _postgres_id: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.env = assignments(self.env_file.read_text())

    # --- compose ----------------------------------------------------------------------------------
    def compose(self, *args: str, timeout: float = 900, check: bool = True) -> str:
        command = compose_command(self.config, self.env_file, *args, extra_files=self.extra_files)
        try:
            result = subprocess.run(
                command,
                cwd=REPO,
                env=self.environment,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise BenchError(f"docker compose {' '.join(args)} did not finish in {timeout:.0f} s") from error
        if check and result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
            raise BenchError(f"docker compose {' '.join(args)} failed (exit {result.returncode}):\n{tail}")
        return result.stdout

    def resolved(self) -> dict:
        return json.loads(self.compose("config", "--format", "json", timeout=120))

    def build(self) -> None:
        self.compose("build", timeout=3600)

    def pull_missing(self) -> None:
        self.compose("pull", "--ignore-buildable", "--ignore-pull-failures", "--quiet", timeout=3600)

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

    def scale_workers(self, count: int, timeout: float) -> float:
        took = self._up_and_wait(timeout, "--no-recreate", "--scale", f"airflow-worker={count}")
        running = len(self.containers("airflow-worker"))
        if running != count:
            raise BenchError(f"asked for {count} workers, {running} are running")
        return took

    def reconfigure(self, workers: int, extra_files: Sequence[str], timeout: float) -> float:
        """Add compose files and `up` again with `workers` workers: compose recreates the services whose
        configuration changed (and starts any that were stopped, like a killed scheduler)."""
        self.extra_files = tuple(extra_files)
        took = self._up_and_wait(timeout, "--scale", f"airflow-worker={workers}")
        running = len(self.containers("airflow-worker"))
        if running != workers:
            raise BenchError(f"asked for {workers} workers, {running} are running")
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
        except BenchError as error:
            self.log(f"teardown problem: {error}")

    def diagnostics(self) -> str:
        """`ps` and the last log lines of every service, for the failure log."""
        parts = []
        for args in (("ps", "--all"), ("logs", "--no-color", "--timestamps", "--tail=80")):
            try:
                parts.append(self.compose(*args, timeout=120, check=False))
            except BenchError as error:
                parts.append(str(error))
        return "\n".join(parts)

    # --- containers -------------------------------------------------------------------------------
    def containers(self, service: str | None = None) -> list[Container]:
        labels = [f"com.docker.compose.project={PROJECT}"]
        if service:
            labels.append(f"com.docker.compose.service={service}")
        found = docker_client().containers.list(filters={"label": labels})
        return sorted(
            found,
            key=lambda c: (
                c.labels.get("com.docker.compose.service", ""),
                int(c.labels.get("com.docker.compose.container-number", "0")),
            ),
        )

    def container(self, service: str) -> Container:
        found = self.containers(service)
        if not found:
            raise BenchError(f"no running container for service {service}")
        return found[0]

    def kill(self, container: Container) -> None:
        container.kill(signal="SIGKILL")

    def url(self, port_key: str) -> str:
        return f"http://127.0.0.1:{self.env[port_key]}"

    # --- measurements -----------------------------------------------------------------------------
    def sql(self, query: str) -> list[list[str]]:
        """Run SQL straight on Postgres (not through PgBouncer) as airflow; rows of strings, NULL = ''.
        Safe to call from several threads (the connection sampler runs in one)."""
        if self._postgres_id is None:
            self._postgres_id = str(self.container("postgres").id)
        api = docker_client().api
        exec_id = api.exec_create(
            self._postgres_id,
            [*PSQL, "--command", query],
            environment={"PGPASSWORD": self.env["POSTGRES_PASSWORD"]},
        )["Id"]
        stdout, stderr = api.exec_start(exec_id, demux=True)
        exit_code = api.exec_inspect(exec_id).get("ExitCode")
        text = (stdout or b"").decode(errors="replace")
        if exit_code != 0:
            problem = (stderr or b"").decode(errors="replace").strip() or text.strip()
            raise BenchError(f"psql exited {exit_code}: {problem[:500]}\nquery: {query}")
        return [line.split("\t") for line in text.splitlines() if line]

    def stats(self) -> list[tuple[str, str, float, dict]]:
        """One `docker stats` sample of each running long-lived container, read in parallel:
        (container id, service, Unix time of the reading, the stats document)."""
        targets = [
            (str(c.id), c.labels.get("com.docker.compose.service", c.name))
            for c in self.containers()
            if c.labels.get("com.docker.compose.service") not in ONE_SHOT
        ]
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
