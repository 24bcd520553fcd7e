"""Faults become alerts, delivered, and clear again: with both schedulers stopped the heartbeat alert
fires and Alertmanager delivers it to the local webhook receiver; a broken file dropped into dags/
makes the import-error alert fire and arrive; after recovery both stop firing and the critical one's
resolution is delivered too. Both faults run at once to keep the suite short."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.integration.stack import Stack

HEARTBEAT = "AirflowSchedulerHeartbeatMissing"
IMPORT_ERRORS = "AirflowDagImportErrors"


def firing(stack: Stack) -> set[str]:
    return {a["labels"]["alertname"] for a in stack.alerts() if a["state"] == "firing"}


def delivered(stack: Stack, status: str) -> set[str]:
    """Alert names Alertmanager has posted to the local receiver with this status."""
    return {
        alert["labels"]["alertname"]
        for received in stack.received_alerts()
        if received["path"] == "/alertmanager"
        for alert in received["body"]["alerts"]
        if alert["status"] == status
    }


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(10)


def test_stopped_schedulers_and_a_broken_dag_file_alert_and_recover(stack: Stack) -> None:
    stack.exec(
        "webhook-receiver", ["curl", "--fail", "--silent", "-X", "DELETE", "http://127.0.0.1:8080/received"]
    )
    broken = stack.dags_dir / "zz_broken_on_purpose_by_tests.py"
    schedulers = stack.containers("airflow-scheduler")
    assert len(schedulers) == 2
    broken.write_text("from airflow.sdk import dag\n\nthis is not python (\n")
    for scheduler in schedulers:
        scheduler.stop(timeout=30)
    try:
        wait_until(lambda: {HEARTBEAT, IMPORT_ERRORS} <= firing(stack), 600, "both alerts to fire")
        wait_until(
            lambda: {HEARTBEAT, IMPORT_ERRORS} <= delivered(stack, "firing"),
            300,
            "Alertmanager to deliver both",
        )
    finally:
        broken.unlink(missing_ok=True)
        for scheduler in schedulers:
            scheduler.start()
    wait_until(lambda: not ({HEARTBEAT, IMPORT_ERRORS} & firing(stack)), 600, "both alerts to clear")
    wait_until(lambda: HEARTBEAT in delivered(stack, "resolved"), 300, "the heartbeat alert's resolution")
