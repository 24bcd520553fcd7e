"""Scaling workers adds task capacity, with no config change: the worker-capacity service sizes
default_pool to the summed slots of the live workers. 1 -> 3 workers: the three join Flower and answer
`celery inspect ping`, a mapped run of sleeping tasks runs 48 at once spread over them, and Postgres
server connections stay within PgBouncer's pool meanwhile; 3 -> 1 during that run brings capacity back
to 16 with no task failed or left queued, and the logs of the tasks that ran on the removed workers stay
readable. On one worker, tasks beyond its slots wait in the scheduler, never in the broker: the burst of
test_14. A killed worker's capacity: test_12."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests

from stackkit import REPO
from stackkit.airflow_api import AirflowApi
from stackkit.sql import bind
from tests.integration.faults import DAG, SLOTS, Workload, celery_inspect, hostname, on, wait_until
from tests.integration.testbed import IntegrationStack

WORKERS = 3
TASKS = 64  # more than 3 workers' 48 slots, so the scale-down happens with work still to start
# I/O-bound: each task only sleeps. Long enough for all 48 to start before the first ends (the first 48
# started within 6 s of each other) and for the tests between to run before the scale-down, which needs
# tasks still running on the workers it removes.
SLEEP = 25
CONFIRM = 30  # scripts/worker_capacity.py --confirm: a lost worker's slots go after this


def capacity_metric(stack: IntegrationStack) -> float:
    (sample,) = stack.prometheus.query('airflow_capacity_target_slots{queue="default"}')
    return float(sample["value"][1])


def pgbouncer_setting(name: str) -> int:
    text = (REPO / "config" / "pgbouncer.ini").read_text()
    match = re.search(rf"^{name}\s*=\s*(\d+)", text, re.MULTILINE)
    assert match, f"{name} not set in config/pgbouncer.ini"
    return int(match.group(1))


@dataclass
class ScaledRun:
    """The run on three workers, with what was sampled every 2 s until 48 of its tasks ran at once:
    the most running at once, Postgres' client backends and PgBouncer's clients."""

    workload: Workload
    peak: int = 0
    backends: list[int] = field(default_factory=list)
    pooled_clients: list[int] = field(default_factory=list)

    def sample(self, stack: IntegrationStack) -> None:
        self.peak = max(self.peak, len(self.workload.running_work()))
        (row,) = stack.sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = 'airflow' "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
        self.backends.append(int(row[0]))
        pools = stack.pgbouncer_show("POOLS")
        self.pooled_clients.append(sum(int(p["cl_active"]) + int(p["cl_waiting"]) for p in pools))


@pytest.fixture(scope="module")
def scaled_run(stack: IntegrationStack, api: AirflowApi) -> Iterator[ScaledRun]:
    """Three workers, then a run of 64 sleeping tasks, sampled until 48 run at once (and 5 samples)."""
    wait_until(lambda: stack.pool_slots() == SLOTS, 60, "default_pool at one worker's 16 slots")
    stack.scale_workers(WORKERS)
    try:
        wait_until(lambda: stack.pool_slots() == SLOTS * WORKERS, 60, "default_pool to follow 3 workers")
        run = ScaledRun(Workload.start(stack, api, count=TASKS, sleep_seconds=SLEEP))
        deadline = time.monotonic() + 180
        while (run.peak < SLOTS * WORKERS or len(run.backends) < 5) and time.monotonic() < deadline:
            run.sample(stack)  # the peak is asserted in the tests
            time.sleep(2)
        yield run
    finally:
        stack.scale_workers(1)


def worker_hostnames(stack: IntegrationStack) -> set[str]:
    return {hostname(c) for c in stack.containers("airflow-worker")}


def test_three_workers_are_seen_by_flower(stack: IntegrationStack, scaled_run: ScaledRun) -> None:
    auth = (stack.env["FLOWER_USER"], stack.env["FLOWER_PASSWORD"])
    hostnames = {f"celery@{name}" for name in worker_hostnames(stack)}
    assert len(hostnames) == WORKERS

    def seen() -> set[str]:
        url = f"{stack.url('FLOWER_PORT')}/api/workers"
        return set(requests.get(url, params={"refresh": "true"}, auth=auth, timeout=60).json())

    wait_until(lambda: hostnames <= seen(), 120, "Flower to list the three workers", every=5)


def test_three_workers_answer_celery_ping(stack: IntegrationStack, scaled_run: ScaledRun) -> None:
    out = celery_inspect(stack, "ping")
    for name in worker_hostnames(stack):
        assert f"celery@{name}: OK" in out, out


def test_three_workers_run_48_tasks_at_once_with_no_config_change(
    stack: IntegrationStack, scaled_run: ScaledRun
) -> None:
    peak = scaled_run.peak
    assert peak >= 0.9 * SLOTS * WORKERS, f"at most {peak} of {SLOTS * WORKERS} tasks ran at once"
    wait_until(lambda: capacity_metric(stack) == SLOTS * WORKERS, 60, "the capacity metric to say 48")


def test_postgres_connections_stay_within_pgbouncer_pool(scaled_run: ScaledRun) -> None:
    backends, clients = scaled_run.backends, scaled_run.pooled_clients
    ceiling = pgbouncer_setting("max_db_connections")
    assert max(backends) <= ceiling, f"Postgres client backends peaked at {max(backends)} > {ceiling}"
    # The pool is doing its job: more clients talk to PgBouncer than Postgres has backends.
    assert max(clients) > max(backends), (
        f"PgBouncer clients {max(clients)}, Postgres backends {max(backends)}"
    )


def test_scaling_down_mid_run_returns_capacity_and_fails_nothing(
    stack: IntegrationStack, scaled_run: ScaledRun
) -> None:
    """Compose stops the highest-numbered replicas with SIGTERM: a warm shutdown, in which the removed
    workers finish the tasks they run (none cut off and run again) and take no new one."""
    workload = scaled_run.workload
    first, *removed = stack.containers("airflow-worker")
    running_on_removed = [r for r in workload.running_work() if any(on(c, r.hostname) for c in removed)]
    assert running_on_removed, "no task ran on a worker the scale-down removes: nothing to test"
    scaled_at = stack.sql("SELECT now()")[0][0]
    stack.scale_workers(1)
    assert [c.id for c in stack.containers("airflow-worker")] == [first.id]
    wait_until(lambda: stack.pool_slots() == SLOTS, CONFIRM + 30, "default_pool back to 16")
    rows = workload.assert_nothing_lost(timeout=600)  # all succeeded; none re-queued as stuck
    assert {r.try_number for r in rows if r.task_id == "work"} == {1}, "a task failed or ran twice"
    assert any(on(c, host) for c in removed for host in workload.work_ended_after(scaled_at)), (
        "no task of a removed worker was still running when it got SIGTERM: warm shutdown was not tested"
    )
    left = stack.sql(
        bind(
            "SELECT count(*) FROM task_instance WHERE run_id = {run} AND state = 'queued'",
            run=workload.run_id,
        )
    )
    assert left == [["0"]]


def test_tasks_spread_over_the_workers_and_their_logs_outlive_them(
    stack: IntegrationStack, api: AirflowApi, scaled_run: ScaledRun
) -> None:
    """After the scale-down (the test above), every task that ran on a removed worker still has its log,
    served through the API from the shared log volume."""
    workload = scaled_run.workload
    assert workload.wait_finished(timeout=600) == "success", workload.states()
    tis = [ti for ti in api.task_instances(DAG, workload.run_id) if ti.task_id == "work"]
    assert len({ti.hostname for ti in tis}) == WORKERS, (
        f"the tasks ran on {sorted({ti.hostname for ti in tis})}"
    )
    on_removed = [ti for ti in tis if ti.hostname not in worker_hostnames(stack)]
    assert on_removed, "no task ran on a removed worker"
    for ti in on_removed:
        log = api.log(ti)
        assert f"item {ti.map_index} done on worker {ti.hostname}" in log, log[-500:]
