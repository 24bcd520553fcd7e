"""Remote workers, as rendered by `docker compose config` (docs/remote-workers.md):
docker-compose.worker.yml is a worker host's whole project: one scalable airflow-worker that is the main
file's worker except for what must differ (its addresses and statsd point at STACK_HOST and the published
ports, its tasks record the hostname of the host's log server, its queue comes from WORKER_QUEUE, no
depends_on, nothing published), and one worker-log-server that publishes the host's log volume, read-only,
on WORKER_ADVERTISE_ADDRESS; it needs only the six secrets a worker uses, never the admin, Flower or Grafana
passwords. docker-compose.publish-for-workers.yml publishes exactly Redis and PgBouncer on
WORKER_BIND_ADDRESS, adds statsd-relay there (UDP, forwarding to statsd-exporter) and changes nothing else."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from scripts.generate_env import render
from tests.unit.compose import REPO, SECRETS, WORKER_SECRETS, compose_config, resolved

WORKER_FILE = REPO / "docker-compose.worker.yml"
PUBLISH_FILE = REPO / "docker-compose.publish-for-workers.yml"
PROBE_DAG = REPO / "tests" / "integration" / "dags" / "remote_queue_probe.py"

NOT_ON_WORKER_HOSTS = sorted(set(SECRETS) - set(WORKER_SECRETS))
STACK_HOST = "10.8.0.1"
WORKER_BIND_ADDRESS = "10.8.0.1"
WORKER_ADVERTISE_ADDRESS = "10.8.0.2"
HOSTNAME_CALLABLE = "stack_patterns.worker_address.advertised_hostname"
# Each address a worker uses: the main file's host:port, and the variable of its published port.
ADDRESSES = {
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": ("pgbouncer:6432", "PGBOUNCER_PUBLISHED_PORT"),
    "AIRFLOW__CELERY__RESULT_BACKEND": ("pgbouncer:6432", "PGBOUNCER_PUBLISHED_PORT"),
    "AIRFLOW__CELERY__BROKER_URL": ("redis:6379", "REDIS_PUBLISHED_PORT"),
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": ("airflow-apiserver:8080", "AIRFLOW_API_PORT"),
    "AIRFLOW__API__BASE_URL": ("127.0.0.1:8080", "AIRFLOW_API_PORT"),
    "AIRFLOW_CONN_DEMO_DB": ("pgbouncer:6432", "PGBOUNCER_PUBLISHED_PORT"),
}
DEFAULT_PORTS = {
    "PGBOUNCER_PUBLISHED_PORT": 6432,
    "REDIS_PUBLISHED_PORT": 6379,
    "AIRFLOW_API_PORT": 8080,
    "STATSD_PUBLISHED_PORT": 9125,
    "WORKER_LOG_PUBLISHED_PORT": 8793,
}
CHANGED_PORTS = {
    "PGBOUNCER_PUBLISHED_PORT": "16432",
    "REDIS_PUBLISHED_PORT": "16379",
    "AIRFLOW_API_PORT": "18080",
    "STATSD_PUBLISHED_PORT": "19125",
    "WORKER_LOG_PUBLISHED_PORT": "18793",
}
# The main file's statsd host, a service name there, is the main host itself here.
STATSD_HOST = "AIRFLOW__METRICS__STATSD_HOST"
WORKER_ONLY_ENV = {
    "AIRFLOW__METRICS__STATSD_PORT": "9125",
    "AIRFLOW__OPERATORS__DEFAULT_QUEUE": "default",
    "AIRFLOW__CORE__HOSTNAME_CALLABLE": HOSTNAME_CALLABLE,
    "WORKER_ADVERTISE_ADDRESS": WORKER_ADVERTISE_ADDRESS,
    "WORKER_LOG_PUBLISHED_PORT": "8793",
}
MAIN_ONLY_ENV: set[str] = set()
SAME_KEYS = [
    "image",
    "mem_limit",
    "memswap_limit",
    "build",
    "entrypoint",
    "command",
    "healthcheck",
    "stop_signal",
    "stop_grace_period",
    "restart",
    "volumes",
]


def worker_compose_config(env_file: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`docker compose config` of the worker file alone, as for the main one."""
    return compose_config(env_file, *extra, compose_file=WORKER_FILE)


def write_env(path: Path, values: dict[str, str]) -> Path:
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    return path


def services_with(worker_env: dict[str, str], extra: dict[str, str], tmp_path: Path) -> dict[str, Any]:
    """The worker file's services, resolved with the worker host's .env plus EXTRA."""
    result = worker_compose_config(write_env(tmp_path / ".env", {**worker_env, **extra}))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["services"]


@pytest.fixture(scope="module")
def main_env() -> dict[str, str]:
    """The main host's .env, as `make env` generates it."""
    text = render((REPO / ".env.example").read_text())
    return dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#") and "=" in line
    )


@pytest.fixture(scope="module")
def worker_env(main_env: dict[str, str]) -> dict[str, str]:
    """A worker host's .env as docs/remote-workers.md says to write it: six secrets, STACK_HOST and
    WORKER_ADVERTISE_ADDRESS."""
    return {
        **{key: main_env[key] for key in WORKER_SECRETS},
        "STACK_HOST": STACK_HOST,
        "WORKER_ADVERTISE_ADDRESS": WORKER_ADVERTISE_ADDRESS,
    }


@pytest.fixture(scope="module")
def worker(worker_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict:
    env_file = write_env(tmp_path_factory.mktemp("worker") / ".env", worker_env)
    result = worker_compose_config(env_file)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def main_file_worker(main_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict:
    env_file = write_env(tmp_path_factory.mktemp("main") / ".env", main_env)
    return resolved(env_file)["services"]["airflow-worker"]


# --- docker-compose.worker.yml ----------------------------------------------------------------------------
def test_worker_file_is_one_scalable_worker_and_its_hosts_log_server(worker: dict) -> None:
    assert set(worker["services"]) == {"airflow-worker", "worker-log-server"}
    service = worker["services"]["airflow-worker"]
    assert "container_name" not in service, "a container_name forbids --scale"
    assert "hostname" not in service, "one hostname for every replica would give them one Celery node name"
    assert worker["name"] == "airflow-remote-worker", "its own project: never the main stack's workers"


def test_worker_host_needs_no_admin_flower_or_grafana_password(worker: dict) -> None:
    # The fixture rendered it from a .env holding only the six worker secrets and the two addresses.
    text = WORKER_FILE.read_text()
    for secret in NOT_ON_WORKER_HOSTS:
        assert secret not in text, f"docker-compose.worker.yml mentions {secret}"


@pytest.mark.parametrize("address", ["STACK_HOST", "WORKER_ADVERTISE_ADDRESS"])
def test_both_addresses_are_required_and_named(
    address: str, worker_env: dict[str, str], tmp_path: Path
) -> None:
    without = {key: value for key, value in worker_env.items() if key != address}
    for name, values in {"unset": without, "empty": {**without, address: ""}}.items():
        result = worker_compose_config(write_env(tmp_path / f"{name}.env", values))
        assert result.returncode != 0, f"compose accepted a {name} {address}"
        assert address in result.stderr, result.stderr


@pytest.mark.parametrize("secret", WORKER_SECRETS)
def test_each_worker_secret_is_required_and_named(
    secret: str, worker_env: dict[str, str], tmp_path: Path
) -> None:
    result = worker_compose_config(write_env(tmp_path / ".env", {**worker_env, secret: ""}))
    assert result.returncode != 0, f"compose accepted an empty {secret}"
    assert secret in result.stderr, result.stderr


@pytest.mark.parametrize("ports", [{}, CHANGED_PORTS], ids=["default-ports", "changed-ports"])
def test_addresses_point_at_stack_host_and_the_published_ports(
    ports: dict[str, str], worker_env: dict[str, str], tmp_path: Path
) -> None:
    environment = services_with(worker_env, ports, tmp_path)["airflow-worker"]["environment"]
    for key, (_, port_variable) in ADDRESSES.items():
        url = urlsplit(environment[key])
        expected_port = int(ports.get(port_variable, DEFAULT_PORTS[port_variable]))
        assert (url.hostname, url.port) == (STACK_HOST, expected_port), f"{key} -> {url.hostname}:{url.port}"
    statsd_port = int(ports.get("STATSD_PUBLISHED_PORT", DEFAULT_PORTS["STATSD_PUBLISHED_PORT"]))
    assert (environment[STATSD_HOST], int(environment["AIRFLOW__METRICS__STATSD_PORT"])) == (
        STACK_HOST,
        statsd_port,
    )


@pytest.mark.parametrize("ports", [{}, CHANGED_PORTS], ids=["default-ports", "changed-ports"])
def test_tasks_record_the_hostname_of_the_log_server_published_on_the_advertised_address(
    ports: dict[str, str], worker_env: dict[str, str], tmp_path: Path
) -> None:
    services = services_with(worker_env, ports, tmp_path)
    log_port = int(ports.get("WORKER_LOG_PUBLISHED_PORT", DEFAULT_PORTS["WORKER_LOG_PUBLISHED_PORT"]))
    for name in ("airflow-worker", "worker-log-server"):
        environment = services[name]["environment"]
        assert environment["WORKER_ADVERTISE_ADDRESS"] == WORKER_ADVERTISE_ADDRESS, name
        assert int(environment["WORKER_LOG_PUBLISHED_PORT"]) == log_port, name
    assert services["airflow-worker"]["environment"]["AIRFLOW__CORE__HOSTNAME_CALLABLE"] == HOSTNAME_CALLABLE
    (port,) = services["worker-log-server"]["ports"]
    assert port["host_ip"] == WORKER_ADVERTISE_ADDRESS, port
    assert int(port["published"]) == log_port, port
    # Airflow's [logging] worker_log_server_port, at its default in config/airflow.cfg.
    assert port["target"] == 8793, port
    assert port.get("protocol", "tcp") == "tcp", port


def test_worker_is_the_main_files_worker_but_for_its_addresses(worker: dict, main_file_worker: dict) -> None:
    assert main_file_worker["environment"][STATSD_HOST] == "statsd-exporter"
    service = worker["services"]["airflow-worker"]
    for key in SAME_KEYS:
        assert service.get(key) == main_file_worker.get(key), f"{key} differs from docker-compose.yml"
    ours, theirs = service["environment"], main_file_worker["environment"]
    assert set(ours) - set(theirs) == set(WORKER_ONLY_ENV), "a variable the main file's worker lacks"
    assert set(theirs) - set(ours) == MAIN_ONLY_ENV, "a variable of the main file's worker is missing"
    for key, value in theirs.items():
        if key in MAIN_ONLY_ENV:
            continue
        if key in ADDRESSES:
            main_address, port_variable = ADDRESSES[key]
            value = value.replace(main_address, f"{STACK_HOST}:{DEFAULT_PORTS[port_variable]}", 1)
        elif key == STATSD_HOST:
            value = STACK_HOST
        assert ours[key] == value, f"{key} differs from docker-compose.yml beyond its address"
    for key, value in WORKER_ONLY_ENV.items():
        assert ours[key] == value, key


def test_worker_depends_on_nothing_and_publishes_nothing(worker: dict) -> None:
    service = worker["services"]["airflow-worker"]
    assert not service.get("depends_on"), "its dependencies run on the main host"
    assert not service.get("ports"), f"publishes {service.get('ports')}"
    assert not service.get("expose")


def test_log_server_serves_the_workers_log_volume_read_only_with_the_shared_secret_only(
    worker: dict, worker_env: dict[str, str]
) -> None:
    services = worker["services"]
    server, airflow_worker = services["worker-log-server"], services["airflow-worker"]
    for key in ("image", "build"):
        assert server[key] == airflow_worker[key], f"worker-log-server's {key} is not the worker's"
    assert server["command"] == ["python", "-m", "stack_patterns.worker_address"]
    assert "deploy" not in server, "one log server per worker host"
    assert server["environment"]["AIRFLOW__API__SECRET_KEY"] == worker_env["AIRFLOW_API_SECRET_KEY"]
    # It signs nothing and reaches nothing: no other secret, no address of the main host.
    assert set(server["environment"]) == {
        "AIRFLOW_CONFIG",
        "AIRFLOW__API__SECRET_KEY",
        "PYTHONPATH",
        "WORKER_ADVERTISE_ADDRESS",
        "WORKER_LOG_PUBLISHED_PORT",
    }
    logs = {v["target"]: v for v in server["volumes"]}["/opt/airflow/logs"]
    worker_logs = {v["target"]: v for v in airflow_worker["volumes"]}["/opt/airflow/logs"]
    assert (
        (logs["type"], logs["source"])
        == (worker_logs["type"], worker_logs["source"])
        == ("volume", "airflow-logs")
    )
    assert logs.get("read_only") is True, logs
    assert all(v.get("read_only") for v in server["volumes"]), server["volumes"]
    assert server["environment"]["PYTHONPATH"] == "/opt/airflow/plugins"
    assert "/opt/airflow/plugins" in {v["target"] for v in server["volumes"]}


def test_worker_queue_is_chosen_by_worker_queue(worker_env: dict[str, str], tmp_path: Path) -> None:
    result = worker_compose_config(write_env(tmp_path / ".env", {**worker_env, "WORKER_QUEUE": "gpu"}))
    assert result.returncode == 0, result.stderr
    environment = json.loads(result.stdout)["services"]["airflow-worker"]["environment"]
    assert environment["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] == "gpu"


def test_every_variable_of_the_remote_worker_files_is_documented() -> None:
    documented = set(re.findall(r"^#?([A-Z][A-Z0-9_]*)=", (REPO / ".env.example").read_text(), re.M))
    for path in (WORKER_FILE, PUBLISH_FILE):
        used = set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", path.read_text()))
        assert used <= documented, f"{path.name}: not in .env.example: {sorted(used - documented)}"


# --- docker-compose.publish-for-workers.yml ---------------------------------------------------------------
def published(main_env: dict[str, str], tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env_file = write_env(tmp_path / ".env", {**main_env, **extra})
    return compose_config(env_file, "--file", str(PUBLISH_FILE), "--profile", "grafana")


def published_services(main_env: dict[str, str], tmp_path: Path, **ports: str) -> dict[str, Any]:
    """The main file with the publish override, resolved with WORKER_BIND_ADDRESS set."""
    result = published(main_env, tmp_path, WORKER_BIND_ADDRESS=WORKER_BIND_ADDRESS, **ports)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["services"]


PUBLISHED_BY_OVERRIDE = {
    # service: (target port, variable of the published port, protocol)
    "redis": (6379, "REDIS_PUBLISHED_PORT", "tcp"),
    "pgbouncer": (6432, "PGBOUNCER_PUBLISHED_PORT", "tcp"),
    "statsd-relay": (9125, "STATSD_PUBLISHED_PORT", "udp"),
}
ADDED_BY_OVERRIDE = {"statsd-relay"}


@pytest.mark.parametrize(
    "ports",
    [
        {},
        {
            "REDIS_PUBLISHED_PORT": "16379",
            "PGBOUNCER_PUBLISHED_PORT": "16432",
            "STATSD_PUBLISHED_PORT": "19125",
        },
    ],
    ids=["default-ports", "changed-ports"],
)
def test_publish_override_publishes_exactly_redis_pgbouncer_and_statsd_on_worker_bind_address(
    ports: dict[str, str], main_env: dict[str, str], tmp_path: Path
) -> None:
    services = published_services(main_env, tmp_path, **ports)
    base = resolved(write_env(tmp_path / "main.env", main_env))["services"]
    for name, service in services.items():
        if name not in PUBLISHED_BY_OVERRIDE:
            assert service.get("ports") == base[name].get("ports"), f"{name}'s ports changed"
    for name, (target, variable, protocol) in PUBLISHED_BY_OVERRIDE.items():
        (port,) = services[name]["ports"]
        assert port["host_ip"] == WORKER_BIND_ADDRESS, port
        assert port["target"] == target, port
        assert int(port["published"]) == int(ports.get(variable, target)), port
        assert port.get("protocol", "tcp") == protocol, port


def test_publish_override_changes_nothing_but_those_ports_and_adds_only_statsd_relay(
    main_env: dict[str, str], tmp_path: Path
) -> None:
    merged = published_services(main_env, tmp_path)
    base = resolved(write_env(tmp_path / "main.env", main_env))["services"]
    assert set(merged) - set(base) == ADDED_BY_OVERRIDE
    for name in ADDED_BY_OVERRIDE:
        merged.pop(name)
    for name in ("redis", "pgbouncer"):
        merged[name].pop("ports")
    # statsd-exporter above all: recreating it would move it to a new address that the main host's
    # Airflow processes, which resolve the statsd host once, would not follow.
    assert merged == base


def test_statsd_relay_forwards_every_line_to_statsd_exporter(
    main_env: dict[str, str], tmp_path: Path
) -> None:
    services = published_services(main_env, tmp_path)
    relay, exporter = services["statsd-relay"], services["statsd-exporter"]
    assert relay["image"] == exporter["image"], "the image the stack already has, offline too"
    assert "--statsd.relay.address=statsd-exporter:9125" in relay["command"]
    assert "--statsd.listen-udp=:9125" in relay["command"]
    assert "--statsd.listen-udp=:9125" in exporter["command"], "the relay's target port"
    assert "--statsd.listen-tcp=" in relay["command"], "UDP only: TCP is not published"
    # It resolves statsd-exporter once, at start: compose restarts it when statsd-exporter is recreated.
    assert relay["depends_on"]["statsd-exporter"]["restart"] is True
    assert relay["depends_on"]["statsd-exporter"]["condition"] == "service_healthy"
    assert relay["healthcheck"]["test"] == exporter["healthcheck"]["test"]
    assert relay["restart"] == "unless-stopped"


def test_publish_override_refuses_without_worker_bind_address(
    main_env: dict[str, str], tmp_path: Path
) -> None:
    for name, extra in {"unset": {}, "empty": {"WORKER_BIND_ADDRESS": ""}}.items():
        result = published(main_env, tmp_path, **extra)
        assert result.returncode != 0, f"compose published with a {name} WORKER_BIND_ADDRESS"
        assert "WORKER_BIND_ADDRESS" in result.stderr, result.stderr


# --- the integration test's DAG ---------------------------------------------------------------------------
def test_the_remote_worker_tests_dag_sends_every_task_to_the_remote_queue() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(PROBE_DAG))
    assert not bag.import_errors, bag.import_errors
    (dag,) = bag.dags.values()
    assert {task.queue for task in dag.tasks} == {"remote"}
