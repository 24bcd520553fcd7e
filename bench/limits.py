"""The configured concurrency ceilings of each configuration, read from its airflow.cfg.

The benchmark reports them next to throughput, so that a throughput goal that is not met says what
limits it: how many mapped tasks of one DAG run may run at once with N workers and two schedulers.
DEFAULTS are Airflow 3.3.2's (tests/unit/test_bench.py checks them against the installed Airflow).
"""

from __future__ import annotations

import configparser
import json
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG_FILES = {
    "tuned": REPO / "config" / "airflow.cfg",
    "official": REPO / "bench" / "official-airflow.cfg",
    "direct": REPO / "config" / "airflow.cfg",
}
# airflow-init imports it in both configurations (the official override swaps airflow.cfg only).
POOLS_FILE = REPO / "config" / "pools.json"
SCHEDULERS = 2  # docker-compose.yml: airflow-scheduler deploy.replicas

DEFAULTS: dict[tuple[str, str], int] = {
    ("core", "parallelism"): 32,
    ("core", "max_active_tasks_per_dag"): 16,
    ("celery", "worker_concurrency"): 16,
}
DEFAULT_POOL_SLOTS = 128  # Airflow's default_pool, where config/pools.json does not size it


def read_settings(path: Path) -> dict[tuple[str, str], int]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    return {
        (section, key): parser.getint(section, key, fallback=default)
        for (section, key), default in DEFAULTS.items()
    }


@dataclass(frozen=True)
class Ceiling:
    workers: int
    parallelism_total: int  # [core] parallelism x schedulers
    max_active_tasks_per_dag: int
    worker_slots: int  # [celery] worker_concurrency x workers
    pool_slots: int
    ceiling: int  # the smallest: how many tasks of one run can run at once

    @property
    def limited_by(self) -> str:
        names = {
            "parallelism_total": f"[core] parallelism x {SCHEDULERS} schedulers",
            "max_active_tasks_per_dag": "[core] max_active_tasks_per_dag",
            "worker_slots": "[celery] worker_concurrency x workers",
            "pool_slots": "default_pool slots",
        }
        return " and ".join(text for key, text in names.items() if getattr(self, key) == self.ceiling)

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "limited_by": self.limited_by}


def ceiling(
    settings: dict[tuple[str, str], int], workers: int, pool_slots: int = DEFAULT_POOL_SLOTS
) -> Ceiling:
    parallelism = settings[("core", "parallelism")] * SCHEDULERS
    per_dag = settings[("core", "max_active_tasks_per_dag")]
    slots = settings[("celery", "worker_concurrency")] * workers
    return Ceiling(
        workers, parallelism, per_dag, slots, pool_slots, min(parallelism, per_dag, slots, pool_slots)
    )


def default_pool_slots(path: Path = POOLS_FILE) -> int:
    pools = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    return int(pools.get("default_pool", {}).get("slots", DEFAULT_POOL_SLOTS))


def ceilings(config: str, workers: list[int]) -> list[Ceiling]:
    settings = read_settings(CONFIG_FILES[config])
    pool = default_pool_slots()
    return [ceiling(settings, n, pool) for n in workers]
