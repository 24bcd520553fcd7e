"""Every DAG in dags/ imports without errors, and within a parse-time budget (the dag-processor
re-parses each file every min_file_process_interval: heavy top-level code costs all day long)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((REPO / "dags").rglob("*.py"))
# Two budgets per file, past the warm-up (Airflow's own imports); each file takes ~0.01 s today.
# CPU time (time.process_time) is what a heavy top-level computation costs the dag-processor at every
# parse, and unlike wall-clock time it does not grow while the 2 cores are busy with other work: 1 s is
# a 100x margin that a loop, a big file parsed or a heavy import at the top level still crosses.
# Blocking at the top level (a sleep, a network or database call) costs no CPU, so a wall-clock budget
# catches that: 10 s is far above a loaded machine's noise, and far under [core] dagbag_import_timeout.
CPU_BUDGET_SECONDS = 1.0
WALL_BUDGET_SECONDS = 10.0

SLOW_DAG = """
import time

from airflow.sdk import dag

deadline = time.process_time() + {seconds}
while time.process_time() < deadline:  # a heavy computation at the top level
    pass


@dag(dag_id="slow_at_import", schedule=None)
def slow_at_import() -> None:
    pass


slow_at_import()
"""


@pytest.fixture(scope="module")
def dagbag_class() -> type:
    from airflow.dag_processing.dagbag import DagBag

    DagBag(dag_folder=str(DAG_FILES[0]))  # warm up: Airflow's own imports
    return DagBag


def parse(dagbag_class: type, path: Path) -> tuple[object, float, float]:
    """The DagBag of one file, with the CPU and wall-clock seconds its parse took."""
    cpu, wall = time.process_time(), time.perf_counter()
    bag = dagbag_class(dag_folder=str(path))
    return bag, time.process_time() - cpu, time.perf_counter() - wall


def test_there_are_dags() -> None:
    assert DAG_FILES


@pytest.mark.parametrize("path", DAG_FILES, ids=[p.name for p in DAG_FILES])
def test_dag_file_imports_cleanly_and_fast(path: Path, dagbag_class: type) -> None:
    bag, cpu, wall = parse(dagbag_class, path)
    assert not bag.import_errors, bag.import_errors
    assert bag.dags, f"{path.name} defines no DAG"
    assert cpu < CPU_BUDGET_SECONDS, f"{path.name} took {cpu:.2f} s of CPU to parse"
    assert wall < WALL_BUDGET_SECONDS, f"{path.name} took {wall:.2f} s to parse (blocking at import?)"
    for dag in bag.dags.values():
        assert dag.description, f"{dag.dag_id} has no description"
        assert dag.tags, f"{dag.dag_id} has no tags"
        assert not dag.catchup, f"{dag.dag_id} catches up"


def test_the_cpu_budget_catches_a_heavy_top_level_computation(tmp_path: Path, dagbag_class: type) -> None:
    """The budget can fail: DagBag parses in this process, so a file's top-level CPU shows in
    process_time (were the parse moved to a child process, the budget would read ~0 and pass all)."""
    path = tmp_path / "slow_at_import.py"
    path.write_text(SLOW_DAG.format(seconds=CPU_BUDGET_SECONDS + 0.2))
    bag, cpu, _ = parse(dagbag_class, path)
    assert not bag.import_errors, bag.import_errors
    assert "slow_at_import" in bag.dags
    assert cpu >= CPU_BUDGET_SECONDS, f"a file burning {CPU_BUDGET_SECONDS + 0.2} s of CPU read {cpu:.2f} s"
