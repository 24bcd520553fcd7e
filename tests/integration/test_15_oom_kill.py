"""A task that outgrows its worker's memory limit is killed alone, and the alert names the worker: the
test DAG memory_hog (tests/integration/dags) allocates until the kernel's OOM killer ends its process at
the test stack's worker limit (compose.test.yml: 2 GiB); the task fails, the worker container lives on
(same container, not restarted), cAdvisor counts the kill for that container, and ContainerOOMKilled fires
in Prometheus labelled with the worker's container name and compose service, and reaches the local
webhook receiver through Alertmanager."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from stackkit.airflow_api import AirflowApi
from stackkit.containers import health
from tests.integration.testbed import PROJECT, IntegrationStack

DAG_ID = "memory_hog"
DAG_SOURCE = Path(__file__).resolve().parent / "dags" / "memory_hog.py"
DAG_COPY_NAME = "zz_memory_hog_by_tests.py"
ALERT = "ContainerOOMKilled"
WORKERS = f'job="cadvisor", compose_project="{PROJECT}", compose_service="airflow-worker"'
OOM_EVENTS = f"container_oom_events_total{{{WORKERS}}}"


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(5)


def oom_counts(stack: IntegrationStack) -> dict[str, float]:
    """cAdvisor's OOM kill count per worker container of the test stack, as Prometheus last scraped it."""
    return {s["metric"]["container"]: float(s["value"][1]) for s in stack.prometheus.query(OOM_EVENTS)}


def worker_oom_alerts(stack: IntegrationStack, state: str) -> list[dict]:
    return [
        alert
        for alert in stack.prometheus.alerts()
        if alert["labels"]["alertname"] == ALERT
        and alert["labels"].get("compose_project") == PROJECT
        and alert["labels"].get("compose_service") == "airflow-worker"
        and alert["state"] == state
    ]


def delivered(stack: IntegrationStack) -> list[dict]:
    return [
        alert
        for received in stack.received_alerts()
        if received["path"] == "/alertmanager"
        for alert in received["body"]["alerts"]
        if alert["labels"]["alertname"] == ALERT and alert["status"] == "firing"
    ]


def test_a_task_over_the_worker_memory_limit_is_killed_and_the_alert_names_the_worker(
    stack: IntegrationStack, api: AirflowApi
) -> None:
    workers = {c.name: c for c in stack.containers("airflow-worker")}
    assert workers, "no airflow-worker container"
    for worker in workers.values():
        assert worker.attrs["HostConfig"]["Memory"] > 0, f"{worker.name} has no memory limit"
    restarts = {name: c.attrs["RestartCount"] for name, c in workers.items()}
    ids = {name: c.id for name, c in workers.items()}
    # cAdvisor must already report every worker, with no kill yet: a count that moves is then this test's.
    wait_until(lambda: set(oom_counts(stack)) >= set(workers), 120, "cAdvisor's OOM counter of every worker")
    before = oom_counts(stack)
    assert not worker_oom_alerts(stack, "firing"), "ContainerOOMKilled already fires for a worker"
    stack.exec(
        "webhook-receiver", ["curl", "--fail", "--silent", "-X", "DELETE", "http://127.0.0.1:8080/received"]
    )

    dag_copy = stack.dags_dir / DAG_COPY_NAME
    shutil.copyfile(DAG_SOURCE, dag_copy)
    dag_copy.chmod(0o644)
    try:
        run_id = api.trigger(DAG_ID)
        assert api.wait_for_run(DAG_ID, run_id, timeout=600) == "failed"
        (ti,) = api.task_instances(DAG_ID, run_id)
        assert ti.state is not None
        assert str(ti.state.value) == "failed", ti.state
        log = api.log(ti)
        assert "holding" in log, f"the task never started allocating:\n{log[-2000:]}"
        assert "without being killed" not in log, f"the memory limit did not stop the task:\n{log[-2000:]}"
        killed_on = ti.hostname

        # The kill is counted for exactly the worker the task ran on.
        wait_until(
            lambda: any(oom_counts(stack).get(name, 0) > before.get(name, 0) for name in workers),
            180,
            "cAdvisor to count the OOM kill",
        )
        grown = [name for name in workers if oom_counts(stack).get(name, 0) > before.get(name, 0)]
        assert len(grown) == 1, f"OOM kills counted for {grown}"
        (victim,) = grown
        assert workers[victim].attrs["Config"]["Hostname"] == killed_on, (
            f"counted for {victim}, the task ran on {killed_on}"
        )

        wait_until(lambda: worker_oom_alerts(stack, "firing"), 180, f"{ALERT} to fire")
        (alert,) = worker_oom_alerts(stack, "firing")
        assert alert["labels"]["container"] == victim, alert["labels"]
        assert alert["labels"]["compose_service"] == "airflow-worker", alert["labels"]
        assert victim in alert["annotations"]["summary"], alert["annotations"]
        assert victim in alert["annotations"]["description"], alert["annotations"]
        wait_until(lambda: delivered(stack), 300, f"Alertmanager to deliver {ALERT}")
        assert {a["labels"]["container"] for a in delivered(stack)} == {victim}

        # Killed alone: the worker container is the same one, never restarted, and still healthy.
        for name, container in workers.items():
            container.reload()
            assert container.id == ids[name]
            assert container.attrs["RestartCount"] == restarts[name], f"{name} was restarted"
            assert container.attrs["State"]["Running"], f"{name} is not running"
        wait_until(
            lambda: all(health(c) == "healthy" for c in workers.values()), 120, "the workers to be healthy"
        )
    finally:
        dag_copy.unlink(missing_ok=True)
