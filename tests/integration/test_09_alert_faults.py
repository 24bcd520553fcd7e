"""Faults become alerts, delivered, and clear again, in one sequence so the waits overlap: a broken file
dropped into dags/ makes the import-error alert fire; one of the two schedulers stopped makes the
degraded-HA alert fire (counted from the metadata database's job table by postgres-exporter) while the
heartbeat alert stays silent; both stopped, the heartbeat alert fires instead of the degraded-HA one;
Alertmanager delivers it and the import-error alert to the local webhook receiver; after recovery every
alert stops firing and the heartbeat alert's resolution is delivered too. The test stack's copies of
these three rules wait a sixth of production's `for:` and windows (tests/integration/testbed.py,
FAST_ALERTS); promtool's rule tests hold the production ones."""

from __future__ import annotations

from collections.abc import Callable

from tests.integration import faults
from tests.integration.testbed import IntegrationStack

HEARTBEAT = "AirflowSchedulerHeartbeatMissing"
IMPORT_ERRORS = "AirflowDagImportErrors"
HA_DEGRADED = "AirflowSchedulerHADegraded"
BROKEN = "from airflow.sdk import dag\n\nthis is not python (\n"
FIXED = "from airflow.sdk import dag  # fixed: no DAG here, and no import error\n"


def firing(stack: IntegrationStack) -> set[str]:
    return {a["labels"]["alertname"] for a in stack.prometheus.alerts() if a["state"] == "firing"}


def active(stack: IntegrationStack) -> set[str]:
    """Alert names pending or firing."""
    return {a["labels"]["alertname"] for a in stack.prometheus.alerts()}


def schedulers(stack: IntegrationStack, record: str) -> float | None:
    """A recorded per-job-type series for the schedulers: `max` (live now) or `expected`."""
    result = stack.prometheus.query(f'job_type:airflow_jobs_live:{record}{{job_type="SchedulerJob"}}')
    return float(result[0]["value"][1]) if result else None


def delivered(stack: IntegrationStack, status: str) -> set[str]:
    """Alert names Alertmanager has posted to the local receiver with this status."""
    return {
        alert["labels"]["alertname"]
        for received in stack.received_alerts()
        if received["path"] == "/alertmanager"
        for alert in received["body"]["alerts"]
        if alert["status"] == status
    }


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Polled every 2 s: the test stack's Prometheus evaluates every 5 s."""
    faults.wait_until(condition, timeout, what, every=2)


def test_stopped_schedulers_and_a_broken_dag_file_alert_and_recover(stack: IntegrationStack) -> None:
    """Both schedulers have run for minutes, so the expectation the topology sets is 2. A broken DAG file
    and one scheduler stopped: 1 is alive, AirflowSchedulerHADegraded fires (its `for:`, after up to 30 s
    for the stopped one's heartbeat to age) and the import-error alert too, the all-down alert does not.
    The second one stopped: the heartbeat alert fires and the degraded-HA one stops (none left is the
    heartbeat alert's case), and Alertmanager delivers both firing ones. Both started and the file
    fixed: every alert clears and the heartbeat alert's resolution is delivered."""
    stack.exec(
        "webhook-receiver", ["curl", "--fail", "--silent", "-X", "DELETE", "http://127.0.0.1:8080/received"]
    )
    broken = stack.dags_dir / "zz_broken_on_purpose_by_tests.py"
    first, second = stack.containers("airflow-scheduler")
    wait_until(
        lambda: schedulers(stack, "max") == 2 and schedulers(stack, "expected") == 2,
        180,
        "2 live and 2 expected schedulers in Prometheus",
    )
    assert not {HA_DEGRADED, HEARTBEAT, IMPORT_ERRORS} & active(stack)
    broken.write_text(BROKEN)
    first.stop(timeout=30)
    try:
        wait_until(
            lambda: {HA_DEGRADED, IMPORT_ERRORS} <= firing(stack), 300, f"{HA_DEGRADED} and {IMPORT_ERRORS}"
        )
        assert schedulers(stack, "max") == 1
        (alert,) = [a for a in stack.prometheus.alerts() if a["labels"]["alertname"] == HA_DEGRADED]
        assert alert["labels"]["job_type"] == "SchedulerJob"
        assert alert["labels"]["severity"] == "warning"
        assert float(alert["value"]) == 1
        assert "fewer than 2," in alert["annotations"]["description"]
        assert HEARTBEAT not in active(stack), "one scheduler left is degraded, not down"

        second.stop(timeout=30)
        wait_until(lambda: HEARTBEAT in firing(stack), 300, f"{HEARTBEAT} to fire")
        assert schedulers(stack, "max") == 0
        assert HA_DEGRADED not in active(stack), "none left is the heartbeat alert's case"
        wait_until(
            lambda: {HEARTBEAT, IMPORT_ERRORS} <= delivered(stack, "firing"),
            300,
            "Alertmanager to deliver both",
        )
    finally:
        # Fixed, as a user would: a changed file is parsed again at once ([dag_processor]
        # file_parsing_sort_mode modified_time), and the import-error gauge is sent after that parse.
        # A deleted one would only leave the count at the end of a later parse loop, up to
        # min_file_process_interval (3 min) away.
        broken.write_text(FIXED)
        for scheduler in (first, second):
            scheduler.start()
    wait_until(
        lambda: not ({HA_DEGRADED, HEARTBEAT, IMPORT_ERRORS} & active(stack)), 600, "every alert to clear"
    )
    assert schedulers(stack, "max") == 2
    wait_until(lambda: HEARTBEAT in delivered(stack, "resolved"), 300, "the heartbeat alert's resolution")
    broken.unlink()
