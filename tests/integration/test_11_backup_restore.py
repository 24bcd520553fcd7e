"""Backups restore: scripts/backup.sh (`make backup`) dumps the running stack's `airflow` and `demo`
databases; the stack is then replaced by a fresh one (down --volumes: a new, empty Postgres volume that
airflow-init migrates from nothing); scripts/restore.sh (`make restore FILE=...`) restores the metadata dump
into it; the fresh stack then has exactly the finished DAG runs and task instances of the moment of the
backup, serves them and a Fernet-encrypted variable through the REST API, and runs new DAG runs.

Why the real thing and not the cheaper check (pg_restore into a scratch database beside the live one,
`createdb restore_check`, about 20 s): that proves pg_dump and pg_restore round-trip, not the promise,
which is disaster recovery: a stack whose database volume is gone comes back with its history through
the two commands an operator runs, including restore.sh's own steps (stop the writers, restore in one
transaction, migrate if needed, start, wait until healthy). Cost, measured phases printed on failure: the
backup ~1 s, down and a cold up to the end of airflow-init ~30 s, the restore ~40 s.
It replaces the session's stack by a fresh one with the same env file, i.e. the same secrets and Fernet
key, as a real recovery uses the .env kept with the backups; tests 12 to 14 then run on the restored
stack, which is the point. Nothing after this module may count on metrics or task logs from before it:
task logs live in a volume, not in the database, so they are not part of a backup (down --volumes drops
them here), and Prometheus starts empty.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from stackkit import REPO
from stackkit.airflow_api import AirflowApi, access_token
from stackkit.sql import bind
from tests.integration.faults import wait_until
from tests.integration.testbed import COMPOSE_FILES, PROJECT, IntegrationStack

# Runs and task instances that cannot change any more: a restore must give back exactly these.
FINISHED_RUNS = "SELECT dag_id, run_id, state FROM dag_run WHERE state IN ('success', 'failed')"
FINISHED_TIS = (
    "SELECT ti.dag_id, ti.run_id, ti.task_id, ti.map_index, coalesce(ti.state, ''), ti.try_number "
    "FROM task_instance ti JOIN dag_run r ON r.dag_id = ti.dag_id AND r.run_id = ti.run_id "
    "WHERE r.state IN ('success', 'failed')"
)
# Variables are stored Fernet-encrypted; a key without "secret" or "password" is not masked by the API.
VARIABLE = "restore_check_note"
DUMP_NAME = r"^(airflow|demo)-\d{8}T\d{6}Z\.dump$"
BACKUP_TOO_OLD = "BackupTooOld"
# The recorded last success, aged by three intervals.
AGED = "last_success_at - make_interval(secs => 3 * interval_seconds)"


def rows(stack: IntegrationStack, query: str) -> set[tuple[str, ...]]:
    return {tuple(row) for row in stack.sql(query)}


def run_script(stack: IntegrationStack, backup_dir: Path, *command: str, timeout: float) -> str:
    """A script of scripts/ against the test stack: the same compose project, file and env file."""
    env = {
        **os.environ,
        "COMPOSE_PROJECT_NAME": PROJECT,
        "COMPOSE_FILE": os.pathsep.join(str(path) for path in COMPOSE_FILES),
        "COMPOSE_ENV_FILES": str(stack.env_file),
        "BACKUP_DIR": str(backup_dir),
        "PYTHON": sys.executable,
        "WAIT_TIMEOUT": "600",
    }
    result = subprocess.run(
        ["bash", *command], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, (
        f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


def bearer(stack: IntegrationStack) -> dict[str, str]:
    base = stack.url("AIRFLOW_API_PORT")
    token = access_token(base, stack.env["AIRFLOW_ADMIN_USER"], stack.env["AIRFLOW_ADMIN_PASSWORD"])
    return {"Authorization": f"Bearer {token}"}


def backup_too_old(stack: IntegrationStack) -> list[dict]:
    """BackupTooOld, pending or firing."""
    return [alert for alert in stack.prometheus.alerts() if alert["labels"]["alertname"] == BACKUP_TOO_OLD]


def test_backup_age_reaches_prometheus_and_backup_too_old_follows_it(stack: IntegrationStack) -> None:
    """The db-backup service's first round, at the stack's start, recorded its success and interval in
    db_backup.status; postgres-exporter exports both and BackupTooOld is silent. Aged by three
    intervals in the table, the recorded success makes the rule match the live series (pending: its
    `for` is 5 minutes), and put back it clears. Runs before the round below, which records its own
    interval."""
    ((interval, success, now),) = stack.sql(
        "SELECT interval_seconds, extract(epoch FROM last_success_at), extract(epoch FROM now()) "
        "FROM db_backup.status"
    )
    assert int(interval) == int(stack.env["BACKUP_INTERVAL_HOURS"]) * 3600
    assert 0 < float(now) - float(success) < int(interval), "no good backup recorded since the start"
    exported = stack.prometheus.wait_for_series("db_backup_last_success_timestamp_seconds")
    assert [float(series["value"][1]) for series in exported] == [pytest.approx(float(success), abs=1)]
    (exported_interval,) = stack.prometheus.query("db_backup_interval_seconds")
    assert float(exported_interval["value"][1]) == int(interval)
    assert not backup_too_old(stack), "BackupTooOld is pending or firing after a good backup"

    stack.sql("UPDATE db_backup.status SET last_success_at = " + AGED)
    try:
        wait_until(lambda: backup_too_old(stack), 120, "BackupTooOld on an aged backup")
    finally:
        stack.sql(bind("UPDATE db_backup.status SET last_success_at = to_timestamp({at})", at=float(success)))
    wait_until(lambda: not backup_too_old(stack), 120, "BackupTooOld to clear")


def test_scheduled_backups_run_at_start_and_apply_retention(stack: IntegrationStack) -> None:
    """The db-backup service's first round ran when the stack started; a round deletes a dump older
    than BACKUP_RETENTION_DAYS and keeps the one it just wrote (one round run by hand, same script)."""
    backup = stack.container("db-backup")
    assert re.search(r"db-backup: /backups/airflow-\d{8}T\d{6}Z\.dump", backup.logs().decode())
    old = "/backups/airflow-20000101T000000Z.dump"
    owner = stack.exec("db-backup", ["stat", "-c", "%u:%g", "/backups"]).strip()
    make_old = f'cp "$(ls /backups/airflow-*.dump | tail -n 1)" {old} && touch -d 2000-01-01 {old}'
    code, out = backup.exec_run(["sh", "-c", make_old], user=owner)
    assert code == 0, out.decode()
    # One round of the service's own script (its `once` mode, which `make backup` runs too).
    code, out = backup.exec_run(["sh", "/usr/local/bin/db-backup", "once"])
    log = out.decode()
    assert code == 0, log
    assert f"db-backup: deleted {old}" in log, log
    written = re.findall(r"db-backup: (/backups/(?:airflow|demo)-\d{8}T\d{6}Z\.dump)", log)
    assert len(written) == 2, log
    listing = stack.exec("db-backup", ["ls", "/backups"]).split()
    assert old.rsplit("/", 1)[1] not in listing
    assert all(path.rsplit("/", 1)[1] in listing for path in written)


@pytest.fixture(scope="module")
def restored(stack: IntegrationStack, tmp_path_factory: pytest.TempPathFactory) -> dict:
    backup_dir = tmp_path_factory.mktemp("backups")
    phases: dict[str, float] = {}
    started = time.monotonic()

    def phase(name: str) -> None:
        nonlocal started
        phases[name] = round(time.monotonic() - started, 1)
        started = time.monotonic()

    base = stack.url("AIRFLOW_API_PORT")
    secret = f"value-{time.time_ns()}"
    response = requests.post(
        f"{base}/api/v2/variables", json={"key": VARIABLE, "value": secret}, headers=bearer(stack), timeout=30
    )
    assert response.status_code in (200, 201), response.text
    runs, tis = rows(stack, FINISHED_RUNS), rows(stack, FINISHED_TIS)
    backup_log = run_script(stack, backup_dir, "scripts/backup.sh", timeout=300)
    phase("backup")

    stack.stop()  # down --volumes: the database, broker and log volumes are gone
    # Not `--wait`: Compose still starts the Airflow services only after airflow-init has migrated
    # the empty database, and restore.sh stops them first and waits until the whole stack is healthy.
    # Waiting here too put a second boot of every Airflow service on 2 cores (~20 s) in front of it.
    stack.compose("up", "--detach", timeout=600)
    phase("fresh stack up")
    fresh_runs = rows(stack, FINISHED_RUNS)

    (airflow_dump,) = sorted(backup_dir.glob("airflow-*.dump"))
    restore_log = run_script(stack, backup_dir, "scripts/restore.sh", str(airflow_dump), timeout=900)
    phase("restore")
    print(f"stack time by phase (s): {phases}")
    return {
        "backup_dir": backup_dir,
        "backup_log": backup_log,
        "restore_log": restore_log,
        "runs": runs,
        "tis": tis,
        "fresh_runs": fresh_runs,
        "secret": secret,
        "phases": phases,
    }


def test_backup_writes_private_custom_format_dumps_of_both_databases(restored: dict) -> None:
    dumps = sorted(restored["backup_dir"].iterdir())
    assert {p.name.split("-", 1)[0] for p in dumps} == {"airflow", "demo"}, restored["backup_log"]
    for dump in dumps:
        assert re.match(DUMP_NAME, dump.name), dump.name
        assert dump.stat().st_mode & 0o777 == 0o600, f"{dump} has mode {dump.stat().st_mode & 0o777:o}"
        assert dump.read_bytes()[:5] == b"PGDMP", f"{dump} is not a pg_dump custom-format archive"


def test_the_stack_restored_into_started_empty(restored: dict) -> None:
    assert restored["runs"], "no finished DAG runs to back up: the earlier tests ran none"
    assert restored["tis"], "no task instances to back up"
    assert not restored["fresh_runs"] & restored["runs"], "the fresh stack already had the old runs"


def test_restored_database_has_the_same_dag_runs_and_task_instances(
    stack: IntegrationStack, restored: dict
) -> None:
    runs_now = rows(stack, FINISHED_RUNS)
    assert restored["runs"] <= runs_now, f"runs lost or changed: {sorted(restored['runs'] - runs_now)[:10]}"
    # The task instances of those runs, exactly: none lost, none changed, none added. (A run that was
    # still going at the backup may have finished since; it is not among those compared.)
    backed_up = {(dag_id, run_id) for dag_id, run_id, _ in restored["runs"]}
    tis_then = {ti for ti in restored["tis"] if ti[:2] in backed_up}
    tis_now = {ti for ti in rows(stack, FINISHED_TIS) if ti[:2] in backed_up}
    assert tis_now == tis_then, (
        f"lost: {sorted(tis_then - tis_now)[:5]}, unexpected: {sorted(tis_now - tis_then)[:5]}"
    )


def test_restored_runs_and_encrypted_values_are_served_by_the_api(
    stack: IntegrationStack, restored: dict
) -> None:
    api = AirflowApi(
        stack.url("AIRFLOW_API_PORT"), stack.env["AIRFLOW_ADMIN_USER"], stack.env["AIRFLOW_ADMIN_PASSWORD"]
    )
    for dag_id, run_id, state in sorted(restored["runs"]):
        assert api.run_state(dag_id, run_id) == state, (dag_id, run_id)
    (row,) = stack.sql(bind("SELECT is_encrypted FROM variable WHERE key = {key}", key=VARIABLE))
    assert row == ["t"], "the variable is not stored encrypted"
    response = requests.get(
        f"{stack.url('AIRFLOW_API_PORT')}/api/v2/variables/{VARIABLE}", headers=bearer(stack), timeout=30
    )
    assert response.status_code == 200, response.text
    assert response.json()["value"] == restored["secret"], "the restored variable does not decrypt"


def test_restored_stack_runs_new_dag_runs(stack: IntegrationStack, restored: dict) -> None:
    api = AirflowApi(
        stack.url("AIRFLOW_API_PORT"), stack.env["AIRFLOW_ADMIN_USER"], stack.env["AIRFLOW_ADMIN_PASSWORD"]
    )
    run_id = api.trigger("smoke_mapped", {"count": 2, "sleep_seconds": 0})
    assert api.wait_for_run("smoke_mapped", run_id, timeout=300) == "success", restored["restore_log"]


def test_restore_refuses_bad_files_before_touching_the_stack(
    stack: IntegrationStack, restored: dict, tmp_path: Path
) -> None:
    """Missing, empty, not a dump, corrupt header, a real dump cut short: refused with a clear
    message, nothing stopped."""
    (airflow_dump,) = sorted(restored["backup_dir"].glob("airflow-*.dump"))
    truncated = tmp_path / "truncated.dump"
    truncated.write_bytes(airflow_dump.read_bytes()[:-100])  # its table of contents still lists
    text = tmp_path / "notes.dump"
    text.write_text("not a dump\n")
    empty = tmp_path / "empty.dump"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.dump"
    corrupt.write_bytes(b"PGDMP" + bytes(range(256)) * 4)
    cases = {
        str(tmp_path / "missing.dump"): "no such file",
        str(empty): "empty file",
        str(text): "not a pg_dump custom-format archive",
        str(corrupt): "pg_restore cannot read it",
        str(truncated): r"cannot read it to the end \(truncated\?\): pg_restore: error: ",
    }
    before = {c.name: c.attrs["State"]["StartedAt"] for c in stack.containers("airflow-scheduler")}
    for path, message in cases.items():
        with pytest.raises(AssertionError, match=message):
            run_script(stack, restored["backup_dir"], "scripts/restore.sh", path, timeout=120)
    after = {c.name: c.attrs["State"]["StartedAt"] for c in stack.containers("airflow-scheduler")}
    assert after == before, "a refused restore stopped or restarted the schedulers"
