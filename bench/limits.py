"""The configured concurrency ceilings of each configuration, read from its airflow.cfg.

The benchmark reports them next to throughput, so that a throughput goal that is not met says what
limits it: how many mapped tasks of one DAG run may run at once with N workers and two schedulers.
DEFAULTS are Airflow 3.3.2's (tests/unit/test_bench.py checks them against the installed Airflow).
"""

from __future__ import annotations

import configparser
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG_FILES = {
    "tuned": REPO / "config" / "airflow.cfg",
    "official": REPO / "bench" / "official-airflow.cfg",
    "direct": REPO / "config" / "airflow.cfg",
}
SCHEDULERS = 2  # docker-compose.yml: airflow-scheduler deploy.replicas
# Configurations where the worker-capacity service sizes default_pool to the live workers' slots.
POOL_FOLLOWS_WORKERS = {"tuned", "direct"}

DEFAULTS: dict[tuple[str, str], int] = {
    ("core", "parallelism"): 32,
    ("core", "max_active_tasks_per_dag"): 16,
    ("celery", "worker_concurrency"): 16,
    # default_pool's size where no worker-capacity service resizes it (the official configuration)
    ("core", "default_pool_task_slot_count"): 128,
}


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
    settings: dict[tuple[str, str], int], workers: int, pool_follows_workers: bool = False
) -> Ceiling:
    parallelism = settings[("core", "parallelism")] * SCHEDULERS
    per_dag = settings[("core", "max_active_tasks_per_dag")]
    slots = settings[("celery", "worker_concurrency")] * workers
    pool_slots = slots if pool_follows_workers else settings[("core", "default_pool_task_slot_count")]
    return Ceiling(
        workers, parallelism, per_dag, slots, pool_slots, min(parallelism, per_dag, slots, pool_slots)
    )


def ceilings(config: str, workers: list[int]) -> list[Ceiling]:
    settings = read_settings(CONFIG_FILES[config])
    return [ceiling(settings, n, config in POOL_FOLLOWS_WORKERS) for n in workers]
