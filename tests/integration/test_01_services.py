"""Every service of the stack comes up healthy, with two schedulers, and Airflow says so too."""

from __future__ import annotations

import pytest
import requests

from stackkit.containers import health
from tests.integration.testbed import IntegrationStack

LONG_RUNNING = [
    "postgres",
    "redis",
    "pgbouncer",
    "statsd-exporter",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "flower",
    "worker-capacity",
    "prometheus",
    "webhook-receiver",
    "postgres-exporter",
    "redis-exporter",
    "pgbouncer-exporter",
    "alertmanager",
    "db-backup",
    "cadvisor",
    "node-exporter",
]


def test_every_long_running_service_is_healthy(stack: IntegrationStack) -> None:
    services = LONG_RUNNING + (["grafana"] if stack.with_grafana else [])
    for service in services:
        containers = stack.containers(service)
        assert containers, f"{service} is not running"
        for container in containers:
            status = health(container)
            assert status == "healthy", f"{container.name} is {status}"


def test_init_ran_once_and_exited_cleanly(stack: IntegrationStack) -> None:
    (init,) = stack.containers("airflow-init", include_stopped=True)
    assert init.attrs["State"]["Status"] == "exited"
    assert init.attrs["State"]["ExitCode"] == 0


def test_two_schedulers_are_running_and_heartbeating(stack: IntegrationStack) -> None:
    assert len(stack.containers("airflow-scheduler")) == 2
    hostnames = {c.attrs["Config"]["Hostname"] for c in stack.containers("airflow-scheduler")}
    rows = stack.sql(
        "SELECT hostname FROM job WHERE job_type = 'SchedulerJob' AND state = 'running' "
        "AND latest_heartbeat > now() - interval '60 seconds'"
    )
    assert hostnames <= {row[0] for row in rows}, f"live scheduler jobs: {rows}, containers: {hostnames}"


@pytest.mark.parametrize(
    ("service", "job_type", "threshold_variable"),
    [
        ("airflow-triggerer", "TriggererJob", "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD"),
        ("airflow-dag-processor", "DagProcessorJob", "AIRFLOW__DAG_PROCESSOR__HEALTH_CHECK_THRESHOLD"),
    ],
)
def test_the_job_health_probe_agrees_with_airflow_jobs_check(
    stack: IntegrationStack, service: str, job_type: str, threshold_variable: str
) -> None:
    """scripts/job_health.py (the Docker health check) says what `airflow jobs check` says, alive
    and not: with a zero threshold no heartbeat is young enough, and another job type has no row of
    this host."""
    container = stack.container(service)
    other = next(other for other in ("TriggererJob", "DagProcessorJob") if other != job_type)
    cases = [({}, job_type, 0), ({threshold_variable: "0"}, job_type, 1), ({}, other, 1)]
    for environment, checked, expected in cases:
        code, out = container.exec_run(
            ["python", "/opt/airflow/scripts/job_health.py", checked], environment=environment
        )
        assert code == expected, f"probe {checked} {environment}: {out.decode()}"
        if checked == job_type:  # the CLI costs ~2 s of CPU a call
            cli = f'airflow jobs check --job-type {checked} --hostname "$HOSTNAME"'
            cli_code, cli_out = container.exec_run(["sh", "-c", cli], environment=environment)
            assert (cli_code == 0) == (code == 0), f"{cli} {environment}: {cli_out.decode()}"


def test_airflow_reports_every_component_healthy(stack: IntegrationStack) -> None:
    report = requests.get(f"{stack.url('AIRFLOW_API_PORT')}/api/v2/monitor/health", timeout=30).json()
    for component in ("metadatabase", "scheduler", "triggerer", "dag_processor"):
        assert report[component]["status"] == "healthy", report


def test_only_the_uis_are_published_and_on_localhost(stack: IntegrationStack) -> None:
    published = {}
    for container in stack.containers():
        for port, bindings in (container.attrs["NetworkSettings"]["Ports"] or {}).items():
            for binding in bindings or []:
                published[f"{container.labels['com.docker.compose.service']}:{port}"] = binding["HostIp"]
    expected = {"airflow-apiserver:8080/tcp", "flower:5555/tcp"} | (
        {"grafana:3000/tcp"} if stack.with_grafana else set()
    )
    assert set(published) == expected
    assert set(published.values()) == {"127.0.0.1"}


def test_flower_refuses_anonymous_and_accepts_its_user(stack: IntegrationStack) -> None:
    url = f"{stack.url('FLOWER_PORT')}/api/workers"
    assert requests.get(url, timeout=30).status_code == 401
    auth = (stack.env["FLOWER_USER"], stack.env["FLOWER_PASSWORD"])
    assert requests.get(url, auth=auth, timeout=30).status_code == 200
