"""Faults under load, with nothing lost: while mapped tasks run, a worker is killed, Postgres,
PgBouncer and Redis restart, a worker stops consuming (upstream #63580). A scale-down mid-run: test_03.
Each time the run succeeds and the metadata database holds every task instance it should, in
success, once each (`Workload.assert_nothing_lost`). The burst of 1000 task instances runs in
test_14, under broken DAG files."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest

from stackkit.airflow_api import AirflowApi
from stackkit.containers import health
from tests.integration.faults import (
    CELERY_APP,
    WORKER_PROBE,
    Workload,
    hostname,
    on,
    wait_consuming,
    wait_until,
)
from tests.integration.testbed import IntegrationStack

HEALTH_STATE = "/tmp/airflow-worker-health.json"  # the health check's default --state-file
DATABASE_CLIENTS = ["airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"]


def queue_length(stack: IntegrationStack) -> int:
    """Messages waiting in Celery's `default` list (redis-cli authenticates with REDISCLI_AUTH)."""
    return int(stack.exec("redis", ["redis-cli", "--raw", "LLEN", "default"]).strip())


def blocked_clients(stack: IntegrationStack) -> int:
    info = stack.exec("redis", ["redis-cli", "--raw", "INFO", "clients"])
    found = re.search(r"^blocked_clients:(\d+)", info, re.MULTILINE)
    assert found, f"no blocked_clients in INFO clients: {info}"
    return int(found.group(1))


def broker_state(stack: IntegrationStack) -> str:
    """Every Celery list's length and the unacked count, for an assertion's message."""
    lengths = {
        key: stack.exec("redis", ["redis-cli", "--raw", "LLEN", key]).strip()
        for key in stack.exec("redis", ["redis-cli", "--raw", "--scan", "--pattern", "default*"]).split()
    }
    unacked = stack.exec("redis", ["redis-cli", "--raw", "HLEN", "unacked"]).strip()
    return f"lists {lengths}, unacked {unacked}"


@pytest.fixture
def one_worker_after(stack: IntegrationStack) -> Iterator[None]:
    """Whatever a test does to the workers, the next test starts with one healthy worker. A worker
    unhealthy after a fault is given the time its health check needs to restart it (5 probes)."""
    yield
    for container in stack.containers("airflow-worker", include_stopped=True):
        container.reload()
        if container.status == "paused":
            container.unpause()
        elif container.status != "running":
            container.remove()  # a killed replica: compose starts a fresh one if the count needs it
    for container in stack.containers("airflow-worker"):
        wait_until(lambda c=container: health(c) == "healthy", 300, f"{container.name} to be healthy")
    stack.scale_workers(1)


@pytest.mark.usefixtures("one_worker_after")
def test_a_killed_worker_s_tasks_run_again_and_the_run_succeeds(
    stack: IntegrationStack, api: AirflowApi
) -> None:
    stack.scale_workers(2)
    wait_until(lambda: stack.pool_slots() == 32, 60, "default_pool to follow 2 workers")
    # 12 s each: all 8 are running at once even if their starts spread over a few seconds (on 32 free
    # slots they start within about 2 s).
    workload = Workload.start(stack, api, count=8, sleep_seconds=12)
    # All started, so none is in transit: a message the killed worker had taken but not started would
    # wait in Redis' unacked set and be re-queued only by task_queued_timeout (5 min), not this path.
    running = workload.wait_running(at_least=8)
    victim = next(c for c in stack.containers("airflow-worker") if any(on(c, r.hostname) for r in running))

    victim.kill()  # SIGKILL: no warm shutdown, its task processes die with it
    killed_at = time.monotonic()
    # Read after the kill: its tasks stay `running` in the database until the heartbeat timeout,
    # and none can have ended in the meantime.
    victims_tasks = {r.map_index for r in workload.running_work() if on(victim, r.hostname)}

    # Its slots leave default_pool once worker-capacity has had no answer for 30 s (--confirm),
    # not at the first missed reply (rounds are 10 s apart, so at least 15 s after the kill).
    wait_until(lambda: stack.pool_slots() == 16, 120, "default_pool to drop to the survivor's 16 slots")
    dropped_after = time.monotonic() - killed_at
    assert dropped_after >= 15, f"capacity dropped {dropped_after:.0f} s after the kill: no confirmation"

    rows = workload.assert_nothing_lost(timeout=600)
    rerun = {r.map_index: r.try_number for r in rows if r.task_id == "work" and r.map_index in victims_tasks}
    assert victims_tasks
    assert all(tries >= 2 for tries in rerun.values()), (
        f"the killed worker's tasks {sorted(victims_tasks)} should have run again: tries {rerun}"
    )


def wait_healthy(stack: IntegrationStack, services: list[str], timeout: float = 300) -> None:
    """After a database fault a scheduler may have exited and been restarted: the next test starts
    only when every container of `services` is healthy again."""
    for service in services:
        for container in stack.containers(service):
            wait_until(lambda c=container: health(c) == "healthy", timeout, f"{container.name} to be healthy")


def restart_counts(stack: IntegrationStack) -> dict[str, int]:
    """Docker's restart count of each container of the Airflow services that hold a database session."""
    return {
        container.name: container.attrs["RestartCount"]
        for service in DATABASE_CLIENTS
        for container in stack.containers(service, include_stopped=True)  # one may be restarting
    }


def restart(stack: IntegrationStack, service: str) -> str:
    """Stop SERVICE (it must exit 0 on its stop signal, not be killed at the end of the grace period)
    and start it again; the database's clock just before, once Postgres answers."""
    before = wait_until(lambda: stack.sql("SELECT now()")[0][0], 60, "Postgres to answer")
    container = stack.container(service)
    container.stop(timeout=30)
    container.reload()
    assert container.attrs["State"]["ExitCode"] == 0, (
        f"{service} did not shut down on its stop signal: killed after the grace period"
    )
    container.start()
    return str(before)


def test_postgres_and_pgbouncer_restarts_mid_run_lose_nothing(
    stack: IntegrationStack, api: AirflowApi
) -> None:
    """Postgres, then PgBouncer, stopped and started again while the same tasks run: each shuts down
    on its stop signal, tasks end after each restart, the run loses nothing, and no Airflow service
    crash-loops: each exits at most once per restart, on the transaction it cut. (PgBouncer's default
    server_login_retry of 15 s answered every query with the failed login for 15 s after a 1 s
    Postgres restart: each scheduler, the dag-processor and the triggerer exited three times for the
    Postgres restart alone.) One run for both faults: a run of its own cost ~20 s more."""
    workload = Workload.start(stack, api, count=16, sleep_seconds=12)
    workload.wait_running()
    restarts_before = restart_counts(stack)
    try:
        restarted_at = {service: restart(stack, service) for service in ("postgres", "pgbouncer")}
        workload.assert_nothing_lost(timeout=600)
        for service, moment in restarted_at.items():
            assert workload.work_ended_after(moment), (
                f"every task ended before the {service} restart: no test"
            )
        restarts = {name: count - restarts_before[name] for name, count in restart_counts(stack).items()}
        assert max(restarts.values()) <= len(restarted_at), f"crash loop: restarts {restarts}"
    finally:
        wait_healthy(
            stack, ["postgres", "pgbouncer", "airflow-scheduler", "airflow-apiserver", "airflow-worker"]
        )


@pytest.mark.usefixtures("one_worker_after")
def test_queued_messages_survive_a_redis_restart_and_workers_consume_again(
    stack: IntegrationStack, api: AirflowApi
) -> None:
    """Workers paused first, so that the first task of each of three runs waits in the `default`
    list as a message (paused later, a worker could already hold them all); the list keeps its length
    through the restart, and the unpaused workers run those messages and everything after them."""
    workers = stack.containers("airflow-worker")
    # Paused workers answer no Celery inspect: worker-capacity would take their slots away after
    # 30 s and the runs would wait in the scheduler. This test is about messages in Redis.
    capacity = stack.container("worker-capacity")
    capacity.pause()
    for worker in workers:
        worker.pause()
    try:
        # A worker paused inside its BRPOP (kombu's brpop_timeout, 1 s) would still be handed the next
        # message by Redis, into a frozen socket: trigger only once Redis has no blocked client left.
        wait_until(lambda: blocked_clients(stack) == 0, 30, "the paused workers' BRPOP to time out")
        workloads = [Workload.start(stack, api, count=6, sleep_seconds=1) for _ in range(3)]

        def settled() -> int:
            """The queue length once the scheduler has published all three (same count 3 s apart)."""
            first = queue_length(stack)
            time.sleep(3)
            return first if first >= len(workloads) and queue_length(stack) == first else 0

        queued = wait_until(
            settled,
            180,
            "the three runs' first messages in the Redis queue",
            explain=lambda: "; ".join([broker_state(stack), *(w.states() for w in workloads)]),
        )

        stack.container("redis").restart(timeout=30)

        after = wait_until(lambda: str(queue_length(stack)), 60, "Redis to answer after its restart")
        assert int(after) == queued, "queued messages were lost in the restart"
    finally:
        for worker in workers:
            worker.unpause()
        capacity.unpause()

    for workload in workloads:
        rows = workload.assert_nothing_lost(timeout=600)  # no "stuck in queued" re-queue either
        assert {r.try_number for r in rows} == {1}


@pytest.mark.usefixtures("one_worker_after")
def test_a_worker_that_stops_consuming_is_restarted_by_its_health_check(
    stack: IntegrationStack, api: AirflowApi
) -> None:
    """Upstream #63580: the worker answers pings but takes nothing from its queue. Reproduced by
    cancelling its consumer; the health check says so, and after 5 such probes stops the worker
    (warm shutdown) so the restart policy starts a fresh one that consumes again."""
    worker = stack.container("airflow-worker")
    wait_consuming(stack, timeout=120)  # a healthy verdict before the fault

    stack.exec(
        "airflow-worker",
        [
            "celery",
            "--app",
            CELERY_APP,
            "control",
            "cancel_consumer",
            "default",
            "--destination",
            f"celery@{hostname(worker)}",
            "--timeout",  # the reply; 1 s by default, and a late one is an error (exit 69)
            "10",
        ],
    )
    # Its last BRPOP stays in CLIENT LIST, idle, until --max-idle (10 s) has passed: poll.
    # "consumes no queue at all": the consumer is gone, as after kombu#2629's lost channel.
    wait_until(
        lambda: (v := worker.exec_run(WORKER_PROBE)).exit_code == 1 and b"upstream #63580" in v.output,
        90,
        "the health check to report that the worker does not consume",
    )

    # Four of Docker's own probes have already failed (30 s apart); its next one decides.
    state = json.loads(stack.exec("airflow-worker", ["cat", HEALTH_STATE]))
    state["failures"] = 4
    stack.exec(
        "airflow-worker", ["python", "-c", f"open({HEALTH_STATE!r}, 'w').write({json.dumps(state)!r})"]
    )
    restarts = worker.attrs["RestartCount"]

    def restarted() -> bool:
        worker.reload()
        return worker.attrs["RestartCount"] > restarts and worker.status == "running"

    wait_until(restarted, 180, "Docker's health check to stop the worker and the restart policy to start it")
    wait_consuming(stack, timeout=180)  # the restarted worker consumes again
    Workload.start(stack, api, count=4, sleep_seconds=0).assert_nothing_lost(timeout=300)
