"""Faults become alerts, delivered, and clear again: with one of the two schedulers stopped the
degraded-HA alert fires (counted from the metadata database's job table by postgres-exporter) while the
heartbeat alert stays silent, and clears once it is back; with both schedulers stopped the heartbeat
alert fires (and the degraded-HA one does not) and Alertmanager delivers it to the local webhook
receiver; a broken file dropped into dags/ makes the import-error alert fire and arrive; after recovery
both stop firing and the critical one's resolution is delivered too. The last two faults run at once to
keep the suite short."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.integration.testbed import IntegrationStack

HEARTBEAT = "AirflowSchedulerHeartbeatMissing"
IMPORT_ERRORS = "AirflowDagImportErrors"
HA_DEGRADED = "AirflowSchedulerHADegraded"


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
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(10)


def test_one_stopped_scheduler_fires_the_degraded_ha_alert_and_it_clears(stack: IntegrationStack) -> None:
    """Both schedulers have run for minutes, so the expectation the topology sets is 2; with one stopped
    1 is alive, AirflowSchedulerHADegraded fires (for: 1m, after up to 30 s for the stopped one's
    heartbeat to age and a scrape), the all-down alert does not; started again, it clears."""
    first, _ = stack.containers("airflow-scheduler")
    wait_until(
        lambda: schedulers(stack, "max") == 2 and schedulers(stack, "expected") == 2,
        180,
        "2 live and 2 expected schedulers in Prometheus",
    )
    assert HA_DEGRADED not in active(stack)
    first.stop(timeout=30)
    try:
        wait_until(lambda: schedulers(stack, "max") == 1, 120, "1 live scheduler in Prometheus")
        wait_until(lambda: HA_DEGRADED in firing(stack), 240, f"{HA_DEGRADED} to fire")
        (alert,) = [a for a in stack.prometheus.alerts() if a["labels"]["alertname"] == HA_DEGRADED]
        assert alert["labels"]["job_type"] == "SchedulerJob"
        assert alert["labels"]["severity"] == "warning"
        assert float(alert["value"]) == 1
        assert "fewer than 2," in alert["annotations"]["description"]
        assert HEARTBEAT not in active(stack), "one scheduler left is degraded, not down"
    finally:
        first.start()
    wait_until(lambda: HA_DEGRADED not in active(stack), 240, f"{HA_DEGRADED} to clear")
    assert schedulers(stack, "max") == 2


def test_stopped_schedulers_and_a_broken_dag_file_alert_and_recover(stack: IntegrationStack) -> None:
    stack.exec(
        "webhook-receiver", ["curl", "--fail", "--silent", "-X", "DELETE", "http://127.0.0.1:8080/received"]
    )
    broken = stack.dags_dir / "zz_broken_on_purpose_by_tests.py"
    both = stack.containers("airflow-scheduler")
    assert len(both) == 2
    broken.write_text("from airflow.sdk import dag\n\nthis is not python (\n")
    for scheduler in both:
        scheduler.stop(timeout=30)
    try:
        wait_until(lambda: {HEARTBEAT, IMPORT_ERRORS} <= firing(stack), 600, "both alerts to fire")
        # None left is the heartbeat alert's case: the degraded-HA alert stays silent (no live scheduler).
        assert schedulers(stack, "max") == 0
        assert HA_DEGRADED not in firing(stack)
        wait_until(
            lambda: {HEARTBEAT, IMPORT_ERRORS} <= delivered(stack, "firing"),
            300,
            "Alertmanager to deliver both",
        )
    finally:
        broken.unlink(missing_ok=True)
        for scheduler in both:
            scheduler.start()
    wait_until(lambda: not ({HEARTBEAT, IMPORT_ERRORS} & firing(stack)), 600, "both alerts to clear")
    wait_until(lambda: HEARTBEAT in delivered(stack, "resolved"), 300, "the heartbeat alert's resolution")
