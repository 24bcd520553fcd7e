"""Workers beyond one machine (docs/remote-workers.md): a second compose project, made from
docker-compose.worker.yml on a network of its own, joins the session's stack only through the ports the
main stack publishes with docker-compose.publish-for-workers.yml, runs the tasks routed to its queue, and
is first-class: their logs read through the main stack's REST API, their metrics reach its Prometheus.

One machine stands in for two. The session stack's redis, pgbouncer and airflow-apiserver are recreated
(same volumes, same secrets) with the publish override, which also adds statsd-relay: Redis, PgBouncer and
statsd-relay (UDP) on WORKER_BIND_ADDRESS, the api-server on HOST_BIND_ADDRESS, both set to the address of
Docker's default bridge (docker0, read at run time), an address of this host that containers of any network
reach. The remote project's .env holds only what docs/remote-workers.md tells a worker host to hold: the six
worker secrets, STACK_HOST (that address), the published ports, WORKER_QUEUE=remote, and
WORKER_ADVERTISE_ADDRESS, the "worker host's" own address, here the same one, on which its worker-log-server
publishes LOG_PORT for the api-server. Its two workers consume only the Celery queue `remote`, and the test
DAG (tests/integration/dags/remote_queue_probe.py, copied into dags/ meanwhile) sends every task there, so
the metadata DB's task_instance.hostname says where each ran.
A container reaches a port published on a host address through Docker's userland proxy (the daemon
default; not tried with `userland-proxy: false`) and the host's INPUT rules, which must accept it.
It runs last but for test_99 (checks of the checkout, then the stop): at the end the remote project is
removed with its volume and statsd-relay is removed, and the three services stay as the publish override
made them until the session's teardown. Recreating them as they were cost ~25 s, for no test after.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from docker.models.containers import Container

import stackkit.compose
from stackkit import REPO, envfile
from stackkit.airflow_api import AirflowApi
from stackkit.containers import docker_client, project_containers
from stackkit.sql import bind
from tests.integration.testbed import COMPOSE_FILES, PROJECT, IntegrationStack
from tests.unit.compose import WORKER_SECRETS

REMOTE_PROJECT = "airflow-remote-worker-test"
REMOTE_NETWORK = f"{REMOTE_PROJECT}_default"
REMOTE_WORKERS = 2
QUEUE = "remote"
DAG = "remote_queue_probe"
DAG_SOURCE = REPO / "tests" / "integration" / "dags" / "remote_queue_probe.py"
DAG_COPY_NAME = "zz_remote_queue_probe_by_tests.py"
# items, square x3 (mapped), demo_db_user, check
EXPECTED_TIS = 6
PUBLISHED_PORTS = {
    "REDIS_PUBLISHED_PORT": "16379",
    "PGBOUNCER_PUBLISHED_PORT": "16432",
    "STATSD_PUBLISHED_PORT": "19125",
}
# The remote worker host's log server, published on WORKER_ADVERTISE_ADDRESS.
LOG_PORT = "18793"
REPUBLISHED = ["redis", "pgbouncer", "airflow-apiserver"]
# Services only the publish override has.
ADDED = ["statsd-relay"]
MAIN_FILES = COMPOSE_FILES
PUBLISH_FILES = [*MAIN_FILES, REPO / "docker-compose.publish-for-workers.yml"]
# The worker host's own file, then the tests' override (short health-check intervals).
WORKER_FILES = [REPO / "docker-compose.worker.yml", Path(__file__).parent / "compose.worker.test.yml"]


def compose(
    project: str,
    files: list[Path],
    env_file: Path,
    *args: str,
    environment: dict[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """docker compose on one project, named explicitly: the session exports COMPOSE_PROJECT_NAME,
    so the caller's COMPOSE_* variables are left out of compose's environment."""
    env = {**stackkit.compose.environment(os.environ, {}), **(environment or {})}
    base = stackkit.compose.command(project, files, env_file)
    return stackkit.compose.run(base, *args, env=env, check=check)


def write_env(path: Path, values: dict[str, str]) -> Path:
    return envfile.write_private(path, envfile.render(values))


def interface_ipv4(name: str) -> str:
    """The IPv4 address of this host's network interface NAME (SIOCGIFADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("256s", name.encode()[:15])
        return socket.inet_ntoa(fcntl.ioctl(sock.fileno(), 0x8915, request)[20:24])


def host_address_for_containers(stack: IntegrationStack) -> str:
    """The default bridge interface's own IPv4 address: an address of this host that any container
    reaches. Read from the interface, since a stock engine may leave IPAM's Gateway field empty."""
    bridge = docker_client().networks.get("bridge").attrs
    name = bridge.get("Options", {}).get("com.docker.network.bridge.name", "docker0")
    try:
        return interface_ipv4(name)
    except OSError as error:
        raise AssertionError(
            f"Docker's default bridge interface {name} has no IPv4 address: {error}"
        ) from error


def run_in(container: Container, command: list[str], environment: dict[str, str] | None = None) -> str:
    exit_code, output = container.exec_run(command, environment=environment)
    text = output.decode(errors="replace")
    assert exit_code == 0, f"{container.name}: {' '.join(command)} exited {exit_code}: {text}"
    return text


@dataclass
class Remote:
    address: str
    api: AirflowApi
    containers: list[Container]
    log_server: Container

    @property
    def hostnames(self) -> set[str]:
        return {c.attrs["Config"]["Hostname"] for c in self.containers}

    @property
    def log_url(self) -> str:
        """Where the api-server must fetch the remote tasks' logs: the published log port."""
        return f"http://{self.address}:{LOG_PORT}/log/"


@pytest.fixture(scope="module")
def remote(stack: IntegrationStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    address = host_address_for_containers(stack)
    workdir = tmp_path_factory.mktemp("remote-worker")
    main_env = write_env(
        workdir / "main.env",
        {**stack.env, "HOST_BIND_ADDRESS": address, "WORKER_BIND_ADDRESS": address, **PUBLISHED_PORTS},
    )
    # The image the session's workers run: a worker host builds the same one from the same checkout.
    image = stack.container("airflow-worker").attrs["Config"]["Image"]
    worker_env = write_env(
        workdir / "worker.env",
        {
            **{key: stack.env[key] for key in WORKER_SECRETS},
            "STACK_HOST": address,
            "AIRFLOW_API_PORT": stack.env["AIRFLOW_API_PORT"],
            **PUBLISHED_PORTS,
            "WORKER_QUEUE": QUEUE,
            # The "worker host" is this machine too: the api-server reaches the same bridge address.
            "WORKER_ADVERTISE_ADDRESS": address,
            "WORKER_LOG_PUBLISHED_PORT": LOG_PORT,
            "AIRFLOW_IMAGE": image,
            "AIRFLOW_WORKER_STOP_GRACE_PERIOD": "60s",
            "DAGS_DIR": str(stack.dags_dir),
        },
    )
    pinned = {"AIRFLOW_IMAGE": image}
    compose(REMOTE_PROJECT, WORKER_FILES, worker_env, "down", "--volumes", "--remove-orphans", check=False)
    dag_copy = stack.dags_dir / DAG_COPY_NAME
    shutil.copyfile(DAG_SOURCE, dag_copy)
    dag_copy.chmod(0o644)
    try:
        # Recreated without waiting: the remote workers need only Redis, PgBouncer and statsd-relay, up within
        # a second, and they boot while the api-server does (~15 s). The same `up` with --wait follows.
        def republish(*options: str) -> None:
            services = [*REPUBLISHED, *ADDED]
            compose(PROJECT, PUBLISH_FILES, main_env, "up", "--detach", "--no-deps", *options, *services)

        republish()
        try:
            compose(
                REMOTE_PROJECT,
                WORKER_FILES,
                worker_env,
                "up",
                "--detach",
                "--wait",
                "--wait-timeout",
                "600",
                "--no-build",
                "--pull",
                "never",
                "--scale",
                f"airflow-worker={REMOTE_WORKERS}",
                environment=pinned,
            )
        except RuntimeError:
            logs = compose(
                REMOTE_PROJECT, WORKER_FILES, worker_env, "logs", "--no-color", "--tail=80", check=False
            )
            print(logs.stdout, logs.stderr)
            raise
        republish("--wait")  # the same configuration: nothing is recreated, only waited for
        containers = project_containers(REMOTE_PROJECT, "airflow-worker")
        (log_server,) = project_containers(REMOTE_PROJECT, "worker-log-server")
        api = AirflowApi(
            f"http://{address}:{stack.env['AIRFLOW_API_PORT']}",
            stack.env["AIRFLOW_ADMIN_USER"],
            stack.env["AIRFLOW_ADMIN_PASSWORD"],
        )
        yield Remote(address=address, api=api, containers=containers, log_server=log_server)
    finally:
        compose(
            REMOTE_PROJECT,
            WORKER_FILES,
            worker_env,
            "down",
            "--volumes",
            "--remove-orphans",
            "--timeout",
            "60",
            environment=pinned,
            check=False,
        )
        dag_copy.unlink(missing_ok=True)
        # The session's `down` uses the main files, which do not have it.
        removed = compose(PROJECT, PUBLISH_FILES, main_env, "rm", "--stop", "--force", *ADDED, check=False)
        if removed.returncode != 0:
            raise RuntimeError(f"could not remove {ADDED}:\n{removed.stdout}\n{removed.stderr}")


@pytest.fixture(scope="module")
def remote_run(stack: IntegrationStack, remote: Remote) -> dict:
    remote.api.wait_for_dag(DAG, timeout=300)
    run_id = remote.api.trigger(DAG)
    state = remote.api.wait_for_run(DAG, run_id, timeout=600)
    rows = stack.sql(
        bind(
            "SELECT task_id, map_index, state, queue, hostname FROM task_instance "
            "WHERE dag_id = {dag} AND run_id = {run} ORDER BY task_id, map_index",
            dag=DAG,
            run=run_id,
        )
    )
    return {"run_id": run_id, "state": state, "rows": rows}


def test_remote_workers_are_on_their_own_network_only(stack: IntegrationStack, remote: Remote) -> None:
    assert len(remote.containers) == REMOTE_WORKERS
    main_networks = {
        name for c in stack.containers("airflow-scheduler") for name in c.attrs["NetworkSettings"]["Networks"]
    }
    assert main_networks, "the session stack's schedulers are on no network"
    remote_side = [*remote.containers, remote.log_server]
    for container in remote_side:
        networks = set(container.attrs["NetworkSettings"]["Networks"])
        assert networks == {REMOTE_NETWORK}, f"{container.name} is on {sorted(networks)}"
        assert not networks & main_networks
    attached = {c.name for c in docker_client().networks.get(REMOTE_NETWORK).containers}
    assert attached == {c.name for c in remote_side}, f"{REMOTE_NETWORK} also has {sorted(attached)}"
    # The main stack's service names mean nothing there: the published ports are the only way in.
    probe = (
        "import socket\n"
        "for name in ('redis', 'pgbouncer', 'postgres', 'airflow-apiserver'):\n"
        "    try:\n"
        "        socket.getaddrinfo(name, None)\n"
        "        print(name, 'RESOLVED')\n"
        "    except OSError:\n"
        "        print(name, 'unknown')\n"
    )
    out = run_in(remote.containers[0], ["python", "-c", probe])
    assert "RESOLVED" not in out, out


def test_published_broker_and_pool_refuse_clients_without_the_password(
    stack: IntegrationStack, remote: Remote
) -> None:
    """What the remote network sees of the main host is the password-protected doors, nothing open."""
    probe = (
        "import os, socket\n"
        "import psycopg2\n"
        "s = socket.create_connection((os.environ['HOST'], int(os.environ['REDIS_PORT'])), timeout=10)\n"
        "s.sendall(b'PING\\r\\n'); print(s.recv(200))\n"
        "s.sendall(b'AUTH not-the-password\\r\\n'); print(s.recv(200))\n"
        "try:\n"
        "    psycopg2.connect(host=os.environ['HOST'], port=os.environ['PGBOUNCER_PORT'], user='airflow',\n"
        "                     password='not-the-password', dbname='airflow', connect_timeout=10)\n"
        "    print('PGBOUNCER ACCEPTED')\n"
        "except psycopg2.OperationalError as error:\n"
        "    print('pgbouncer:', error)\n"
    )
    environment = {
        "HOST": remote.address,
        "REDIS_PORT": PUBLISHED_PORTS["REDIS_PUBLISHED_PORT"],
        "PGBOUNCER_PORT": PUBLISHED_PORTS["PGBOUNCER_PUBLISHED_PORT"],
    }
    out = run_in(remote.containers[0], ["python", "-c", probe], environment=environment)
    assert "NOAUTH" in out, out
    assert "WRONGPASS" in out, out
    assert "PGBOUNCER ACCEPTED" not in out, out
    assert "password authentication failed" in out or "SASL authentication failed" in out, out


def queues_of(workers: dict, name: str) -> set[str]:
    """The queues Flower's /api/workers says a Celery node consumes (empty while it has not answered)."""
    return {q["name"] for q in (workers.get(name) or {}).get("active_queues") or []}


def test_flower_sees_the_remote_workers_on_their_own_queue(stack: IntegrationStack, remote: Remote) -> None:
    auth = (stack.env["FLOWER_USER"], stack.env["FLOWER_PASSWORD"])
    names = {f"celery@{hostname}" for hostname in remote.hostnames}
    deadline = time.monotonic() + 120
    while True:
        workers = requests.get(
            f"{stack.url('FLOWER_PORT')}/api/workers", params={"refresh": "true"}, auth=auth, timeout=60
        ).json()
        if all(queues_of(workers, name) for name in names) or time.monotonic() > deadline:
            break
        time.sleep(5)
    for name in names:
        assert queues_of(workers, name) == {QUEUE}, (
            f"{name}: {queues_of(workers, name)}; flower sees {sorted(workers)}"
        )
    for hostname in {c.attrs["Config"]["Hostname"] for c in stack.containers("airflow-worker")}:
        assert QUEUE not in queues_of(workers, f"celery@{hostname}"), (
            f"main worker {hostname} consumes {QUEUE} too: the test would prove nothing"
        )


def test_tasks_routed_to_the_remote_queue_succeed_on_the_remote_workers(
    stack: IntegrationStack, remote: Remote, remote_run: dict
) -> None:
    rows = remote_run["rows"]
    assert remote_run["state"] == "success", rows
    assert len(rows) == EXPECTED_TIS, rows
    main_hosts = {c.attrs["Config"]["Hostname"] for c in stack.containers("airflow-worker")}
    assert not remote.hostnames & main_hosts
    advertised = f"{remote.address}:{LOG_PORT}/log/#"
    for task_id, map_index, state, queue, hostname in rows:
        where = f"{task_id}[{map_index}]"
        assert state == "success", f"{where}: {state}"
        assert queue == QUEUE, f"{where} went to queue {queue}"
        # stack_patterns.worker_address: the worker host's log server, then the worker container's hostname.
        server, _, container = hostname.partition("#")
        assert f"{server}#" == advertised, f"{where} recorded hostname {hostname}"
        assert container in remote.hostnames, f"{where} ran on {hostname}"


def test_remote_task_logs_are_read_through_the_api_from_the_worker_hosts_log_server(
    stack: IntegrationStack, remote: Remote, remote_run: dict
) -> None:
    """The logs stay on the worker host's volume, and the main host's api-server reads each of them from
    the worker host's published log server, with the line the task printed."""
    find = ["find", "/opt/airflow/logs", "-path", f"*dag_id={DAG}/*", "-name", "*.log"]
    # One log volume per worker host, shared by its replicas and read by its log server.
    found = run_in(remote.containers[0], find)
    assert len(found.split()) == EXPECTED_TIS, found
    assert sorted(run_in(remote.log_server, find).split()) == sorted(found.split())
    assert not stack.exec("airflow-apiserver", find).split(), "a remote task's log is on the main host"
    tis = remote.api.task_instances(DAG, remote_run["run_id"])
    assert len(tis) == EXPECTED_TIS, [ti.task_id for ti in tis]
    logs = {}
    for ti in tis:
        log = remote.api.log(ti)
        where = f"{ti.task_id}[{ti.map_index}]"
        # The handler lists the URL it read, and the fetch's error instead when it read nothing.
        assert remote.log_url in log, f"{where}: not read from {remote.log_url}:\n{log}"
        assert "Could not read served logs" not in log, f"{where}:\n{log}"
        logs[(ti.task_id, ti.map_index)] = log
    # The check task printed "3 squares on <worker containers>; demo_db as demo".
    check = logs[("check", -1)]
    printed = [line for line in check.splitlines() if "squares on" in line and "demo_db as demo" in line]
    assert printed, f"the line check printed is not in its log:\n{check}"
    assert any(hostname in printed[0] for hostname in remote.hostnames), printed


def test_remote_log_server_refuses_unsigned_requests(
    stack: IntegrationStack, remote: Remote, remote_run: dict
) -> None:
    """Published for the api-server, the log server still serves only requests signed with the shared
    [api] secret_key: from the main stack's network, a real log's path without a token is refused."""
    find = ["find", "/opt/airflow/logs", "-path", f"*dag_id={DAG}/*", "-name", "*.log"]
    path = run_in(remote.log_server, find).split()[0].removeprefix("/opt/airflow/logs/")
    status = stack.exec(
        "airflow-apiserver",
        ["curl", "--silent", "--output", "/dev/null", "--write-out", "%{http_code}", remote.log_url + path],
    )
    assert status == "403", f"unsigned GET {remote.log_url}{path} answered {status}"


def test_remote_task_metrics_reach_the_main_stacks_prometheus(
    stack: IntegrationStack, remote: Remote, remote_run: dict
) -> None:
    """Only the remote workers consume the queue `remote`, and only the task runner on the worker emits
    ti.finish (Airflow 3.3.2, task_runner.py): these series came from the worker host, through the
    published statsd-relay, statsd-exporter and Prometheus' scrape."""
    assert remote_run["state"] == "success", remote_run["rows"]
    query = f'sum by (task_id, state) (airflow_ti_finish{{dag_id="{DAG}"}})'
    # One finish per task instance: square is mapped over three items.
    expected = {"items": 1, "square": 3, "demo_db_user": 1, "check": 1}
    deadline = time.monotonic() + 120
    while True:
        result = stack.prometheus.query(query)
        finished = {
            s["metric"]["task_id"]: float(s["value"][1]) for s in result if s["metric"]["state"] == "success"
        }
        if set(finished) >= set(expected) or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert set(finished) >= set(expected), f"airflow_ti_finish of {DAG} in Prometheus: {result}"
    for task_id, count in expected.items():
        assert finished[task_id] >= count, finished
    # The duration histogram too, per task.
    durations = stack.prometheus.wait_for_series(
        f'sum by (task_id) (airflow_task_duration_count{{dag_id="{DAG}", task_id="check"}})', timeout=60
    )
    assert durations, f"no airflow_task_duration of {DAG}.check in Prometheus"
