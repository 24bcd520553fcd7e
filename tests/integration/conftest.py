"""Fixtures for the integration tests: one real stack for the whole session, torn down with its
volumes at the end. Images come from the environment (OFFLINE=1 exports the offline kit's)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from tests.integration.airflow_api import AirflowApi
from tests.integration.stack import PROJECT, REPO, Stack, write_env_file


def grafana_image(env_file: Path) -> str:
    images = subprocess.run(
        ["docker", "compose", "--env-file", str(env_file), "--profile", "grafana", "config", "--images"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return next(image for image in images if "grafana" in image)


def image_present(image: str) -> bool:
    try:
        docker.from_env().images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    os.environ["COMPOSE_PROJECT_NAME"] = PROJECT
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    env_file = tmp_path_factory.mktemp("stack") / "test.env"
    write_env_file(env_file, with_grafana=True)
    image = grafana_image(env_file)
    with_grafana = image_present(image)
    write_env_file(env_file, with_grafana=with_grafana)
    running = Stack(env_file=env_file, grafana_image=image, with_grafana=with_grafana)
    running.stop()  # leftovers of an interrupted earlier run
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def api(stack: Stack) -> AirflowApi:
    return AirflowApi(
        stack.url("AIRFLOW_API_PORT"), stack.env["AIRFLOW_ADMIN_USER"], stack.env["AIRFLOW_ADMIN_PASSWORD"]
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.integration.monitoring import COVERAGE

    if COVERAGE:
        terminalreporter.section("monitoring coverage")
        for key in sorted(COVERAGE):
            terminalreporter.write_line(f"{key}: {COVERAGE[key]}")
