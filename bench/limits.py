"""The configured limits of each configuration, read from its airflow.cfg and the configuration table.

The benchmark reports the concurrency ceilings next to throughput, so that a throughput goal that is not
met says what limits it: how many mapped tasks of `runs` concurrent DAG runs may run at once with N
workers. DEFAULTS are Airflow 3.3.2's (tests/unit/test_bench.py checks them against the installed
Airflow). Also here: the overload workload's task_queued_timeout override (bench/overload.override.yml)
and each configuration's stuck-in-queued check interval.
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import yaml

from bench import configs

REPO = Path(__file__).resolve().parents[1]

DEFAULTS: dict[tuple[str, str], int] = {
    ("core", "parallelism"): 32,
    ("core", "max_active_tasks_per_dag"): 16,
    ("celery", "worker_concurrency"): 16,
    # default_pool's size where no worker-capacity service resizes it (official, compose)
    ("core", "default_pool_task_slot_count"): 128,
}
FLOAT_DEFAULTS: dict[tuple[str, str], float] = {
    ("scheduler", "task_queued_timeout"): 600.0,
    ("scheduler", "task_queued_timeout_check_interval"): 120.0,
}


def parser_of(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    return parser


def read_settings(path: Path) -> dict[tuple[str, str], int]:
    parser = parser_of(path)
    return {
        (section, key): parser.getint(section, key, fallback=default)
        for (section, key), default in DEFAULTS.items()
    }


def read_float(config: str, section: str, key: str) -> float:
    parser = parser_of(configs.get(config).cfg_path)
    return parser.getfloat(section, key, fallback=FLOAT_DEFAULTS[(section, key)])


def worker_concurrency() -> int:
    """Slots per worker: [celery] worker_concurrency, the same in every configuration (16)."""
    values = {read_settings(c.cfg_path)[("celery", "worker_concurrency")] for c in configs.CONFIGURATIONS}
    if len(values) != 1:
        raise ValueError(f"worker_concurrency differs between configurations: {sorted(values)}")
    return values.pop()


def overload_queued_timeout(path: Path = REPO / configs.OVERLOAD) -> float:
    """[scheduler] task_queued_timeout as bench/overload.override.yml sets it for the overload workload."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return float(
        document["services"]["airflow-scheduler"]["environment"]["AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT"]
    )


@dataclass(frozen=True)
class Ceiling:
    """How many mapped tasks of `runs` concurrent DAG runs a configuration lets run at once."""

    DERIVED: ClassVar[tuple[str, ...]] = ("limited_by",)
    workers: int
    runs: int
    schedulers: int
    parallelism_total: int  # [core] parallelism x schedulers
    per_dag_total: int  # [core] max_active_tasks_per_dag x runs (a limit per DAG run in Airflow 3)
    worker_slots: int  # [celery] worker_concurrency x workers
    pool_slots: int  # default_pool: the live workers' slots with worker-capacity, else its fixed size
    ceiling: int  # the smallest

    @property
    def limited_by(self) -> str:
        per_dag = "[core] max_active_tasks_per_dag" + (f" x {self.runs} runs" if self.runs > 1 else "")
        names = {
            "parallelism_total": f"[core] parallelism x {self.schedulers} scheduler(s)",
            "per_dag_total": per_dag,
            "worker_slots": "[celery] worker_concurrency x workers",
            "pool_slots": "default_pool slots",
        }
        return " and ".join(text for key, text in names.items() if getattr(self, key) == self.ceiling)


def ceiling(
    settings: dict[tuple[str, str], int],
    workers: int,
    *,
    schedulers: int = 2,
    runs: int = 1,
    pool_follows_workers: bool = False,
) -> Ceiling:
    parallelism = settings[("core", "parallelism")] * schedulers
    per_dag = settings[("core", "max_active_tasks_per_dag")] * runs
    slots = settings[("celery", "worker_concurrency")] * workers
    pool_slots = slots if pool_follows_workers else settings[("core", "default_pool_task_slot_count")]
    return Ceiling(
        workers=workers,
        runs=runs,
        schedulers=schedulers,
        parallelism_total=parallelism,
        per_dag_total=per_dag,
        worker_slots=slots,
        pool_slots=pool_slots,
        ceiling=min(parallelism, per_dag, slots, pool_slots),
    )


def ceilings(config: str, workers: list[int], runs: int = 1) -> list[Ceiling]:
    conf = configs.get(config)
    settings = read_settings(conf.cfg_path)
    return [
        ceiling(
            settings,
            n,
            schedulers=conf.schedulers,
            runs=runs,
            pool_follows_workers=conf.pool_follows_workers,
        )
        for n in workers
    ]
