"""Scaling workers: three workers join Flower and answer `celery inspect ping`, tasks spread over
them, Postgres server connections stay within PgBouncer's pool meanwhile, and after scaling back
down the logs of tasks that ran on the removed workers are still readable."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from stackkit import REPO
from stackkit.airflow_api import AirflowApi
from tests.integration.testbed import IntegrationStack

DAG = "smoke_mapped"
WORKERS = 3


def pgbouncer_setting(name: str) -> int:
    text = (REPO / "config" / "pgbouncer.ini").read_text()
    match = re.search(rf"^{name}\s*=\s*(\d+)", text, re.MULTILINE)
    assert match, f"{name} not set in config/pgbouncer.ini"
    return int(match.group(1))


@pytest.fixture(scope="module")
def three_workers(stack: IntegrationStack) -> Iterator[IntegrationStack]:
    """Three workers for this module; one again after it, even if a test failed before scaling down."""
    stack.scale_workers(WORKERS)
    try:
        yield stack
    finally:
        stack.scale_workers(1)


@pytest.fixture(scope="module")
def spread_run(three_workers: IntegrationStack, api: AirflowApi) -> dict:
    """One run of 30 two-second tasks on three workers, sampling Postgres connections meanwhile."""
    samples: list[int] = []
    pool_samples: list[dict[str, int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            (row,) = three_workers.sql(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = 'airflow' "
                "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
            )
            samples.append(int(row[0]))
            clients = sum(
                int(p["cl_active"]) + int(p["cl_waiting"]) for p in three_workers.pgbouncer_show("POOLS")
            )
            pool_samples.append({"clients": clients})
            time.sleep(1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    run_id = api.trigger(DAG, {"count": 30, "sleep_seconds": 2})
    state = api.wait_for_run(DAG, run_id, timeout=900)
    done.set()
    sampler.join(timeout=30)
    return {"run_id": run_id, "state": state, "samples": samples, "pool_samples": pool_samples}


def test_three_workers_are_seen_by_flower(three_workers: IntegrationStack) -> None:
    auth = (three_workers.env["FLOWER_USER"], three_workers.env["FLOWER_PASSWORD"])
    deadline = time.monotonic() + 120
    while True:
        workers = requests.get(
            f"{three_workers.url('FLOWER_PORT')}/api/workers",
            params={"refresh": "true"},
            auth=auth,
            timeout=60,
        ).json()
        if len(workers) >= WORKERS or time.monotonic() > deadline:
            break
        time.sleep(5)
    hostnames = {
        f"celery@{c.attrs['Config']['Hostname']}" for c in three_workers.containers("airflow-worker")
    }
    assert len(hostnames) == WORKERS
    assert hostnames <= set(workers), f"flower sees {sorted(workers)}"


def test_three_workers_answer_celery_ping(three_workers: IntegrationStack) -> None:
    out = three_workers.exec(
        "airflow-worker",
        [
            "celery",
            "--app",
            "airflow.providers.celery.executors.celery_executor.app",
            "inspect",
            "ping",
            "--timeout",
            "10",
        ],
    )
    hostnames = {c.attrs["Config"]["Hostname"] for c in three_workers.containers("airflow-worker")}
    for hostname in hostnames:
        assert f"celery@{hostname}: OK" in out, out


def test_tasks_spread_over_several_workers(spread_run: dict, api: AirflowApi) -> None:
    assert spread_run["state"] == "success"
    hosts = {ti.hostname for ti in api.task_instances(DAG, spread_run["run_id"]) if ti.task_id == "work"}
    assert len(hosts) > 1, f"every task ran on {hosts}"


def test_postgres_connections_stay_within_pgbouncer_pool(spread_run: dict) -> None:
    samples, pool_samples = spread_run["samples"], spread_run["pool_samples"]
    assert len(samples) >= 5, "too few samples taken during the run"
    ceiling = pgbouncer_setting("max_db_connections")
    assert max(samples) <= ceiling, f"Postgres client backends peaked at {max(samples)} > {ceiling}"
    # The pool is doing its job: more clients talk to PgBouncer than Postgres has backends.
    peak_clients = max(s["clients"] for s in pool_samples)
    assert peak_clients > max(samples), f"PgBouncer clients {peak_clients}, Postgres backends {max(samples)}"


def test_logs_of_removed_workers_stay_readable(
    spread_run: dict, three_workers: IntegrationStack, api: AirflowApi
) -> None:
    tis = [ti for ti in api.task_instances(DAG, spread_run["run_id"]) if ti.task_id == "work"]
    three_workers.scale_workers(1)
    remaining = {c.attrs["Config"]["Hostname"] for c in three_workers.containers("airflow-worker")}
    on_removed = [ti for ti in tis if ti.hostname not in remaining]
    assert on_removed, "no task ran on a removed worker"
    for ti in on_removed:
        log = api.log(ti)
        assert f"item {ti.map_index} done on worker {ti.hostname}" in log, log[-500:]
