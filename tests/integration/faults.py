"""What the fault tests share: a mapped workload on `smoke_mapped`, read back from the metadata
database (straight to Postgres, never through the API or PgBouncer being faulted), and the count of
its task instances by task and final state, which is how "nothing lost" is judged."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from docker.models.containers import Container

from stackkit.airflow_api import AirflowApi
from stackkit.sql import bind
from tests.integration.testbed import IntegrationStack

DAG = "smoke_mapped"
TERMINAL = {"success", "failed"}
# What the scheduler logs when it re-queues a task instance left in queued past task_queued_timeout
# (airflow/jobs/scheduler_job_runner.py, TASK_STUCK_IN_QUEUED_RESCHEDULE_EVENT): the slow recovery path,
# which keeps try_number as it is, so only this log row tells that a message was lost.
STUCK_IN_QUEUED = "stuck in queued reschedule"
# The Celery app the workers run, for `celery --app ... inspect/control`.
CELERY_APP = "airflow.providers.celery.executors.celery_executor.app"
SLOTS = 16  # [celery] worker_concurrency, Celery's default: one worker's task slots
# scripts/worker_health.py run by hand: "answers a ping AND consumes its queue". A state file of its own
# leaves Docker's count of failed probes alone.
WORKER_PROBE = ["python", "/opt/airflow/scripts/worker_health.py", "--state-file", "/tmp/manual-probe.json"]


def hostname(container: Container) -> str:
    return container.attrs["Config"]["Hostname"]


def on(container: Container, rows_hostname: str) -> bool:
    """Airflow records getfqdn(); the container's hostname is its first label."""
    return rows_hostname.split(".")[0] == hostname(container)


def celery_inspect(stack: IntegrationStack, command: str, *options: str) -> str:
    """`celery inspect COMMAND` addressed to every worker container by name, run in one of them: it
    returns as soon as each has answered (kombu stops at as many replies as destinations), not after
    the whole --timeout, which is what it waits for a worker that does not answer."""
    nodes = ",".join(f"celery@{hostname(c)}" for c in stack.containers("airflow-worker"))
    return stack.exec(
        "airflow-worker",
        [
            "celery",
            "--app",
            CELERY_APP,
            "inspect",
            command,
            *options,
            "--timeout",
            "10",
            "--destination",
            nodes,
        ],
    )


def wait_until(
    condition: Callable[[], object],
    timeout: float,
    what: str,
    every: float = 1.0,
    explain: Callable[[], str] | None = None,
) -> object:
    """Poll until `condition()` is truthy; errors while a part restarts count as "not yet".
    On a timeout, `explain()` adds what the stack looked like then."""
    started = time.monotonic()
    deadline = started + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception as error:  # a restarting service answers with any error
            last_error, value = error, None
        if value:
            print(f"waited {time.monotonic() - started:5.1f} s for {what}")  # shown with -s or on failure
            return value
        time.sleep(every)
    seen = f"; seen: {explain()}" if explain else ""
    raise AssertionError(
        f"timed out after {timeout:.0f} s waiting for {what} (last error: {last_error}){seen}"
    )


def wait_consuming(stack: IntegrationStack, timeout: float = 300) -> None:
    """Every worker consumes its queue again. After Redis was restarted or recreated a worker can
    answer pings without consuming (upstream #63580) until its health check restarts it (5 probes)."""
    for worker in stack.containers("airflow-worker"):
        wait_until(
            lambda w=worker: w.exec_run(WORKER_PROBE).exit_code == 0, timeout, f"{worker.name} to consume"
        )


@dataclass(frozen=True)
class TaskRow:
    task_id: str
    map_index: int
    state: str | None
    try_number: int
    hostname: str


@dataclass(frozen=True)
class Workload:
    """One run of smoke_mapped: `count` mapped `work` tasks of `sleep_seconds` each."""

    stack: IntegrationStack
    run_id: str
    count: int

    @classmethod
    def start(cls, stack: IntegrationStack, api: AirflowApi, count: int, sleep_seconds: float) -> Workload:
        run_id = api.trigger(DAG, {"count": count, "sleep_seconds": sleep_seconds})
        return cls(stack, run_id, count)

    def rows(self) -> list[TaskRow]:
        found = self.stack.sql(
            bind(
                "SELECT task_id, map_index, coalesce(state, ''), try_number, coalesce(hostname, '') "
                "FROM task_instance WHERE dag_id = {dag} AND run_id = {run}",
                dag=DAG,
                run=self.run_id,
            )
        )
        return [TaskRow(t, int(m), s or None, int(n), h) for t, m, s, n, h in found]

    def states(self) -> str:
        """The run's state and its task instances by (task, state), for an assertion's message."""
        by_task_state = Counter((row.task_id, row.state) for row in self.rows())
        return f"run {self.run_id}: {self.run_state()}, task instances {dict(by_task_state)}"

    def running_work(self) -> list[TaskRow]:
        return [row for row in self.rows() if row.task_id == "work" and row.state == "running"]

    def wait_running(self, at_least: int = 1, timeout: float = 300) -> list[TaskRow]:
        found = wait_until(
            lambda: (running := self.running_work()) and len(running) >= at_least and running,
            timeout,
            f"{at_least} mapped task(s) of {self.run_id} running",
        )
        return found  # type: ignore[return-value]

    def run_state(self) -> str:
        rows = self.stack.sql(
            bind(
                "SELECT state FROM dag_run WHERE dag_id = {dag} AND run_id = {run}", dag=DAG, run=self.run_id
            )
        )
        return rows[0][0] if rows else ""

    def in_flight(self) -> int:
        """Its mapped tasks queued or running now: what holds a slot of default_pool."""
        (row,) = self.stack.sql(
            bind(
                "SELECT count(*) FROM task_instance WHERE dag_id = {dag} AND run_id = {run} "
                "AND task_id = 'work' AND state IN ('queued', 'running')",
                dag=DAG,
                run=self.run_id,
            )
        )
        return int(row[0])

    def wait_finished(self, timeout: float) -> str:
        return wait_until(
            lambda: (state := self.run_state()) in TERMINAL and state,
            timeout,
            f"run {self.run_id} to finish",
        )  # type: ignore[return-value]

    def requeued_as_stuck(self) -> int:
        rows = self.stack.sql(
            bind(
                "SELECT count(*) FROM log WHERE event = {event} AND dag_id = {dag} AND run_id = {run}",
                event=STUCK_IN_QUEUED,
                dag=DAG,
                run=self.run_id,
            )
        )
        return int(rows[0][0])

    def work_ended_after(self, moment: str) -> list[str]:
        """Hostnames of the mapped tasks that ended after `moment` (a database timestamp)."""
        rows = self.stack.sql(
            bind(
                "SELECT coalesce(hostname, '') FROM task_instance WHERE dag_id = {dag} "
                "AND run_id = {run} AND task_id = 'work' AND end_date > {moment}",
                dag=DAG,
                run=self.run_id,
                moment=moment,
            )
        )
        return [row[0] for row in rows]

    def assert_nothing_lost(self, timeout: float = 600) -> list[TaskRow]:
        """The run succeeded, every task instance it should have did, once each, and none needed
        the scheduler's stuck-in-queued re-queue (task_queued_timeout) to get there."""
        state = self.wait_finished(timeout)
        rows = self.rows()
        by_task_state = Counter((row.task_id, row.state) for row in rows)
        expected = Counter(
            {("plan", "success"): 1, ("work", "success"): self.count, ("gather", "success"): 1}
        )
        assert (state, by_task_state) == ("success", expected), self.states()
        indexes = sorted(row.map_index for row in rows if row.task_id == "work")
        assert indexes == list(range(self.count)), "a mapped index is missing or doubled"
        requeued = self.requeued_as_stuck()
        assert requeued == 0, f"{requeued} task instance(s) lost in transit, re-queued by task_queued_timeout"
        return rows
