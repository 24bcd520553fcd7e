"""Runs last: the whole integration suite left the checkout's dags/, backups/ and .env byte-for-byte as
they were, and no container of the test stack mounts them, so a stack started with `make up` from the
same checkout sees nothing of what the tests do (no broken DAG file, no dump among the user's)."""

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
