"""Bad input gets a clear error and loses nothing: broken DAG files are reported through the API
while a burst of 1000 task instances of another DAG completes on the default single worker; and
airflow-init (which every Airflow service waits for) stops with a message naming the problem when a
secret is malformed or the database password is wrong, and applies a changed admin password. The
burst runs in the background of the whole module (the `burst` fixture) and its last test checks it:
the others use no worker slot and mostly wait, so they overlap with it instead of adding ~30 s."""

from __future__ import annotations

import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from stackkit import compose, envfile
from stackkit.airflow_api import AirflowApi, access_token
from tests.integration.faults import SLOTS, TERMINAL, Workload, wait_until
from tests.integration.testbed import IntegrationStack

SYNTAX_ERROR = "from airflow.sdk import dag\n\nthis is not python (\n"
# The default heuristic parses only files that mention "airflow" and "dag" (or "asset").
HANGS = "import time\n\nfrom airflow.sdk import dag\n\ntime.sleep(3600)\n"
# A good DAG file added after the broken ones: parsing must go on past them.
ADDED_DAG_ID = "zz_added_after_broken_files_by_tests"
ADDED = f"""from airflow.sdk import dag


@dag(dag_id="{ADDED_DAG_ID}", schedule=None)
def added() -> None:
    pass


added()
"""


class Burst:
    """A run of 1000 mapped no-op tasks on the default single worker, started when the module starts
    and sampled in a thread (tasks queued or running, every 4 s) while the module's other tests run:
    none of them uses a worker slot, and each mostly waits."""

    def __init__(self, stack: IntegrationStack, api: AirflowApi) -> None:
        self.started = time.monotonic()
        self.workload = Workload.start(stack, api, count=1000, sleep_seconds=0)
        self.in_flight: list[int] = []
        self.errors: list[Exception] = []
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample, name="burst-sampler", daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        # Every 4 s: a sample is a `docker exec`, CPU the burst itself needs.
        while not self._done.wait(4):
            try:
                self.in_flight.append(self.workload.in_flight())
                if self.workload.run_state() in TERMINAL:
                    self._done.set()
            except Exception as error:  # a sample must not end the thread unseen
                self.errors.append(error)

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._done.wait(5):
            assert len(self.errors) < 5, f"the burst's samples fail: {self.errors[-3:]}"
            assert time.monotonic() < deadline, f"the burst did not finish in {timeout:.0f} s"

    def stop(self) -> None:
        self._done.set()
        self._sampler.join(timeout=30)


@pytest.fixture(scope="module")
def burst(stack: IntegrationStack, api: AirflowApi) -> Iterator[Burst]:
    assert len(stack.containers("airflow-worker")) == 1
    wait_until(lambda: stack.pool_slots() == SLOTS, 60, "default_pool at one worker's 16 slots")
    running = Burst(stack, api)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def broken_dag_files(stack: IntegrationStack) -> Iterator[dict[str, Path]]:
    files = {
        "syntax": stack.dags_dir / "zz_syntax_error_by_tests.py",
        "hangs": stack.dags_dir / "zz_hangs_at_import_by_tests.py",
    }
    files["syntax"].write_text(SYNTAX_ERROR)
    files["hangs"].write_text(HANGS)
    added = stack.dags_dir / f"{ADDED_DAG_ID}.py"
    try:
        yield files
    finally:
        for path in [*files.values(), added]:
            path.unlink(missing_ok=True)


def test_broken_dag_files_are_reported_while_a_burst_of_1000_task_instances_runs(
    stack: IntegrationStack, api: AirflowApi, burst: Burst, broken_dag_files: dict[str, Path]
) -> None:
    """Broken files (one parse slot held by the hanging one) do not stop other DAGs, while the burst
    runs; its outcome is checked by the module's last test."""

    def reported() -> dict[str, str]:
        errors = api.import_errors()
        return {
            kind: next((e for e in errors if path.name in e), "") for kind, path in broken_dag_files.items()
        }

    # New files are listed within [dag_processor] refresh_interval; the hanging one is cut at
    # [core] dagbag_import_timeout (both shortened in tests/integration/compose.test.yml).
    errors = wait_until(lambda: all((found := reported()).values()) and found, 300, "both import errors")
    assert "SyntaxError" in errors["syntax"], errors["syntax"]
    assert "DagBag import timeout" in errors["hangs"], errors["hangs"]
    # The parser went on: a DAG file written after the broken ones is parsed and listed.
    (stack.dags_dir / f"{ADDED_DAG_ID}.py").write_text(ADDED)
    wait_until(lambda: api.dag_listed(ADDED_DAG_ID), 300, f"{ADDED_DAG_ID} to be listed")
    assert burst.workload.run_state() not in TERMINAL, "the burst ended before the checks: not concurrent"


def run_init(stack: IntegrationStack, tmp_path: Path, **changes: str) -> subprocess.CompletedProcess[str]:
    """airflow-init as `docker compose up` would start it, from a .env with `changes` applied."""
    env_file = envfile.write_private(tmp_path / "changed.env", envfile.render({**stack.env, **changes}))
    base = ["docker", "compose", "--env-file", str(env_file)]
    return compose.run(base, "run", "--rm", "--no-deps", "airflow-init", timeout=300, check=False)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"POSTGRES_PASSWORD": "not-the-password-of-the-volume"},
            "Postgres refused POSTGRES_PASSWORD for role 'airflow'",
        ),
        ({"AIRFLOW_FERNET_KEY": "not-a-fernet-key"}, "AIRFLOW_FERNET_KEY is not a valid Fernet key"),
        ({"AIRFLOW_JWT_SECRET": "short"}, "AIRFLOW_JWT_SECRET has 5 bytes"),
    ],
    ids=["wrong-database-password", "malformed-fernet-key", "short-jwt-secret"],
)
def test_init_stops_with_a_message_naming_the_problem(
    stack: IntegrationStack, tmp_path: Path, changes: dict[str, str], message: str
) -> None:
    result = run_init(stack, tmp_path, **changes)
    assert result.returncode != 0
    assert message in result.stderr + result.stdout, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, "the message should not be buried in a traceback"


def test_a_changed_admin_password_in_env_takes_effect_at_the_next_init(
    stack: IntegrationStack, tmp_path: Path
) -> None:
    """.env is the source of truth for the admin's password: airflow-init resets it on an existing
    user. Put back afterwards by the same path."""
    base, user, old = (
        stack.url("AIRFLOW_API_PORT"),
        stack.env["AIRFLOW_ADMIN_USER"],
        stack.env["AIRFLOW_ADMIN_PASSWORD"],
    )
    new = secrets.token_urlsafe(24)
    result = run_init(stack, tmp_path, AIRFLOW_ADMIN_PASSWORD=new)
    try:
        assert result.returncode == 0, result.stderr[-2000:]
        assert "Traceback" not in result.stdout + result.stderr, (result.stdout + result.stderr)[-2000:]
        assert access_token(base, user, new)
        with pytest.raises(requests.HTTPError):
            access_token(base, user, old)
    finally:
        restored = run_init(stack, tmp_path, AIRFLOW_ADMIN_PASSWORD=old)
    assert restored.returncode == 0, restored.stderr[-2000:]
    assert access_token(base, user, old)


def test_a_burst_of_1000_task_instances_completes_on_the_default_single_worker(
    stack: IntegrationStack, api: AirflowApi, burst: Burst
) -> None:
    """The burst at the default worker count loses no task instance, with the module's other tests
    run meanwhile. And the capacity pool's promise under a burst: at no sample are more than the
    worker's 16 slots queued or running, so the rest waits in the scheduler (state scheduled), never in
    Redis where it could age past task_queued_timeout; every task succeeds on its first try, none is
    re-queued as stuck. With Airflow's default pool of 128 slots, 128 would be queued at once."""
    burst.wait(1800)
    rows = burst.workload.assert_nothing_lost(timeout=60)
    print(f"1000 mapped task instances on 1 worker: {time.monotonic() - burst.started:.0f} s")
    assert not burst.errors, f"samples failed: {burst.errors[:3]}"
    assert not [e for e in api.import_errors() if "smoke_mapped" in e.split(":", 1)[0]]
    assert {r.try_number for r in rows if r.task_id == "work"} == {1}, "a task failed or ran twice"
    in_flight = burst.in_flight
    assert len(in_flight) >= 20, f"only {len(in_flight)} samples"
    assert max(in_flight) <= SLOTS, f"{max(in_flight)} tasks queued or running at once on {SLOTS} slots"
    assert max(in_flight) >= SLOTS - 2, f"at most {max(in_flight)} in flight: the slots were not filled"
