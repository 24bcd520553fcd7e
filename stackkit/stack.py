"""One compose project of this repository, as the host drives it: its compose command, its
containers, commands in them, SQL in its Postgres, its Prometheus and its published URLs.

The project's name, compose files and env file are the caller's (the integration tests and the
benchmark each run a stack of their own, never a user's `.env` or a stack started with `make up`).
"""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from docker.models.containers import Container

from stackkit import compose, containers, envfile, sql
from stackkit.errors import StackError
from stackkit.prometheus import PORT as PROMETHEUS_PORT
from stackkit.prometheus import Prometheus, wget_command

# The password of each database role the stack creates, by its env file variable.
ROLE_PASSWORDS = {"airflow": "POSTGRES_PASSWORD", "demo": "DEMO_DB_PASSWORD"}


@dataclass
class Stack:
    project: str
    files: Sequence[Path]
    env_file: Path
    # The environment compose runs in (stackkit.compose.environment); None: the caller's, as it is.
    environment: Mapping[str, str] | None = None
    env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.env = envfile.read(self.env_file)

    # --- compose ----------------------------------------------------------------------------------
    def compose(self, *args: str, timeout: float | None = 900, check: bool = True) -> str:
        """`docker compose ARGS` on this project; its standard output."""
        base = compose.command(self.project, self.files, self.env_file)
        return compose.run(base, *args, env=self.environment, timeout=timeout, check=check).stdout

    # --- containers -------------------------------------------------------------------------------
    def containers(self, service: str | None = None, include_stopped: bool = False) -> list[Container]:
        return containers.project_containers(self.project, service, include_stopped)

    def container(self, service: str) -> Container:
        found = self.containers(service)
        if not found:
            raise StackError(f"no running container for service {service}")
        return found[0]

    def exec(self, service: str, command: list[str], environment: dict[str, str] | None = None) -> str:
        """COMMAND in the service's first container; its output."""
        return containers.exec_in(self.container(service), command, environment)

    def url(self, port_key: str) -> str:
        """The published UI whose host port is the env file's PORT_KEY."""
        return f"http://127.0.0.1:{self.env[port_key]}"

    # --- queries ----------------------------------------------------------------------------------
    def postgres_id(self) -> str:
        return str(self.container("postgres").id)

    def sql(self, query: str, database: str = "airflow", role: str = "airflow") -> list[list[str]]:
        """Run SQL straight on Postgres (not through PgBouncer), by default as airflow in Airflow's
        database; rows of strings, NULL = ''. Values go in as stackkit.sql.literal / bind makes them.
        Safe to call from several threads."""
        password = self.env[ROLE_PASSWORDS[role]]
        exit_code, out, err = containers.exec_by_id(
            self.postgres_id(), sql.psql(role, database, query), {"PGPASSWORD": password}
        )
        if exit_code != 0:
            problem = err.strip() or out.strip()
            raise StackError(f"psql exited {exit_code}: {problem[:500]}\nquery: {query}")
        return sql.rows(out)

    @property
    def prometheus(self) -> Prometheus:
        return Prometheus(self._prometheus_get)

    def _prometheus_get(self, path_and_query: str) -> str:
        """Over the Compose network where the host reaches it (no `docker exec`: about a tenth of a
        second each, and the test of the dashboards asks hundreds of queries), else from inside."""
        container = self.container("prometheus")
        address = containers.host_reachable_address(container, PROMETHEUS_PORT)
        if address is None:
            return containers.exec_in(container, wget_command(path_and_query))
        # Straight to the container: never through a proxy the caller's environment may name.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://{address}{path_and_query}", timeout=120) as answer:
            return answer.read().decode()
