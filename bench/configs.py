"""The configurations the benchmark compares: one table, read by every other module.

Each configuration is docker-compose.yml plus override files (bench/*.override.yml), an airflow.cfg,
and a topology: how many schedulers, whether Airflow's connections go through PgBouncer, whether the
worker-capacity service sizes default_pool to the live workers. configuration() derives the
airflow.cfg and the topology from the override files, the one place that says what each file does;
tests/unit/test_bench.py resolves each configuration with `docker compose config` and checks that the
compose files really give that topology.

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
TUNED_CFG = "config/airflow.cfg"
OFFICIAL_CFG = "bench/official-airflow.cfg"
# Not a configuration: added on top of any of them for the overload workload only (a short
# [scheduler] task_queued_timeout, so that the workload fits the time budget).
OVERLOAD = "bench/overload.override.yml"
# The configurations' names: every other module spells them through these.
TUNED, OFFICIAL, COMPOSE, DIRECT = "tuned", "official", "compose", "direct"


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


def configuration(name: str, letter: str, summary: str, *overrides: str) -> Configuration:
    """The benchmark's DAGs, then `overrides`; the airflow.cfg and topology are what those files do."""
    defaults = OFFICIAL_DEFAULTS in overrides  # official-airflow.cfg everywhere, no worker-capacity
    return Configuration(
        name=name,
        letter=letter,
        summary=summary,
        overrides=(BENCH_DAGS, *overrides),
        airflow_cfg=OFFICIAL_CFG if defaults else TUNED_CFG,
        schedulers=1 if ONE_SCHEDULER in overrides else 2,
        pgbouncer=DIRECT_POSTGRES not in overrides,
        pool_follows_workers=not defaults,
    )


CONFIGURATIONS: tuple[Configuration, ...] = (
    configuration(TUNED, "A", "this stack: config/airflow.cfg, 2 schedulers, PgBouncer, worker-capacity"),
    configuration(
        OFFICIAL,
        "B",
        "Airflow's defaults on this stack's topology: 2 schedulers, PgBouncer",
        OFFICIAL_DEFAULTS,
    ),
    configuration(
        COMPOSE,
        "C",
        "the official docker-compose as run: Airflow's defaults, 1 scheduler, no PgBouncer",
        OFFICIAL_DEFAULTS,
        DIRECT_POSTGRES,
        ONE_SCHEDULER,
    ),
    configuration(
        DIRECT, "D", "tuned, every Airflow connection straight to Postgres (no PgBouncer)", DIRECT_POSTGRES
    ),
)
NAMES: tuple[str, ...] = tuple(config.name for config in CONFIGURATIONS)
BY_NAME: dict[str, Configuration] = {config.name: config for config in CONFIGURATIONS}


def get(name: str) -> Configuration:
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown configuration {name!r}; known: {', '.join(NAMES)}") from None
