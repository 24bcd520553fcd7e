"""The configurations the benchmark compares: one table, read by every other module.

Each configuration is docker-compose.yml plus override files (bench/*.override.yml), an airflow.cfg,
and a topology: how many schedulers, whether Airflow's connections go through PgBouncer, whether the
worker-capacity service sizes default_pool to the live workers. tests/unit/test_bench.py resolves
each one with `docker compose config` and checks that the compose files really give that topology.

- tuned:    this stack as shipped: config/airflow.cfg, two schedulers, PgBouncer, worker-capacity.
- official: Airflow's defaults (bench/official-airflow.cfg) on this stack's topology: the ratio
            tuned / official measures airflow.cfg alone.
- compose:  the official docker-compose.yaml as its users run it: Airflow's defaults, one scheduler,
            no PgBouncer, no worker-capacity. The anchor this stack must beat.
- direct:   tuned, but every Airflow connection straight to Postgres: what PgBouncer saves (figure 5).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASE_FILE = "docker-compose.yml"
BENCH_DAGS = "bench/bench.override.yml"
OFFICIAL_DEFAULTS = "bench/official-defaults.override.yml"
DIRECT_POSTGRES = "bench/direct-postgres.override.yml"
ONE_SCHEDULER = "bench/one-scheduler.override.yml"
# Not a configuration: added on top of any of them for the overload workload only (a short
# [scheduler] task_queued_timeout, so that the workload fits the time budget).
OVERLOAD = "bench/overload.override.yml"


@dataclass(frozen=True)
class Configuration:
    name: str
    letter: str  # the plan's shorthand (A1 B1 ...)
    summary: str  # one line for the report
    overrides: tuple[str, ...]  # compose files after docker-compose.yml, relative to the repository
    airflow_cfg: str  # relative to the repository; mounted at /opt/airflow/<the same path>
    schedulers: int  # airflow-scheduler replicas
    pgbouncer: bool  # Airflow's metadata and result-backend connections go through PgBouncer
    pool_follows_workers: bool  # the worker-capacity service runs (default_pool = 16 x live workers)

    @property
    def files(self) -> tuple[str, ...]:
        return (BASE_FILE, *self.overrides)

    @property
    def cfg_path(self) -> Path:
        return REPO / self.airflow_cfg

    @property
    def container_cfg(self) -> str:
        """AIRFLOW_CONFIG inside the containers."""
        return f"/opt/airflow/{self.airflow_cfg}"

    @property
    def failover(self) -> bool:
        """Killing a scheduler mid-run only means something with a second one."""
        return self.schedulers >= 2


CONFIGURATIONS: tuple[Configuration, ...] = (
    Configuration(
        name="tuned",
        letter="A",
        summary="this stack: config/airflow.cfg, 2 schedulers, PgBouncer, worker-capacity",
        overrides=(BENCH_DAGS,),
        airflow_cfg="config/airflow.cfg",
        schedulers=2,
        pgbouncer=True,
        pool_follows_workers=True,
    ),
    Configuration(
        name="official",
        letter="B",
        summary="Airflow's defaults on this stack's topology: 2 schedulers, PgBouncer",
        overrides=(BENCH_DAGS, OFFICIAL_DEFAULTS),
        airflow_cfg="bench/official-airflow.cfg",
        schedulers=2,
        pgbouncer=True,
        pool_follows_workers=False,
    ),
    Configuration(
        name="compose",
        letter="C",
        summary="the official docker-compose as run: Airflow's defaults, 1 scheduler, no PgBouncer",
        overrides=(BENCH_DAGS, OFFICIAL_DEFAULTS, DIRECT_POSTGRES, ONE_SCHEDULER),
        airflow_cfg="bench/official-airflow.cfg",
        schedulers=1,
        pgbouncer=False,
        pool_follows_workers=False,
    ),
    Configuration(
        name="direct",
        letter="D",
        summary="tuned, every Airflow connection straight to Postgres (no PgBouncer)",
        overrides=(BENCH_DAGS, DIRECT_POSTGRES),
        airflow_cfg="config/airflow.cfg",
        schedulers=2,
        pgbouncer=False,
        pool_follows_workers=True,
    ),
)
NAMES: tuple[str, ...] = tuple(config.name for config in CONFIGURATIONS)
BY_NAME: dict[str, Configuration] = {config.name: config for config in CONFIGURATIONS}


def get(name: str) -> Configuration:
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown configuration {name!r}; known: {', '.join(NAMES)}") from None
