"""High availability: killing a scheduler in the middle of a run still ends the run in success,
and later runs are scheduled by the surviving scheduler alone. After test_09 on purpose: its degraded-HA
alert expects both schedulers to have been alive for the last 2 minutes, which a kill restarts."""

from __future__ import annotations

import time

from stackkit.airflow_api import AirflowApi
from tests.integration.faults import wait_until
from tests.integration.testbed import IntegrationStack

DAG = "smoke_mapped"


def test_run_survives_a_killed_scheduler_and_the_other_carries_on(
    stack: IntegrationStack, api: AirflowApi
) -> None:
    first, second = stack.containers("airflow-scheduler")
    run_id = api.trigger(DAG, {"count": 20, "sleep_seconds": 3})
    deadline = time.monotonic() + 300
    while api.run_state(DAG, run_id) != "running" or not any(
        ti.state is not None and ti.state.value in ("running", "success")
        for ti in api.task_instances(DAG, run_id)
    ):
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(1)

    first.kill()  # SIGKILL: no graceful hand-over
    try:
        assert api.wait_for_run(DAG, run_id, timeout=600) == "success"
        first.reload()
        assert first.status != "running", "the killed scheduler came back during the test"

        later = api.trigger(DAG, {"count": 5, "sleep_seconds": 0})
        assert api.wait_for_run(DAG, later, timeout=300) == "success"
        # The killed scheduler's job row keeps its last heartbeat until it ages past the window; a
        # survivor's loop slowed on 2 busy cores may miss one beat: poll.
        survivor = second.attrs["Config"]["Hostname"]

        def live() -> list[str]:
            return [
                row[0]
                for row in stack.sql(
                    "SELECT hostname FROM job WHERE job_type = 'SchedulerJob' AND state = 'running' "
                    "AND latest_heartbeat > now() - interval '15 seconds'"
                )
            ]

        wait_until(
            lambda: live() == [survivor], 60, f"{survivor} alone to heartbeat", explain=lambda: str(live())
        )
    finally:
        first.start()
