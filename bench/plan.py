"""What a benchmark run will do: its settings, the ordered list of stack sessions, each session's steps,
and the duration estimate printed at the start.

Sessions interleave the configurations repetition after repetition (A1 B1 C1 D1 A2 B2 A3 B3 by default,
letters from bench/configs.py), so that drift of the machine (thermal, page cache, a neighbour) falls on
all of them. Repetitions are spent where the spread needs them:

- the first `full_repetitions` (1) run every workload: the no-op runs, the I/O fan-out on 1, 2 and 4
  workers, the failover run and the overload run, in every configuration (compose and direct too).
  The fan-out and overload figures are dominated by the tasks' own sleeps, deterministic here, so one
  repetition of them is enough; they take most of the time.
- the remaining repetitions (tuned and official only) repeat the short figures whose spread is wide:
  idle memory and CPU, the no-op runs on 1 and 2 workers, failover.

--quick: one session each of tuned and compose, 20 no-op tasks, fan-out on 1 and 2 workers with 10-30 s
tasks, no overload, no 4 workers, no direct-to-Postgres session.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from bench import configs
from bench.limits import ceilings, overload_queued_timeout, worker_concurrency

REPO = Path(__file__).resolve().parents[1]
FAILOVER_WORKERS = 2
OVERLOAD_WORKERS = 1


@dataclass(frozen=True)
class Settings:
    DERIVED: ClassVar[tuple[str, ...]] = ("failover_tasks", "overload_task_seconds", "configs")
    repetitions: int = 3
    tasks: int = 100  # K: mapped no-op tasks per run
    quick: bool = False
    full_repetitions: int = 1  # first repetitions that run every workload and configuration
    only: str | None = None  # one configuration: a tuning pass (no ratios)
    offline: bool = False
    grafana: bool = True  # include Grafana where its image is present
    settle_seconds: float = 20.0  # after healthy and the DAGs parsed, before the idle memory sample
    idle_seconds: float = 30.0  # the quiet window of the idle CPU rate
    fanout_runs: int = 3  # concurrent DAG runs of the I/O fan-out wave
    fanout_tasks_per_slot: int = 2  # tasks of a wave = 16 slots x workers x this
    fanout_min_seconds: int = 20
    fanout_max_seconds: int = 60
    fanout_workers: tuple[int, ...] = (1, 2, 4)
    overload: bool = True
    overload_tasks: int = 24  # on one worker of 16 slots
    overload_runs: int = 3  # concurrent DAG runs (8 tasks each: under max_active_tasks_per_dag 16)
    overload_extra_seconds: int = 15  # tasks last task_queued_timeout + this
    up_timeout: float = 600.0
    scale_timeout: float = 300.0
    pool_timeout: float = 120.0  # worker-capacity resizes default_pool within ~40 s
    run_timeout: float = 900.0
    failover_next_start_timeout: float = 300.0
    failover_finish_timeout: float = 180.0
    results_dir: Path = field(default_factory=lambda: REPO / "bench" / "results")

    def __post_init__(self) -> None:
        if self.repetitions < 1:
            raise ValueError("repetitions must be at least 1")
        if not 1 <= self.tasks <= 1024:
            raise ValueError("tasks must be 1-1024 ([core] max_map_length)")
        if self.full_repetitions < 0:
            raise ValueError("full repetitions cannot be negative")
        if self.only is not None and self.only not in configs.NAMES:
            raise ValueError(f"only must be one of {', '.join(configs.NAMES)}")
        if not 1 <= self.fanout_min_seconds <= self.fanout_max_seconds:
            raise ValueError("fan-out sleeps: 1 <= min <= max")
        if self.fanout_runs < 1 or self.overload_runs < 1:
            raise ValueError("a wave needs at least one DAG run")
        if any(n < 1 for n in self.fanout_workers):
            raise ValueError("fan-out worker counts must be positive")
        largest = max(self.fanout_workers, default=1) * worker_concurrency() * self.fanout_tasks_per_slot
        if math.ceil(largest / self.fanout_runs) > 1024:
            raise ValueError("a fan-out run would map more than 1024 tasks")

    @classmethod
    def quick_pass(cls, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "repetitions": 1,
            "tasks": 20,
            "quick": True,
            "full_repetitions": 1,
            "idle_seconds": 20.0,
            "fanout_min_seconds": 10,
            "fanout_max_seconds": 30,
            "fanout_workers": (1, 2),
            "overload": False,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    @property
    def failover_tasks(self) -> int:
        return max(10, self.tasks // 2)

    @property
    def configs(self) -> tuple[str, ...]:
        """The configurations this run starts, in session order."""
        if self.only:
            return (self.only,)
        return (configs.TUNED, configs.COMPOSE) if self.quick else configs.NAMES

    @property
    def overload_task_seconds(self) -> int:
        """How long each overload task sleeps: the overridden task_queued_timeout + overload_extra_seconds."""
        return math.ceil(overload_queued_timeout()) + self.overload_extra_seconds

    def fanout_tasks(self, workers: int) -> int:
        return worker_concurrency() * workers * self.fanout_tasks_per_slot


@dataclass(frozen=True)
class SessionSpec:
    """One stack from `up` to `down`: a configuration and the workloads of its session."""

    config: str
    repetition: int
    noop_workers: tuple[int, ...]  # a run of K no-op tasks with each of these worker counts
    fanout_workers: tuple[int, ...]  # an I/O fan-out wave with each
    failover: bool
    overload: bool
    idle: bool  # idle memory and CPU before the first run

    @property
    def name(self) -> str:
        return f"{self.config} #{self.repetition}"

    @property
    def short(self) -> str:
        return f"{configs.get(self.config).letter}{self.repetition}"


@dataclass(frozen=True)
class Step:
    """One step of a session after `up`: scale, a workload, or the overload reconfiguration."""

    action: str  # scale | noop | fanout | failover | overload-config | overload
    workers: int


def session_spec(config: str, repetition: int, settings: Settings) -> SessionSpec | None:
    conf = configs.get(config)
    full = repetition <= settings.full_repetitions
    if config in (configs.COMPOSE, configs.DIRECT) and not full:
        return None
    fanout = settings.fanout_workers if full and config != configs.DIRECT else ()
    if config == configs.DIRECT:  # figure 5: connections with 1, 2 and 4 workers, nothing else
        return SessionSpec(config, repetition, (1, 2, 4), (), failover=False, overload=False, idle=False)
    noop = (1, 2, 4) if full and not settings.quick and config == configs.TUNED else (1, 2)
    return SessionSpec(
        config,
        repetition,
        noop,
        fanout,
        failover=conf.failover,
        overload=full and settings.overload,
        idle=True,
    )


def build_plan(settings: Settings) -> list[SessionSpec]:
    plan = []
    for repetition in range(1, settings.repetitions + 1):
        for config in settings.configs:
            spec = session_spec(config, repetition, settings)
            if spec is not None:
                plan.append(spec)
    return plan


def steps(spec: SessionSpec) -> list[Step]:
    """The session's steps in order: worker counts rising (each with its no-op run, then its fan-out
    wave), then the failover run on 2 workers, then the overload run on 1 worker with its override."""
    out: list[Step] = []
    current = 1
    for workers in sorted({*spec.noop_workers, *spec.fanout_workers}):
        if workers != current:
            out.append(Step("scale", workers))
            current = workers
        if workers in spec.noop_workers:
            out.append(Step("noop", workers))
        if workers in spec.fanout_workers:
            out.append(Step("fanout", workers))
    if spec.failover:
        if current != FAILOVER_WORKERS:
            out.append(Step("scale", FAILOVER_WORKERS))
            current = FAILOVER_WORKERS
        out.append(Step("failover", FAILOVER_WORKERS))
    if spec.overload:
        out.append(Step("overload-config", OVERLOAD_WORKERS))
        out.append(Step("overload", OVERLOAD_WORKERS))
    return out


# --- the estimate (seconds on a 2-core machine with cached images; only for the printed estimate) --------
# From the reference run bench/results/2026-11-21T16-46-24Z.json: up ~88 s, teardown ~30 s, a scale-up
# ~50 s, a no-op run of 100 tasks ~21 s (4.5 tasks/s) plus its polling.
COST_UP_AND_DOWN = 120.0
COST_DAG_READY = 5.0
COST_RUN_OVERHEAD = 5.0
COST_NOOP_TASKS_PER_SECOND = 4.5
COST_WAVE_OVERHEAD = 20.0
COST_SCALE_UP = 50.0
COST_SCALE_DOWN = 30.0
COST_POOL_SHRINK = 40.0  # worker-capacity confirms a worker gone after 30 s, checks every 10 s
COST_RECONFIGURE = 50.0


def estimate_seconds(plan: list[SessionSpec], settings: Settings) -> float:
    mean_sleep = (settings.fanout_min_seconds + settings.fanout_max_seconds) / 2
    total = 0.0
    for spec in plan:
        conf = configs.get(spec.config)
        total += COST_UP_AND_DOWN + COST_DAG_READY
        if spec.idle:
            total += settings.settle_seconds + settings.idle_seconds + 5
        current, shrinking = 1, False
        for step in steps(spec):
            if step.action in ("noop", "fanout", "overload") and shrinking:
                total += COST_POOL_SHRINK  # the session waits for default_pool before a measured run
                shrinking = False
            if step.action in ("scale", "overload-config"):
                if step.workers > current:
                    total += COST_SCALE_UP
                elif step.workers < current:
                    total += COST_SCALE_DOWN
                    shrinking = conf.pool_follows_workers
                total += COST_RECONFIGURE if step.action == "overload-config" else 0
                current = step.workers
            elif step.action == "noop":
                total += COST_RUN_OVERHEAD + settings.tasks / COST_NOOP_TASKS_PER_SECOND
            elif step.action == "fanout":
                limit = ceilings(spec.config, [step.workers], settings.fanout_runs)[0].ceiling
                total += COST_WAVE_OVERHEAD + settings.fanout_tasks(step.workers) * mean_sleep / limit
            elif step.action == "failover":
                total += COST_RUN_OVERHEAD + settings.failover_tasks / COST_NOOP_TASKS_PER_SECOND
            elif step.action == "overload":
                # Within the slots: two waves. Beyond them (no pool following the workers), the tasks
                # that wait in the broker fail or are re-queued: about one wave and the stuck check.
                waves = math.ceil(settings.overload_tasks / worker_concurrency())
                seconds = settings.overload_task_seconds
                total += COST_WAVE_OVERHEAD + (waves * seconds if conf.pool_follows_workers else seconds + 60)
    return total
