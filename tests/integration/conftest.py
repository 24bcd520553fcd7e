"""Fixtures for the integration tests: one real stack for the whole session, torn down with its
volumes at the end. Images come from the environment (OFFLINE=1 exports the offline kit's)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from scripts.record_images import grafana_image, image_present
from stackkit import REPO
from stackkit.airflow_api import AirflowApi
from tests.integration.testbed import PROJECT, IntegrationStack, guest_dirs, write_env_file


@dataclass
class CheckoutSnapshot:
    """Hashes of every file under the checkout's dags/ and backups/, and of .env, before any test."""

    taken: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def now() -> dict[str, str]:
        found = {}
        for root in (REPO / "dags", REPO / "backups"):
            for path in sorted(root.rglob("*")) if root.is_dir() else []:
                if path.is_file() and "__pycache__" not in path.parts:
                    found[str(path.relative_to(REPO))] = hashlib.sha256(path.read_bytes()).hexdigest()
        env = REPO / ".env"
        found[".env"] = hashlib.sha256(env.read_bytes()).hexdigest() if env.exists() else "absent"
        return found

    def changed(self) -> list[str]:
        after = self.now()
        return sorted(k for k in self.taken.keys() | after.keys() if self.taken.get(k) != after.get(k))


@pytest.fixture(scope="session", autouse=True)
def checkout_snapshot() -> CheckoutSnapshot:
    return CheckoutSnapshot(taken=CheckoutSnapshot.now())


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IntegrationStack]:
    os.environ["COMPOSE_PROJECT_NAME"] = PROJECT
    env_file = tmp_path_factory.mktemp("stack") / "test.env"
    # Outside pytest's own 0700 temporary tree: the containers' users must read the DAG copy.
    guest_root = Path(tempfile.mkdtemp(prefix="airflow-stack-test-"))
    dirs = guest_dirs(guest_root)
    write_env_file(env_file, with_grafana=True, dirs=dirs)
    image = grafana_image(env_file)
    with_grafana = image_present(image)
    write_env_file(env_file, with_grafana=with_grafana, dirs=dirs)
    running = IntegrationStack.of(env_file, grafana_image=image, with_grafana=with_grafana)
    running.stop()  # leftovers of an interrupted earlier run
    try:
        running.start()  # inside the try: a stack that fails to start is torn down too
        yield running
    finally:
        running.stop()
        # Dumps and DAG copies may belong to the containers' users; root (CI) or the owner removes them.
        shutil.rmtree(guest_root, ignore_errors=True)


@pytest.fixture(scope="session")
def api(stack: IntegrationStack) -> AirflowApi:
    return AirflowApi(
        stack.url("AIRFLOW_API_PORT"), stack.env["AIRFLOW_ADMIN_USER"], stack.env["AIRFLOW_ADMIN_PASSWORD"]
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.integration.monitoring import COVERAGE

    if COVERAGE:
        terminalreporter.section("monitoring coverage")
        for key in sorted(COVERAGE):
            terminalreporter.write_line(f"{key}: {COVERAGE[key]}")
