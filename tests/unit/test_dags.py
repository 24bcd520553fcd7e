"""Every DAG in dags/ imports without errors, and within a parse-time budget (the dag-processor
re-parses each file every min_file_process_interval: heavy top-level code costs all day long)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((REPO / "dags").rglob("*.py"))
PARSE_BUDGET_SECONDS = 1.0


@pytest.fixture(scope="module")
def dagbag_class() -> type:
    from airflow.dag_processing.dagbag import DagBag

    DagBag(dag_folder=str(DAG_FILES[0]))  # warm up: Airflow's own imports
    return DagBag


def test_there_are_dags() -> None:
    assert DAG_FILES


@pytest.mark.parametrize("path", DAG_FILES, ids=[p.name for p in DAG_FILES])
def test_dag_file_imports_cleanly_and_fast(path: Path, dagbag_class: type) -> None:
    started = time.perf_counter()
    bag = dagbag_class(dag_folder=str(path))
    elapsed = time.perf_counter() - started
    assert not bag.import_errors, bag.import_errors
    assert bag.dags, f"{path.name} defines no DAG"
    assert elapsed < PARSE_BUDGET_SECONDS, f"{path.name} took {elapsed:.2f}s to parse"
    for dag in bag.dags.values():
        assert dag.description, f"{dag.dag_id} has no description"
        assert dag.tags, f"{dag.dag_id} has no tags"
        assert not dag.catchup, f"{dag.dag_id} catches up"
