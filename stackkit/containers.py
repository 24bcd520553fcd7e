"""The containers of a compose project, through the Docker SDK: listed by service, their health, and
commands run in them."""

from __future__ import annotations

import socket
import threading

import docker
from docker.models.containers import Container

from stackkit.errors import StackError

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
NUMBER_LABEL = "com.docker.compose.container-number"

_local = threading.local()


def docker_client() -> docker.DockerClient:
    """One Docker client per thread (the benchmark samples from threads)."""
    client = getattr(_local, "client", None)
    if client is None:
        client = _local.client = docker.from_env(timeout=120)
    return client


def service_of(container: Container) -> str:
    return str(container.labels.get(SERVICE_LABEL, container.name))


def project_containers(
    project: str, service: str | None = None, include_stopped: bool = False
) -> list[Container]:
    """PROJECT's containers (of SERVICE only, if given), by service, then by their number."""
    labels = [f"{PROJECT_LABEL}={project}"]
    if service:
        labels.append(f"{SERVICE_LABEL}={service}")
    found = docker_client().containers.list(all=include_stopped, filters={"label": labels})
    return sorted(found, key=lambda c: (service_of(c), int(c.labels.get(NUMBER_LABEL, "0"))))


def health(container: Container) -> str:
    """Docker's health status now (healthy, unhealthy, starting), "none" without a health check."""
    container.reload()
    return str(container.attrs["State"].get("Health", {}).get("Status", "none"))


def exec_in(container: Container, command: list[str], environment: dict[str, str] | None = None) -> str:
    """Run COMMAND in CONTAINER; its output (stdout and stderr), or StackError on a non-zero exit."""
    exit_code, output = container.exec_run(command, environment=environment)
    text = output.decode(errors="replace")
    if exit_code != 0:
        raise StackError(f"{container.name}: {' '.join(command)} exited {exit_code}: {text}")
    return text


def exec_by_id(
    container_id: str, command: list[str], environment: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """Run COMMAND in a container by id, through the low-level API (safe from any thread):
    exit code (-1 where Docker reports none), stdout, stderr."""
    api = docker_client().api
    exec_id = api.exec_create(container_id, command, environment=environment)["Id"]
    stdout, stderr = api.exec_start(exec_id, demux=True)
    exit_code = api.exec_inspect(exec_id).get("ExitCode")
    out, err = ((data or b"").decode(errors="replace") for data in (stdout, stderr))
    return (-1 if exit_code is None else int(exit_code)), out, err


# (container id, address) -> whether the host reached it: asked once per container.
_reachable: dict[tuple[str, str], bool] = {}


def host_reachable_address(container: Container, port: int) -> str | None:
    """The container's address on one of its networks that this host connects to on PORT, or None
    (Docker Desktop's VM, for one, keeps container addresses off the host)."""
    networks = container.attrs["NetworkSettings"]["Networks"] or {}
    for address in sorted(n["IPAddress"] for n in networks.values() if n.get("IPAddress")):
        key = (str(container.id), address)
        if key not in _reachable:
            try:
                socket.create_connection((address, port), timeout=1).close()
                _reachable[key] = True
            except OSError:
                _reachable[key] = False
        if _reachable[key]:
            return f"{address}:{port}"
    return None
