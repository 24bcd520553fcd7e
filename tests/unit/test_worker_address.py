"""stack_patterns.worker_address, the hostname remote workers record and their log server's command
(docs/remote-workers.md, "Task logs"): Airflow 3.3.2's own code turns the hostname into the URL of the
worker host's published log port, and a log written there is read back through Airflow's signed fetch,
end to end on this machine, with the port the api-server would use left at its default."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from stack_patterns import worker_address

from tests.unit.compose import REPO

REL_PATH = "dag_id=d/run_id=manual__2026-01-01T00:00:00+00:00/task_id=t/map_index=0/attempt=1.log"


@pytest.fixture
def advertise(monkeypatch: pytest.MonkeyPatch) -> object:
    def set_env(address: str | None, port: str | None = None) -> None:
        for name, value in ((worker_address.ADDRESS_ENV, address), (worker_address.PORT_ENV, port)):
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)

    return set_env


@pytest.mark.parametrize(
    ("address", "port", "expected"),
    [
        ("10.8.0.2", None, "10.8.0.2:8793/log/"),
        ("10.8.0.2", "18793", "10.8.0.2:18793/log/"),
        (" 10.8.0.2 ", " 18793 ", "10.8.0.2:18793/log/"),
        ("fd00::2", "18793", "[fd00::2]:18793/log/"),
    ],
)
def test_hostname_is_the_log_servers_address_then_the_container(
    advertise, address: str, port: str | None, expected: str
) -> None:
    advertise(address, port)
    assert worker_address.log_server_url_base() == expected
    assert worker_address.advertised_hostname() == f"{expected}#{socket.gethostname()}"


@pytest.mark.parametrize(
    ("address", "port", "named"),
    [
        (None, None, "WORKER_ADVERTISE_ADDRESS"),
        ("", None, "WORKER_ADVERTISE_ADDRESS"),
        ("worker-1.example", None, "WORKER_ADVERTISE_ADDRESS"),
        ("[fd00::2]", None, "WORKER_ADVERTISE_ADDRESS"),
        ("0.0.0.0", None, "WORKER_ADVERTISE_ADDRESS"),
        ("::", None, "WORKER_ADVERTISE_ADDRESS"),
        ("10.8.0.2/log/#", None, "WORKER_ADVERTISE_ADDRESS"),
        ("10.8.0.2", "87a", "WORKER_LOG_PUBLISHED_PORT"),
        ("10.8.0.2", "0", "WORKER_LOG_PUBLISHED_PORT"),
        ("10.8.0.2", "70000", "WORKER_LOG_PUBLISHED_PORT"),
    ],
)
def test_unusable_values_are_refused_naming_the_variable(
    advertise, address: str | None, port: str | None, named: str
) -> None:
    advertise(address, port)
    with pytest.raises(ValueError, match=named):
        worker_address.advertised_hostname()


@pytest.mark.parametrize("address", ["10.8.0.2", "fd00::2"])
def test_airflow_builds_the_log_url_of_the_published_port(advertise, address: str) -> None:
    """The api-server's own URL building (its worker_log_server_port stays 8793) lands on port 18793."""
    from airflow.configuration import conf
    from airflow.utils.log.file_task_handler import FileTaskHandler

    assert conf.getint("logging", "worker_log_server_port") == 8793
    advertise(address, "18793")
    ti = SimpleNamespace(hostname=worker_address.advertised_hostname())
    url, rel_path = FileTaskHandler(base_log_folder="unused")._get_log_retrieval_url(ti, REL_PATH)
    host = f"[{address}]" if ":" in address else address
    assert (url, rel_path) == (f"http://{host}:18793/log/{REL_PATH}", REL_PATH)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def log_server(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The worker-log-server's command, `python -m stack_patterns.worker_address`, on a free port of this
    machine, serving a log folder that holds one task log."""
    logs = tmp_path / "logs"
    (logs / REL_PATH).parent.mkdir(parents=True)
    (logs / REL_PATH).write_text('{"event": "printed by the task on the worker host"}\n')
    logs.chmod(0o555)  # the service mounts the log volume read-only
    port = str(free_port())
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "AIRFLOW_HOME": str(tmp_path / "home"),
        "AIRFLOW_CONFIG": str(REPO / "config" / "airflow.cfg"),
        "AIRFLOW__API__SECRET_KEY": "secret-shared-by-the-api-server-and-the-worker-hosts-" + "x" * 16,
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(logs),
        # The container's log server listens on 8793; here a free port, published "as is".
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": port,
        "PYTHONPATH": str(REPO / "plugins"),
        worker_address.ADDRESS_ENV: "127.0.0.1",
        worker_address.PORT_ENV: port,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "stack_patterns.worker_address"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", int(port)), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    pytest.fail(f"log server did not start:\n{process.communicate()[0]}")
                time.sleep(0.2)
        yield env
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
        logs.chmod(0o755)
    assert f"record hostnames 127.0.0.1:{port}/log/#<worker container>" in output, output


def test_the_api_servers_signed_fetch_reads_the_log_from_the_worker_hosts_log_server(
    log_server: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.utils.log.file_task_handler import FileTaskHandler

    for name in ("AIRFLOW__API__SECRET_KEY", worker_address.ADDRESS_ENV, worker_address.PORT_ENV):
        monkeypatch.setenv(name, log_server[name])
    ti = SimpleNamespace(hostname=worker_address.advertised_hostname(), triggerer_job=None, task=None)
    handler = FileTaskHandler(base_log_folder="unused")
    sources, streams = handler._read_from_logs_server(ti, REL_PATH)
    port = log_server[worker_address.PORT_ENV]
    assert sources == [f"http://127.0.0.1:{port}/log/{REL_PATH}"], sources
    assert "printed by the task on the worker host" in "".join(line for s in streams for line in s)

    # Without the shared secret the log server refuses, as it does for any unsigned or foreign request.
    monkeypatch.setenv("AIRFLOW__API__SECRET_KEY", "another-secret-than-the-worker-hosts-one-" + "y" * 32)
    sources, streams = handler._read_from_logs_server(ti, REL_PATH)
    assert not streams
    assert any("secret_key" in source for source in sources), sources
