"""The results document of a benchmark run: its types, and the only code that writes or reads it.

bench/results/<UTC date-time>.json holds one `Results` (schema SCHEMA). Every part of it is a
dataclass below, or plan.Settings, plan.SessionSpec, limits.Ceiling and stats.Spread; the session and
the workloads fill it as they go, report.py renders it, and `write` / `read` convert it to and from JSON:

- writing: each dataclass becomes an object of its fields in declaration order, plus the read-only
  properties its DERIVED names (total_gib, limited_by, per_task ...), there for a reader of the file;
  tuples become lists, paths inside the repository become relative.
- reading: the field types drive the conversion back; DERIVED keys and unknown keys are ignored, a
  missing key takes the field's default (an error where there is none). `read` accepts this schema
  only: results written before it (airflow-stack-bench/1, e.g. bench/results/2026-11-21T*.json)
  stay as they are, readable as plain JSON and through their markdown.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from bench.limits import Ceiling
from bench.plan import SessionSpec, Settings
from bench.stats import Spread

SCHEMA = "airflow-stack-bench/2"
REPO = Path(__file__).resolve().parents[1]
GIB = 1024**3

T = TypeVar("T")


# --- what one run or sample measured -------------------------------------------------------------------
@dataclass(frozen=True)
class MemorySnapshot:
    """One `docker stats` sample per running container, summed per compose service and over the stack."""

    DERIVED: ClassVar[tuple[str, ...]] = ("total_gib",)
    total_bytes: int
    services: dict[str, int]  # service -> bytes, all its replicas together
    containers: dict[str, int]  # service -> number of containers sampled

    @property
    def total_gib(self) -> float:
        return round(self.total_bytes / GIB, 4)


@dataclass(frozen=True)
class Connections:
    """Postgres client backends, sampled once a second during a run."""

    max: int | None
    samples: int
    min: int | None
    errors: int
    first_error: str | None


@dataclass(frozen=True)
class RunFigures:
    """What one run of K mapped no-op tasks measured (seconds, tasks per second)."""

    tasks: int  # mapped task instances found
    succeeded: int
    run_seconds: float | None  # dag_run start_date -> end_date
    throughput: float | None  # tasks / run_seconds: the throughput figure
    task_span_seconds: float | None  # first mapped start -> last mapped end
    task_throughput: float | None  # tasks / task_span_seconds (scheduling of the first task excluded)
    latency_p50: float | None  # queued_dttm -> start_date of the mapped tasks
    latency_p95: float | None
    latency_max: float | None
    trigger_to_first_start: float | None  # dag_run queued_at -> first start_date of any task
    peak_concurrency: int  # most mapped tasks running at one instant


@dataclass(frozen=True)
class FailoverFigures:
    next_start_seconds: float | None  # kill -> first mapped start_date after it: the failover figure
    survivor_queued_seconds: float | None  # kill -> first task queued after it by another scheduler
    started_before_kill: int
    queued_before_kill: int


@dataclass(frozen=True)
class WaveFigures:
    """What a wave of several concurrent DAG runs of mapped tasks measured (fan-out and overload)."""

    runs: int
    tasks: int  # mapped task instances found over all runs
    succeeded: int
    failed: int
    unfinished: int  # neither success nor failed when the wave was read
    wave_seconds: float | None  # earliest dag_run start_date -> latest dag_run end_date
    throughput: float | None  # tasks / wave_seconds
    task_seconds_total: float | None  # sum of (end_date - start_date) of the mapped tasks
    queue_wait_p50: float | None  # start_date - queued_dttm of the mapped tasks
    queue_wait_p95: float | None
    queue_wait_max: float | None
    peak_concurrency: int  # most mapped tasks running at one instant, all runs together
    trigger_to_first_start: float | None  # earliest dag_run queued_at -> first start_date of any task


@dataclass(frozen=True)
class StuckInQueued:
    """Rows the scheduler wrote to the `log` table for the wave's task instances."""

    events: int  # 'stuck in queued reschedule' rows: a task instance set back to scheduled
    task_instances: int  # distinct task instances with at least one such row
    tries_exceeded: int  # 'stuck in queued tries exceeded' rows: failed after the last reschedule


@dataclass(frozen=True)
class IdleCpu:
    """CPU of the quiet stack: cores per service over a window with nothing running."""

    DERIVED: ClassVar[tuple[str, ...]] = ("total_cores",)
    window_seconds: float
    cores: dict[str, float]  # service -> cores (CPU-seconds per second), all its replicas together
    containers: dict[str, int]

    @property
    def total_cores(self) -> float:
        return round(sum(self.cores.values()), 4)


@dataclass(frozen=True)
class CpuCost:
    """CPU a run cost, per service: usage over the run minus the idle rate over the same time."""

    DERIVED: ClassVar[tuple[str, ...]] = ("net", "per_task", "per_task_total", "biggest")
    window_seconds: float
    tasks: int
    gross: dict[str, float]  # service -> CPU-seconds used between the samples before and after
    idle: dict[str, float]  # service -> CPU-seconds its idle rate accounts for over the window
    problems: list[str] = field(default_factory=list)

    @property
    def net(self) -> dict[str, float]:
        return {name: round(self.gross[name] - self.idle.get(name, 0.0), 4) for name in sorted(self.gross)}

    @property
    def per_task(self) -> dict[str, float]:
        """Core-seconds per task by service (may be slightly negative for a service that did nothing)."""
        if not self.tasks:
            return {}
        return {name: round(value / self.tasks, 5) for name, value in self.net.items()}

    @property
    def per_task_total(self) -> float | None:
        return round(sum(self.net.values()) / self.tasks, 5) if self.tasks else None

    @property
    def biggest(self) -> str | None:
        net = self.net
        return max(net, key=lambda name: net[name]) if net else None


# --- runs ------------------------------------------------------------------------------------------------
@dataclass
class NoopRun:
    """One run of K mapped no-op tasks (bench_noop)."""

    label: str
    workers: int
    tasks_requested: int
    run_id: str
    state: str
    wall_seconds: float
    figures: RunFigures
    connections: Connections
    problems: list[str] = field(default_factory=list)
    memory_load: MemorySnapshot | None = None
    cpu: CpuCost | None = None
    pool_slots: int | None = None  # default_pool's slots when triggered


@dataclass
class WaveRun:
    """Several concurrent runs of bench_sleep: the I/O fan-out workload, or the overload workload."""

    kind: str  # fanout | overload
    label: str
    workers: int
    run_ids: list[str]
    tasks_requested: int
    task_seconds_min: int
    task_seconds_max: int
    task_seconds_total: int  # the sleeps asked for, summed
    wall_seconds: float
    finished: bool  # every run success or failed before the timeout
    run_states: dict[str, str]
    figures: WaveFigures
    problems: list[str] = field(default_factory=list)
    pool_slots: int | None = None  # default_pool's slots when triggered
    stuck: StuckInQueued | None = None  # overload only
    task_queued_timeout: float | None = None  # overload only: the override in effect (seconds)


@dataclass
class FailoverRun:
    label: str
    workers: int
    tasks_requested: int
    run_id: str
    kill_after_started: int
    problems: list[str] = field(default_factory=list)
    state: str | None = None
    killed_hostname: str | None = None
    killed_was_busiest: bool | None = None
    killed_job_ids: list[int] = field(default_factory=list)
    kill_at: float | None = None
    figures: FailoverFigures | None = None


@dataclass
class Idle:
    memory: MemorySnapshot
    cpu: IdleCpu | None = None


@dataclass
class SessionRecord:
    """One stack from `up` to `down`, filled as it goes."""

    config: str
    repetition: int
    spec: SessionSpec
    compose_files: list[str]
    with_grafana: bool
    started_at: str
    ceilings: list[Ceiling] = field(default_factory=list)
    finished_at: str | None = None
    up_seconds: float | None = None
    dag_ready_seconds: float | None = None
    idle: Idle | None = None
    scale_seconds: dict[str, float] = field(default_factory=dict)
    reconfigure_seconds: float | None = None  # the overload override: scheduler(s) recreated
    noop: list[NoopRun] = field(default_factory=list)
    fanout: list[WaveRun] = field(default_factory=list)
    failover: FailoverRun | None = None
    overload: WaveRun | None = None
    error: str | None = None
    diagnostics: str | None = None

    def noop_run(self, workers: int) -> NoopRun | None:
        return next((run for run in self.noop if run.workers == workers), None)

    def fanout_run(self, workers: int) -> WaveRun | None:
        return next((run for run in self.fanout if run.workers == workers), None)

    def ceiling(self, workers: int, runs: int) -> Ceiling | None:
        return next((c for c in self.ceilings if c.workers == workers and c.runs == runs), None)


# --- the document ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Host:
    cpus: int | None
    platform: str
    memory_gib: float | None
    docker: str | None = None
    compose: str | None = None
    commit: str | None = None
    dirty: bool | None = None


@dataclass(frozen=True)
class FigureSummary:
    """One figure over the sessions of each configuration: median and spread, and the ratios."""

    label: str
    unit: str
    better: str  # higher | lower
    by_config: dict[str, Spread | None]
    ratio_official: float | None  # tuned / official, of the medians
    ratio_compose: float | None  # tuned / compose, of the medians


@dataclass(frozen=True)
class Goal:
    key: str
    issue: int  # the issue that set it
    title: str
    target: str
    measured: str
    met: bool | None  # None: not measured in this run
    detail: str


@dataclass(frozen=True)
class Summary:
    figures: dict[str, FigureSummary]
    goals: list[Goal]
    # service -> column (e.g. tuned_idle) -> median
    memory_by_service_gib: dict[str, dict[str, float | None]]
    cpu_per_task_by_service: dict[str, dict[str, float | None]]
    idle_cores_by_service: dict[str, dict[str, float | None]]


@dataclass
class Results:
    started_at: str
    settings: Settings
    plan: list[SessionSpec]
    status: str = "running"  # running | complete | failed | interrupted
    error: str | None = None
    schema: str = SCHEMA
    host: Host | None = None
    images: dict[str, str] = field(default_factory=dict)  # image -> image id, the same for every session
    with_grafana: bool | None = None
    sessions: list[SessionRecord] = field(default_factory=list)
    finished_at: str | None = None
    summary: Summary | None = None  # computed from the rest on every write (report.summarise)

    def sessions_of(self, config: str) -> list[SessionRecord]:
        return [session for session in self.sessions if session.config == config]


# --- JSON -----------------------------------------------------------------------------------------------
def portable(path: Path) -> str:
    """A path relative to the repository when inside it: results files must not carry this machine's paths."""
    resolved = path.resolve()
    return str(resolved.relative_to(REPO) if resolved.is_relative_to(REPO) else resolved)


def encode(value: Any) -> Any:
    """A JSON-ready value: dataclasses as objects (fields, then DERIVED properties), tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        for name in getattr(type(value), "DERIVED", ()):
            out[name] = encode(getattr(value, name))
        return out
    if isinstance(value, Path):
        return portable(value)
    if isinstance(value, list | tuple):
        return [encode(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): encode(item) for key, item in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def decode(kind: Any, data: Any, where: str = "$") -> Any:
    """`data` (parsed JSON) as the type `kind`; ValueError with the JSON path where it does not fit."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any or kind is object:
        return data
    if origin is typing.Union or origin is types.UnionType:
        if data is None and type(None) in args:
            return None
        options = [arg for arg in args if arg is not type(None)]
        errors = []
        for option in options:
            try:
                return decode(option, data, where)
            except ValueError as error:
                errors.append(str(error))
        raise ValueError("; ".join(errors))
    if origin is list:
        return [decode(args[0], item, f"{where}[{i}]") for i, item in enumerate(expect(list, data, where))]
    if origin is tuple:
        items = expect(list, data, where)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(decode(args[0], item, f"{where}[{i}]") for i, item in enumerate(items))
        if len(items) != len(args):
            raise ValueError(f"{where}: expected {len(args)} items, got {len(items)}")
        return tuple(
            decode(arg, item, f"{where}[{i}]") for i, (arg, item) in enumerate(zip(args, items, strict=True))
        )
    if origin is dict:
        mapping = expect(dict, data, where)
        return {str(key): decode(args[1], item, f"{where}.{key}") for key, item in mapping.items()}
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        return decode_dataclass(kind, expect(dict, data, where), where)
    if kind is float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise ValueError(f"{where}: expected a number, got {data!r}")
        return float(data)
    if kind is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise ValueError(f"{where}: expected an integer, got {data!r}")
        return data
    if kind is Path:  # written relative to the repository when inside it (portable)
        return REPO / expect(str, data, where)
    if kind is type(None):
        if data is not None:
            raise ValueError(f"{where}: expected null, got {data!r}")
        return None
    if kind in (str, bool):
        return expect(kind, data, where)
    raise TypeError(f"{where}: cannot decode type {kind!r}")


def expect(kind: type[T], data: Any, where: str) -> T:
    if not isinstance(data, kind):
        raise ValueError(f"{where}: expected {kind.__name__}, got {type(data).__name__}")
    return data


def decode_dataclass(cls: type[T], data: Mapping[str, Any], where: str) -> T:
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not f.init:
            continue
        if f.name in data:
            values[f.name] = decode(hints[f.name], data[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValueError(f"{where}: {cls.__name__} needs {f.name!r}")
    return cls(**values)


def dumps(results: Results) -> str:
    return json.dumps(encode(results), indent=2) + "\n"


def loads(text: str) -> Results:
    data = json.loads(text)
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema != SCHEMA:
        raise ValueError(
            f"results of schema {schema!r}; this reader handles {SCHEMA!r} only "
            "(older files stay readable as plain JSON and through their markdown)"
        )
    return decode(Results, data)


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def write(results: Results, path: Path) -> None:
    atomic_write(path, dumps(results))


def read(path: Path) -> Results:
    return loads(path.read_text(encoding="utf-8"))
