"""Runs last: the whole integration suite left the checkout's dags/, backups/ and .env byte-for-byte as
they were, and no container of the test stack mounts them, so a stack started with `make up` from the
same checkout sees nothing of what the tests do (no broken DAG file, no dump among the user's). Then, as
the very last test, the stack is stopped: every service exits on its stop signal, none is killed at the
end of its grace period, so `make down` and every restart take seconds."""

from __future__ import annotations

from pathlib import Path

from stackkit import REPO
from tests.integration.conftest import CheckoutSnapshot
from tests.integration.testbed import IntegrationStack

USERS_PATHS = [REPO / "dags", REPO / "backups", REPO / ".env"]


def test_the_suite_left_the_checkouts_dags_backups_and_env_unchanged(
    checkout_snapshot: CheckoutSnapshot,
) -> None:
    assert checkout_snapshot.taken, "the snapshot was not taken before the first test"
    changed = checkout_snapshot.changed()
    assert not changed, f"the integration tests changed the user's files: {changed}"


def test_no_test_container_mounts_the_users_dags_backups_or_env(stack: IntegrationStack) -> None:
    containers = stack.containers(include_stopped=True)
    assert containers, "no container of the test project: nothing was checked"
    mounted = {
        (c.name, m["Source"])
        for c in containers
        for m in c.attrs["Mounts"]
        if m["Type"] == "bind" and any(Path(m["Source"]).is_relative_to(p) for p in USERS_PATHS)
    }
    assert not mounted, f"test containers mount the checkout's own files: {sorted(mounted)}"


def test_every_service_exits_on_its_stop_signal(stack: IntegrationStack) -> None:
    """`docker compose stop` with a minute of grace: exit code 137 is SIGKILL, what Docker sends to a
    container that outlives its grace period (a PID 1 without a handler ignores SIGTERM, PgBouncer's
    SIGTERM waits for every client to leave). The session's teardown removes the stopped stack."""
    running = stack.containers()
    assert len(running) > 10, f"only {len(running)} containers running: nothing to stop"
    stack.compose("stop", "--timeout", "60")
    for container in running:
        container.reload()
    killed = sorted(c.name for c in running if c.attrs["State"]["ExitCode"] == 137)
    assert not killed, f"killed at the end of their grace period instead of exiting on their signal: {killed}"
