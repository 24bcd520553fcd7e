"""Airflow's statsd metrics reach Prometheus through statsd_exporter, labelled: scheduler
heartbeats, and task finishes per dag_id and state (the runs of the earlier tests produced them)."""

from __future__ import annotations

from tests.integration.testbed import IntegrationStack


def test_scheduler_heartbeat_reaches_prometheus(stack: IntegrationStack) -> None:
    result = stack.prometheus.wait_for_series("sum(rate(airflow_scheduler_heartbeat[1m])) > 0")
    assert result, "no scheduler heartbeat rate in Prometheus"


def test_task_finishes_are_labelled_by_dag_and_state(stack: IntegrationStack) -> None:
    result = stack.prometheus.wait_for_series(
        'sum by (dag_id, state) (airflow_ti_finish{dag_id="smoke_mapped"})'
    )
    by_state = {series["metric"]["state"]: float(series["value"][1]) for series in result}
    assert by_state.get("success", 0) >= 20, f"task finishes by state: {by_state}"


def test_every_scrape_target_is_up(stack: IntegrationStack) -> None:
    result = stack.prometheus.wait_for_series("up == 0", timeout=0)
    down = [series["metric"]["job"] for series in result]
    assert not down, f"scrape targets down: {down}"
    jobs = {series["metric"]["job"] for series in stack.prometheus.query("up == 1")}
    expected = {
        "prometheus",
        "airflow-statsd",
        "flower",
        "worker-capacity",
        "postgres-exporter",
        "redis-exporter",
        "pgbouncer-exporter",
        "alertmanager",
    }
    assert expected <= jobs, jobs
