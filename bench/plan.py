"""What a benchmark run will do: its settings, and the ordered list of stack sessions.

Sessions interleave the two configurations, tuned then official, repetition after repetition
(A B A B ...), so that drift of the machine (thermal, page cache, a neighbour) falls on both. The
direct-to-Postgres sessions (figure 5) and the 4-worker runs they are compared with come in the first
`direct_repetitions` repetitions only: they measure a count of connections, not a speed, and each
one costs a stack start. --quick keeps one repetition of 20 tasks and skips both.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FAILOVER_WORKERS = 2


@dataclass(frozen=True)
class Settings:
    repetitions: int = 3
    tasks: int = 100  # K: mapped tasks per run
    quick: bool = False
    direct_repetitions: int = 1
    only: str | None = None  # "tuned" or "official": a tuning pass that runs one configuration
    offline: bool = False
    grafana: bool = True  # include Grafana where its image is present
    settle_seconds: float = 20.0  # after healthy and the DAG parsed, before the idle memory sample
    up_timeout: float = 600.0
    scale_timeout: float = 300.0
    run_timeout: float = 900.0
    failover_next_start_timeout: float = 300.0
    failover_finish_timeout: float = 180.0
    results_dir: Path = field(default_factory=lambda: REPO / "bench" / "results")

    def __post_init__(self) -> None:
        if self.repetitions < 1:
            raise ValueError("repetitions must be at least 1")
        if not 1 <= self.tasks <= 1024:
            raise ValueError("tasks must be 1-1024 ([core] max_map_length)")
        if self.direct_repetitions < 0:
            raise ValueError("direct repetitions cannot be negative")
        if self.only not in (None, "tuned", "official"):
            raise ValueError("only must be tuned or official")

    @classmethod
    def quick_pass(cls, **overrides: object) -> Settings:
        values: dict[str, object] = {"repetitions": 1, "tasks": 20, "quick": True, "direct_repetitions": 0}
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    @property
    def failover_tasks(self) -> int:
        return max(10, self.tasks // 2)

    def as_dict(self) -> dict[str, object]:
        values = asdict(self)
        # Relative to the repository when inside it: results files must not carry this machine's paths.
        resolved = self.results_dir.resolve()
        values["results_dir"] = str(resolved.relative_to(REPO) if resolved.is_relative_to(REPO) else resolved)
        values["failover_tasks"] = self.failover_tasks
        return values


@dataclass(frozen=True)
class SessionSpec:
    """One stack from `up` to `down`: a configuration, the worker counts of its runs, and extras."""

    config: str  # tuned | official | direct
    repetition: int
    workers: tuple[int, ...]
    failover: bool
    idle_memory: bool

    @property
    def name(self) -> str:
        return f"{self.config} #{self.repetition}"

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def build_plan(settings: Settings) -> list[SessionSpec]:
    plan = []
    for repetition in range(1, settings.repetitions + 1):
        with_direct = not settings.quick and repetition <= settings.direct_repetitions
        tuned_workers = (1, 2, 4) if with_direct else (1, 2)
        plan.append(SessionSpec("tuned", repetition, tuned_workers, failover=True, idle_memory=True))
        plan.append(SessionSpec("official", repetition, (1, 2), failover=True, idle_memory=True))
        if with_direct:
            plan.append(SessionSpec("direct", repetition, (1, 2, 4), failover=False, idle_memory=False))
    if settings.only:
        plan = [spec for spec in plan if spec.config == settings.only]
    return plan


# Rough costs on a 2-core machine with cached images (seconds); only for the printed estimate.
COST_UP_AND_DOWN = 110.0
COST_DAG_READY = 10.0
COST_RUN_OVERHEAD = 10.0
COST_TASKS_PER_SECOND = 2.0
COST_SCALE = 45.0


def estimate_seconds(plan: list[SessionSpec], settings: Settings) -> float:
    total = 0.0
    for spec in plan:
        total += COST_UP_AND_DOWN + COST_DAG_READY
        if spec.idle_memory:
            total += settings.settle_seconds + 5
        current = 1
        steps = list(spec.workers) + ([FAILOVER_WORKERS] if spec.failover else [])
        for index, workers in enumerate(steps):
            if workers != current:
                total += COST_SCALE if workers > current else COST_SCALE / 3
                current = workers
            is_failover = spec.failover and index == len(steps) - 1
            tasks = settings.failover_tasks if is_failover else settings.tasks
            total += COST_RUN_OVERHEAD + tasks / COST_TASKS_PER_SECOND
    return total
