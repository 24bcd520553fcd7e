"""The integration test of out-of-memory kills (tests/integration/test_15_oom_kill.py) can pass and can
fail: its DAG allocates past the test stack's worker limit but gives up, failing with its own message, at
a cap a CI host can afford; the test stack's limit is below the cap and the production default above what
a worker uses with 16 busy slots."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import yaml

REPO = Path(__file__).resolve().parents[2]
DAG_FILE = REPO / "tests" / "integration" / "dags" / "memory_hog.py"
UNITS = {"m": 2**20, "g": 2**30}


def size(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([mg])", value).groups()
    return int(number) * UNITS[unit]


def hog() -> ModuleType:
    spec = importlib.util.spec_from_file_location("memory_hog_probe", DAG_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_hog_outgrows_the_test_stacks_worker_limit_but_not_a_ci_host() -> None:
    worker = yaml.safe_load((REPO / "tests" / "integration" / "compose.test.yml").read_text())["services"][
        "airflow-worker"
    ]
    limit = size(worker["mem_limit"])
    assert size(worker["memswap_limit"]) == limit, "no swap on top, or the task swaps instead of being killed"
    cap = hog().CAP_MIB * 2**20
    assert cap >= 1.25 * limit, "the task must keep allocating well past the limit"
    assert cap <= 4 * 2**30, "a host without the limit must survive the task"


def test_the_hog_dag_has_one_task_that_is_not_retried() -> None:
    dag = hog().memory_hog()
    assert [t.task_id for t in dag.tasks] == ["eat_memory"]
    assert dag.tasks[0].retries == 0
