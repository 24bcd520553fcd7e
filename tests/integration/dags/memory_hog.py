"""Test DAG of tests/integration/test_15_oom_kill.py, not an example: its one task allocates memory, 64 MiB
at a time and every page written, until the kernel kills it for reaching the worker container's memory
limit (tests/integration/compose.test.yml sets 2 GiB for the test stack). Should it reach CAP_MIB alive,
the limit is not in force, and it fails with a message saying so instead of eating the host.
The test copies this file into the test stack's dags/ while it runs.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

CHUNK_MIB = 64
# Well above the test stack's worker limit (2 GiB), well below what a CI host has.
CAP_MIB = 3072
SURVIVED = "allocated {mib} MiB without being killed: the worker container has no memory limit below that"


@dag(
    dag_id="memory_hog",
    description="Allocates memory until the worker's memory limit kills the task (out of memory).",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["tests"],
    default_args={"owner": "platform", "retries": 0},
)
def memory_hog() -> None:
    @task
    def eat_memory() -> None:
        held = []
        for _ in range(CAP_MIB // CHUNK_MIB):
            # bytes of a repeated byte: written on allocation, so resident (a bare bytearray(n) may not be).
            held.append(b"\xa5" * (CHUNK_MIB * 2**20))
            print(f"holding {len(held) * CHUNK_MIB} MiB", flush=True)
        raise RuntimeError(SURVIVED.format(mib=len(held) * CHUNK_MIB))

    eat_memory()


memory_hog()
