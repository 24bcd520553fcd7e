"""The real stack under test: docker-compose.yml driven by testcontainers, plus the few things the
tests read from it (containers of a service, a Prometheus query, a SQL query in Postgres).

The stack runs under its own compose project name and env file, with its own random secrets and
host ports, so it never touches a user's `.env` or a stack started with `make up`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import docker
from docker.models.containers import Container
from testcontainers.compose import DockerCompose

from scripts.generate_env import render

REPO = Path(__file__).resolve().parents[2]

PROJECT = "airflow-stack-test"
# The stack's own file, then the tests' override (short timeouts that tests wait out).
COMPOSE_FILES = [REPO / "docker-compose.yml", REPO / "tests" / "integration" / "compose.test.yml"]
TEST_PORTS = {"AIRFLOW_API_PORT": "18080", "FLOWER_PORT": "15555", "GRAFANA_PORT": "13000"}
# The example DAGs' alerts go to the stack's local webhook receiver in the tests.
RECEIVER_URL = "http://webhook-receiver:8080/alerts"


def guest_dirs(root: Path) -> tuple[Path, Path]:
    """A copy of the checkout's dags/ and an empty backup folder under ROOT, readable by the
    containers' users (uid 50000 and 999), so the tests never write into the checkout."""
    root.chmod(0o755)
    dags = root / "dags"
    shutil.copytree(REPO / "dags", dags, ignore=shutil.ignore_patterns("__pycache__"))
    for path in [dags, *dags.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    backups = root / "backups"
    backups.mkdir(mode=0o700)
    return dags, backups


def env_values(env_file: Path) -> dict[str, str]:
    values = {}
    for line in env_file.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            values[key.strip()] = value
    return values


def write_env_file(path: Path, with_grafana: bool, dags_dir: Path, backup_dir: Path) -> Path:
    """The test stack's own env file: its own secrets, ports, DAG folder and backup folder, so
    nothing it does is seen by a stack started from the checkout."""
    lines = []
    for line in render((REPO / ".env.example").read_text()).splitlines():
        key = line.split("=", 1)[0]
        if key in TEST_PORTS:
            line = f"{key}={TEST_PORTS[key]}"
        elif key == "COMPOSE_PROFILES":
            line = f"COMPOSE_PROFILES={'grafana' if with_grafana else ''}"
        elif key == "COMPOSE_PROJECT_NAME":
            line = f"COMPOSE_PROJECT_NAME={PROJECT}"
        elif key == "ALERT_WEBHOOK_URL":
            line = f"ALERT_WEBHOOK_URL={RECEIVER_URL}"
        lines.append(line)
    lines += [f"DAGS_DIR={dags_dir}", f"BACKUP_DIR={backup_dir}"]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(lines) + "\n")
    return path


@dataclass
class Stack:
    env_file: Path
    grafana_image: str
    with_grafana: bool
    compose: DockerCompose = field(init=False)
    env: dict[str, str] = field(init=False)
    client: docker.DockerClient = field(init=False)

    @property
    def dags_dir(self) -> Path:
        """The test stack's DAG folder: a copy of the checkout's dags/, safe to write into."""
        return Path(self.env["DAGS_DIR"])

    @property
    def backup_dir(self) -> Path:
        return Path(self.env["BACKUP_DIR"])

    def __post_init__(self) -> None:
        self.compose = DockerCompose(
            context=REPO,
            compose_file_name=[str(path.relative_to(REPO)) for path in COMPOSE_FILES],
            env_file=str(self.env_file),
            build=True,
            wait=True,
            keep_volumes=False,
        )
        self.env = env_values(self.env_file)
        self.client = docker.from_env()

    # --- lifecycle -------------------------------------------------------------------------------
    def compose_cmd(self, *args: str, check: bool = True, timeout: float = 900) -> str:
        result = subprocess.run(
            [*self.compose.compose_command_property, *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"docker compose {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def start(self) -> None:
        try:
            self.compose.start()
        except Exception:
            print(self.compose_cmd("ps", "--all", check=False))
            print(self.compose_cmd("logs", "--no-color", "--tail=60", check=False))
            raise

    def stop(self) -> None:
        self.compose.stop(down=True)

    def scale_workers(self, count: int) -> None:
        """Only the workers: a plain `up` would also start the exited airflow-init again (a migration
        check, users, pools: about a minute of CPU) and wait on every other service."""
        self.compose_cmd(
            "up",
            "--detach",
            "--wait",
            "--no-recreate",
            "--no-deps",
            "--scale",
            f"airflow-worker={count}",
            "airflow-worker",
        )

    # --- containers ------------------------------------------------------------------------------
    def containers(self, service: str, include_stopped: bool = False) -> list[Container]:
        found = self.client.containers.list(
            all=include_stopped,
            filters={
                "label": [f"com.docker.compose.project={PROJECT}", f"com.docker.compose.service={service}"]
            },
        )
        return sorted(found, key=lambda c: int(c.labels.get("com.docker.compose.container-number", "0")))

    def container(self, service: str) -> Container:
        found = self.containers(service)
        assert found, f"no running container for service {service}"
        return found[0]

    def exec(self, service: str, command: list[str], environment: dict[str, str] | None = None) -> str:
        exit_code, output = self.container(service).exec_run(command, environment=environment)
        text = output.decode(errors="replace")
        if exit_code != 0:
            raise RuntimeError(f"{service}: {' '.join(command)} exited {exit_code}: {text}")
        return text

    # --- queries ---------------------------------------------------------------------------------
    def sql(self, query: str, database: str = "airflow", role: str = "airflow") -> list[list[str]]:
        """Run SQL straight on Postgres (not through PgBouncer), by default as airflow in Airflow's DB."""
        password = self.env["POSTGRES_PASSWORD" if role == "airflow" else "DEMO_DB_PASSWORD"]
        out = self.exec(
            "postgres",
            [
                "psql",
                f"--username={role}",
                f"--dbname={database}",
                "--no-psqlrc",
                "-tA",
                "-F",
                "\t",
                "-c",
                query,
            ],
            environment={"PGPASSWORD": password},
        )
        return [line.split("\t") for line in out.splitlines() if line]

    def sql_demo(self, query: str) -> list[list[str]]:
        """Run SQL in the example DAGs' demo database, as its owner."""
        return self.sql(query, database="demo", role="demo")

    def pgbouncer_show(self, what: str) -> list[dict[str, str]]:
        out = self.exec(
            "pgbouncer",
            [
                "psql",
                "--host=127.0.0.1",
                "--port=6432",
                "--username=airflow",
                "--dbname=pgbouncer",
                "--no-psqlrc",
                "-A",
                "-F",
                "\t",
                "-c",
                f"SHOW {what}",
            ],
        )
        lines = [line for line in out.splitlines() if line and not line.startswith("(")]
        header = lines[0].split("\t")
        return [dict(zip(header, line.split("\t"), strict=False)) for line in lines[1:]]

    def prometheus_query(self, promql: str) -> list[dict]:
        return self.prometheus_get("/api/v1/query", query=promql)["result"]

    def prometheus_get(self, path: str, **params: str) -> object:
        url = f"http://127.0.0.1:9090{path}?" + urllib.parse.urlencode(params)
        body = json.loads(self.exec("prometheus", ["wget", "-q", "-O", "-", url]))
        assert body["status"] == "success", body
        return body["data"]

    def parse_query(self, promql: str) -> dict:
        """Prometheus' own syntax tree of an expression."""
        return self.prometheus_get("/api/v1/parse_query", query=promql)

    def metric_names(self) -> list[str]:
        return self.prometheus_get("/api/v1/label/__name__/values")

    def alerts(self) -> list[dict]:
        """Prometheus' alerts: pending and firing, with labels and state."""
        return self.prometheus_get("/api/v1/alerts")["alerts"]

    def wait_for_series(self, promql: str, timeout: float = 120) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            result = self.prometheus_query(promql)
            if result or time.monotonic() > deadline:
                return result
            time.sleep(5)

    def received_alerts(self) -> list[dict]:
        """What the local webhook receiver has been sent so far (it is not published on the host)."""
        out = self.exec("webhook-receiver", ["curl", "--fail", "--silent", "http://127.0.0.1:8080/received"])
        return json.loads(out)

    def pool_slots(self, pool: str = "default_pool") -> int:
        (row,) = self.sql(f"SELECT slots FROM slot_pool WHERE pool = '{pool}'")
        return int(row[0])

    def url(self, port_key: str) -> str:
        return f"http://127.0.0.1:{self.env[port_key]}"
