"""The benchmark's results: the summary of every figure over repetitions, the goals, and the markdown
written next to the JSON.

summarise() and markdown() are pure functions of the Results record (bench/record.py), so a partial or
synthetic result set renders the same way; write() stores the JSON (through record.write) and the
markdown, each replaced atomically.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import configs, record
from bench.limits import overload_queued_timeout, read_float
from bench.record import FigureSummary, Goal, Results, SessionRecord, Summary
from bench.stats import Spread, median, ratio, scaling_efficiency, spread

REPO = Path(__file__).resolve().parents[1]
CONFIGS = configs.NAMES

# Goals of issue 13 ("a benchmark of the work users run"), on a 2-core machine.
EFFICIENCY_GOAL = 0.9  # I/O fan-out, 4 workers: throughput / (4 x throughput with 1)
VS_COMPOSE_GOALS = {1: 1.0, 2: 1.0, 4: 1.8}  # I/O fan-out throughput, tuned / compose
CPU_PER_TASK_GOAL = 0.25  # core-seconds per no-op task, all services, 1 worker
IDLE_CPU_GOAL = 0.2  # cores, the whole stack idle
IDLE_MEMORY_GOAL_GIB = 2.0  # the whole stack idle with one worker (issue 6 had it too)
# Goals of issue 6.
THROUGHPUT_RATIO_GOAL = 1.5  # no-op throughput, tuned / official, 1 and 2 workers
FAILOVER_GOAL_SECONDS = 10.0
# "Flat": 4 workers may add at most this many Postgres connections to 1 worker's through PgBouncer...
FLAT_TOLERANCE = 2
# ... and "rising" without it: at least one more per added worker from 1 to 4 workers.
RISE_MINIMUM = 3
# Clients that reach Postgres without PgBouncer in every configuration: postgres-exporter.
DIRECT_CLIENTS_ALLOWANCE = 2

Get = Callable[[SessionRecord], float | None]


def pgbouncer_max_db_connections(path: Path = REPO / "config" / "pgbouncer.ini") -> int | None:
    match = re.search(r"^max_db_connections\s*=\s*(\d+)", path.read_text(), re.MULTILINE)
    return int(match.group(1)) if match else None


# --- figures ------------------------------------------------------------------------------------------
def attribute(value: object, path: str) -> Any:
    """value.<path> (dotted), or None from the first step that is None: a run, wave or sample the
    session does not have."""
    for name in path.split("."):
        if value is None:
            return None
        value = getattr(value, name)
    return value


def of_session(path: str) -> Get:
    """session.<path>, e.g. "idle.memory.total_gib"."""
    return lambda session: attribute(session, path)


def noop(path: str) -> Callable[[int], Get]:
    """Per worker count: <the no-op run on N workers>.<path>."""
    return lambda workers: lambda session: attribute(session.noop_run(workers), path)


def fanout(path: str) -> Callable[[int], Get]:
    """Per worker count: <the fan-out wave on N workers>.<path>."""
    return lambda workers: lambda session: attribute(session.fanout_run(workers), path)


def first_trigger(session: SessionRecord) -> float | None:
    return session.noop[0].figures.trigger_to_first_start if session.noop else None


def fanout_efficiency(workers: int) -> Get:
    """Within one session: that session's wave on N workers against its wave on 1."""
    throughput = fanout("figures.throughput")

    def get(session: SessionRecord) -> float | None:
        return scaling_efficiency(throughput(workers)(session), throughput(1)(session), workers)

    return get


@dataclass(frozen=True)
class Figure:
    key: str
    group: str  # noop | fanout | overload | stack: the markdown table it goes in
    label: str
    unit: str
    better: str  # "higher" or "lower"
    get: Get


def per_workers(
    key: str,
    group: str,
    label: str,
    unit: str,
    better: str,
    get: Callable[[int], Get],
    workers: Sequence[int],
) -> list[Figure]:
    """One figure per worker count: key_w<N>, "label, N worker(s)"."""
    return [
        Figure(f"{key}_w{n}", group, f"{label}, {n} worker{'s' if n > 1 else ''}", unit, better, get(n))
        for n in workers
    ]


FIGURES: list[Figure] = [
    Figure(
        "up_seconds", "stack", "`up` → all healthy (images cached)", "s", "lower", of_session("up_seconds")
    ),
    Figure(
        "idle_memory",
        "stack",
        "Memory, idle, 1 worker (all containers)",
        "GiB",
        "lower",
        of_session("idle.memory.total_gib"),
    ),
    Figure(
        "idle_cpu",
        "stack",
        "CPU, idle, 1 worker (all containers)",
        "cores",
        "lower",
        of_session("idle.cpu.total_cores"),
    ),
    *per_workers(
        "throughput", "noop", "Throughput", "tasks/s", "higher", noop("figures.throughput"), (1, 2, 4)
    ),
    *per_workers(
        "latency_p50",
        "noop",
        "Start latency p50 (queued → running)",
        "s",
        "lower",
        noop("figures.latency_p50"),
        (1, 2),
    ),
    *per_workers(
        "latency_p95", "noop", "Start latency p95", "s", "lower", noop("figures.latency_p95"), (1, 2)
    ),
    *per_workers(
        "peak_concurrency",
        "noop",
        "Tasks running at once (peak)",
        "tasks",
        "higher",
        noop("figures.peak_concurrency"),
        (1, 2),
    ),
    Figure("trigger_to_first_task", "noop", "Trigger → first task running", "s", "lower", first_trigger),
    *per_workers(
        "cpu_per_task",
        "noop",
        "CPU per task, all services",
        "core-s",
        "lower",
        noop("cpu.per_task_total"),
        (1, 2),
    ),
    Figure(
        "failover_next_start",
        "noop",
        "Failover: kill → next task start",
        "s",
        "lower",
        of_session("failover.figures.next_start_seconds"),
    ),
    Figure(
        "failover_survivor_queued",
        "noop",
        "Failover: kill → first task queued by the survivor",
        "s",
        "lower",
        of_session("failover.figures.survivor_queued_seconds"),
    ),
    *per_workers(
        "load_memory", "noop", "Memory under load", "GiB", "lower", noop("memory_load.total_gib"), (1, 2, 4)
    ),
    *per_workers(
        "connections",
        "connections",
        "Postgres server connections",
        "conn.",
        "lower",
        noop("connections.max"),
        (1, 2, 4),
    ),
    *per_workers(
        "fanout_throughput",
        "fanout",
        "Throughput over the wave",
        "tasks/s",
        "higher",
        fanout("figures.throughput"),
        (1, 2, 4),
    ),
    *per_workers(
        "fanout_peak",
        "fanout",
        "Tasks running at once (peak)",
        "tasks",
        "higher",
        fanout("figures.peak_concurrency"),
        (1, 2, 4),
    ),
    *per_workers(
        "fanout_queue_wait_p95",
        "fanout",
        "Queue wait p95 (queued → running)",
        "s",
        "lower",
        fanout("figures.queue_wait_p95"),
        (1, 2, 4),
    ),
    *per_workers(
        "fanout_efficiency", "fanout", "Scaling efficiency", "ratio", "higher", fanout_efficiency, (2, 4)
    ),
    Figure(
        "overload_failed", "overload", "Tasks failed", "tasks", "lower", of_session("overload.figures.failed")
    ),
    Figure(
        "overload_requeued",
        "overload",
        "Task instances re-queued as stuck in queued",
        "tasks",
        "lower",
        of_session("overload.stuck.task_instances"),
    ),
    Figure(
        "overload_unfinished",
        "overload",
        "Tasks not ended in time",
        "tasks",
        "lower",
        of_session("overload.figures.unfinished"),
    ),
    Figure(
        "overload_seconds",
        "overload",
        "Wave: first run start → last run end",
        "s",
        "lower",
        of_session("overload.figures.wave_seconds"),
    ),
]
FIGURE_KEYS = {figure.key: figure for figure in FIGURES}


def values_of(results: Results, config: str, get: Get) -> list[float | None]:
    return [get(session) for session in results.sessions_of(config)]


def figure_summary(results: Results) -> dict[str, FigureSummary]:
    summary: dict[str, FigureSummary] = {}
    for figure in FIGURES:
        by_config = {config: spread(values_of(results, config, figure.get)) for config in CONFIGS}

        def medians(config: str, by_config: dict[str, Spread | None] = by_config) -> float | None:
            value = by_config[config]
            return value.median if value else None

        summary[figure.key] = FigureSummary(
            label=figure.label,
            unit=figure.unit,
            better=figure.better,
            by_config=by_config,
            ratio_official=ratio(medians(configs.TUNED), medians(configs.OFFICIAL)),
            ratio_compose=ratio(medians(configs.TUNED), medians(configs.COMPOSE)),
        )
    return summary


def by_service(
    results: Results, columns: Mapping[str, tuple[str, Callable[[SessionRecord], Mapping[str, float] | None]]]
) -> dict[str, dict[str, float | None]]:
    """service -> column -> median over the sessions of the column's configuration."""
    table: dict[str, dict[str, float | None]] = {}
    for column, (config, get) in columns.items():
        samples = [get(session) for session in results.sessions_of(config)]
        services = sorted({name for sample in samples if sample for name in sample})
        for service in services:
            values = [sample[service] for sample in samples if sample and service in sample]
            table.setdefault(service, {})[column] = median(values)
    return dict(sorted(table.items()))


def service_memory(results: Results) -> dict[str, dict[str, float | None]]:
    """Median GiB per service: idle and under load (1 worker), per configuration."""

    def idle(session: SessionRecord) -> Mapping[str, float] | None:
        return gib(attribute(session, "idle.memory.services"))

    def load(session: SessionRecord) -> Mapping[str, float] | None:
        return gib(attribute(session.noop_run(1), "memory_load.services"))

    columns = {f"{config}_idle": (config, idle) for config in CONFIGS}
    columns |= {f"{config}_load_w1": (config, load) for config in CONFIGS}
    return by_service(results, columns)


def gib(services: Mapping[str, int] | None) -> dict[str, float] | None:
    return None if services is None else {name: value / record.GIB for name, value in services.items()}


def service_cpu_per_task(results: Results) -> dict[str, dict[str, float | None]]:
    """Median core-seconds per no-op task per service, 1 worker, per configuration."""

    def get(session: SessionRecord) -> Mapping[str, float] | None:
        return attribute(session.noop_run(1), "cpu.per_task")

    return by_service(results, {config: (config, get) for config in CONFIGS})


def service_idle_cores(results: Results) -> dict[str, dict[str, float | None]]:
    def get(session: SessionRecord) -> Mapping[str, float] | None:
        return attribute(session, "idle.cpu.cores")

    return by_service(results, {config: (config, get) for config in CONFIGS})


# --- goals --------------------------------------------------------------------------------------------
def med(figures: Mapping[str, FigureSummary], key: str, config: str) -> float | None:
    value = figures[key].by_config.get(config)
    return None if value is None else value.median


def ranked(table: Mapping[str, Mapping[str, float | None]], column: str) -> list[tuple[str, float]]:
    """(service, value) of one column of a per-service table, largest first (a missing value as 0)."""
    return sorted(((name, cols.get(column) or 0.0) for name, cols in table.items()), key=lambda x: -x[1])


def not_measured(key: str, issue: int, title: str, target: str, why: str) -> Goal:
    return Goal(key, issue, title, target, "n/a", None, f"not measured in this run ({why})")


def ceiling_text(results: Results, config: str, workers: int, runs: int = 1) -> str | None:
    for session in results.sessions_of(config):
        found = session.ceiling(workers, runs)
        if found is not None:
            return f"{found.ceiling} ({found.limited_by})"
    return None


def efficiency_goal(results: Results, figures: Mapping[str, FigureSummary]) -> Goal:
    title, target = "I/O fan-out scaling efficiency, 4 workers", f"≥ {EFFICIENCY_GOAL:.2f}"
    value = med(figures, "fanout_efficiency_w4", configs.TUNED)
    if value is None:
        return not_measured(
            "fanout_efficiency_w4", 13, title, target, "needs tuned fan-out waves on 1 and 4 workers"
        )
    one, four = (
        med(figures, "fanout_throughput_w1", configs.TUNED),
        med(figures, "fanout_throughput_w4", configs.TUNED),
    )
    measured = f"{value:.2f} ({four:.3f} vs 4 x {one:.3f} tasks/s)"
    if value >= EFFICIENCY_GOAL:
        return Goal("fanout_efficiency_w4", 13, title, target, measured, True, "")
    peak = med(figures, "fanout_peak_w4", configs.TUNED)
    runs = results.settings.fanout_runs
    needed = EFFICIENCY_GOAL * 4 * (one or 0.0)
    detail = f"short by {EFFICIENCY_GOAL - value:.2f}: 4 workers would need {needed:.3f} tasks/s"
    if peak is not None:
        detail += f"; tasks at once: peak {peak:g} of a ceiling {ceiling_text(results, 'tuned', 4, runs)}"
    wait = med(figures, "fanout_queue_wait_p95_w4", configs.TUNED)
    if wait is not None:
        detail += f"; queue wait p95 {wait:.1f} s"
    return Goal("fanout_efficiency_w4", 13, title, target, measured, False, detail + ".")


def ratio_goal(
    results: Results,
    figures: Mapping[str, FigureSummary],
    *,
    key: str,
    issue: int,
    title: str,
    other: str,
    goal: float,
    workers: int,
    throughput: str,
    peak: str,
    runs: int,
    digits: int,
    why: str,
    percent_more: bool,
    ceilings: str,
) -> Goal:
    """Throughput, tuned / `other`, of at least `goal` with `workers` workers (figures <throughput>_wN
    and <peak>_wN). Where short: by how much and what tuned would need (`digits` decimals; with
    `percent_more`, how much more that is), then `ceilings` and the ceilings of tasks at once of both
    configurations (`runs` concurrent DAG runs), and the peaks seen."""
    throughput_key, peak_key = f"{throughput}_w{workers}", f"{peak}_w{workers}"
    target = f"≥ {goal:.1f}x"
    tuned, base = med(figures, throughput_key, configs.TUNED), med(figures, throughput_key, other)
    if tuned is None or not base:
        return not_measured(key, issue, title, target, why)
    factor = tuned / base
    measured = f"{factor:.2f}x ({tuned:.{digits}f} vs {base:.{digits}f} tasks/s)"
    if factor >= goal:
        return Goal(key, issue, title, target, measured, True, "")
    needed = goal * base
    detail = f"short by {goal - factor:.2f}x: tuned would need {needed:.{digits}f} tasks/s"
    if percent_more:
        detail += f" ({(needed / tuned - 1) * 100:.0f}% more)"
    detail += (
        f". {ceilings}tuned {ceiling_text(results, 'tuned', workers, runs)} vs {other} "
        f"{ceiling_text(results, other, workers, runs)}"
    )
    peaks = [med(figures, peak_key, config) for config in (configs.TUNED, other)]
    if None not in peaks:
        detail += f"; peak seen {peaks[0]:g} vs {peaks[1]:g}"
    return Goal(key, issue, title, target, measured, False, detail + ".")


def vs_compose_goal(results: Results, figures: Mapping[str, FigureSummary], workers: int) -> Goal:
    return ratio_goal(
        results,
        figures,
        key=f"fanout_vs_compose_w{workers}",
        issue=13,
        title=f"I/O fan-out throughput vs the official compose, {workers} worker{'s' if workers > 1 else ''}",
        other=configs.COMPOSE,
        goal=VS_COMPOSE_GOALS[workers],
        workers=workers,
        throughput="fanout_throughput",
        peak="fanout_peak",
        runs=results.settings.fanout_runs,
        digits=3,
        why="needs tuned and compose fan-out waves",
        percent_more=False,
        ceilings="Tasks at once: ",
    )


def overload_text(figures: Mapping[str, FigureSummary], config: str) -> str | None:
    """`<config> F failed, R re-queued[, U not ended in time]`, or None without an overload run."""
    failed = med(figures, "overload_failed", config)
    if failed is None:
        return None
    requeued = number(med(figures, "overload_requeued", config), "tasks")
    unfinished = med(figures, "overload_unfinished", config)
    text = f"{config} {failed:g} failed, {requeued} re-queued"
    return text + (f", {unfinished:g} not ended in time" if unfinished else "")


def overload_goal(results: Results, figures: Mapping[str, FigureSummary]) -> Goal:
    settings = results.settings
    title = (
        f"Overload ({settings.overload_tasks} tasks of {settings.overload_task_seconds} s on 1 worker): "
        "nothing failed or re-queued"
    )
    target = "0 failed, 0 re-queued"
    tuned = overload_text(figures, configs.TUNED)
    if tuned is None:
        why = "skipped by --quick" if settings.quick else "needs a tuned overload run"
        return not_measured("overload", 13, title, target, why)
    others = [
        text for config in (configs.COMPOSE, configs.OFFICIAL) if (text := overload_text(figures, config))
    ]
    measured = "; ".join([tuned, *others])
    values = [
        med(figures, key, configs.TUNED)
        for key in ("overload_failed", "overload_requeued", "overload_unfinished")
    ]
    met = all(not value for value in values)
    note = (
        f"task_queued_timeout {overload_queued_timeout():g} s in every configuration for this workload "
        f"({configs.OVERLOAD})"
    )
    if met:
        return Goal("overload", 13, title, target, measured, True, note + ".")
    return Goal("overload", 13, title, target, measured, False, f"tuned lost or re-queued tasks; {note}.")


def cpu_goal(results: Results, figures: Mapping[str, FigureSummary]) -> Goal:
    title = "CPU per no-op task, all services, 1 worker"
    target = f"≤ {CPU_PER_TASK_GOAL:.2f} core-s"
    value = med(figures, "cpu_per_task_w1", configs.TUNED)
    if value is None:
        return not_measured("cpu_per_task", 13, title, target, "needs a tuned no-op run after an idle window")
    top = ranked(service_cpu_per_task(results), configs.TUNED)
    biggest = f"biggest: {top[0][0]} {top[0][1]:.3f}" if top else ""
    measured = f"{value:.3f} core-s" + (f" ({biggest})" if biggest else "")
    compose = med(figures, "cpu_per_task_w1", configs.COMPOSE)
    beside = f"compose {compose:.3f} core-s" if compose is not None else ""
    if value <= CPU_PER_TASK_GOAL:
        return Goal("cpu_per_task", 13, title, target, measured, True, beside)
    over = value - CPU_PER_TASK_GOAL
    largest = ", ".join(f"{name} {cores:.3f}" for name, cores in top[:3])
    detail = f"over by {over:.3f} core-s ({over / CPU_PER_TASK_GOAL * 100:.0f}%); largest: {largest}"
    return Goal(
        "cpu_per_task", 13, title, target, measured, False, detail + (f"; {beside}" if beside else "") + "."
    )


def idle_cpu_goal(results: Results, figures: Mapping[str, FigureSummary]) -> Goal:
    title = "Whole stack idle CPU, 1 worker"
    target = f"≤ {IDLE_CPU_GOAL:.2f} cores"
    value = med(figures, "idle_cpu", configs.TUNED)
    if value is None:
        return not_measured("idle_cpu", 13, title, target, "needs a tuned session with an idle window")
    measured = f"{value:.3f} cores"
    if value <= IDLE_CPU_GOAL:
        return Goal("idle_cpu", 13, title, target, measured, True, "")
    top = ranked(service_idle_cores(results), configs.TUNED)[:3]
    detail = f"over by {value - IDLE_CPU_GOAL:.3f} cores; largest: " + ", ".join(
        f"{name} {cores:.3f}" for name, cores in top
    )
    return Goal("idle_cpu", 13, title, target, measured, False, detail + ".")


def memory_goal(results: Results, figures: Mapping[str, FigureSummary]) -> Goal:
    title = "Whole stack idle memory, 1 worker"
    target = f"≤ {IDLE_MEMORY_GOAL_GIB:.1f} GiB"
    value = med(figures, "idle_memory", configs.TUNED)
    if value is None:
        return not_measured("idle_memory", 13, title, target, "needs a tuned session")
    grafana = all(s.with_grafana for s in results.sessions_of(configs.TUNED))
    measured = f"{value:.2f} GiB" + ("" if grafana else " (without Grafana: no image here)")
    if value <= IDLE_MEMORY_GOAL_GIB:
        return Goal("idle_memory", 13, title, target, measured, True, "")
    top = ranked(service_memory(results), "tuned_idle")[:3]
    over = value - IDLE_MEMORY_GOAL_GIB
    detail = (
        f"over by {over:.2f} GiB ({over / IDLE_MEMORY_GOAL_GIB * 100:.0f}%); largest services: "
        + ", ".join(f"{name} {size:.2f} GiB" for name, size in top)
    )
    return Goal("idle_memory", 13, title, target, measured, False, detail + ".")


def throughput_goal(results: Results, figures: Mapping[str, FigureSummary], workers: int) -> Goal:
    return ratio_goal(
        results,
        figures,
        key=f"throughput_w{workers}",
        issue=6,
        title=(
            f"No-op throughput ≥ {THROUGHPUT_RATIO_GOAL}x official, "
            f"{workers} worker{'s' if workers > 1 else ''}"
        ),
        other=configs.OFFICIAL,
        goal=THROUGHPUT_RATIO_GOAL,
        workers=workers,
        throughput="throughput",
        peak="peak_concurrency",
        runs=1,
        digits=2,
        why="needs tuned and official sessions",
        percent_more=True,
        ceilings="Limits: tasks of one run at once, ",
    )


def connections_goal(results: Results, figures: Mapping[str, FigureSummary]) -> Goal:
    title = "Postgres connections flat 1 → 4 workers via PgBouncer, rising without"
    target = f"PgBouncer: +≤{FLAT_TOLERANCE}, within its pool; direct: +≥{RISE_MINIMUM}"
    pgb = [med(figures, f"connections_w{n}", configs.TUNED) for n in (1, 2, 4)]
    direct = [med(figures, f"connections_w{n}", configs.DIRECT) for n in (1, 2, 4)]
    if pgb[0] is None or pgb[2] is None or direct[0] is None or direct[2] is None:
        why = (
            "4 workers and direct-Postgres sessions are skipped by --quick"
            if results.settings.quick
            else "needs a tuned session with 4 workers and a direct-Postgres session"
        )
        return not_measured("connections", 6, title, target, why)

    def series(values: Sequence[float | None]) -> str:
        return " → ".join("?" if v is None else f"{v:g}" for v in values)

    measured = f"PgBouncer {series(pgb)}; direct {series(direct)}"
    pool = pgbouncer_max_db_connections()
    ceiling = None if pool is None else pool + DIRECT_CLIENTS_ALLOWANCE
    rise_pgb, rise_direct = pgb[2] - pgb[0], direct[2] - direct[0]
    problems = []
    if rise_pgb > FLAT_TOLERANCE:
        over = rise_pgb - FLAT_TOLERANCE
        problems.append(
            f"through PgBouncer rose by {rise_pgb:g} (allowed +{FLAT_TOLERANCE}, over by {over:g})"
        )
    if ceiling is not None and pgb[2] > ceiling:
        problems.append(
            f"through PgBouncer {pgb[2]:g} exceeds max_db_connections {pool} "
            f"(+{DIRECT_CLIENTS_ALLOWANCE} direct clients) by {pgb[2] - ceiling:g}"
        )
    if rise_direct < RISE_MINIMUM:
        problems.append(f"without PgBouncer rose only by {rise_direct:g} (expected +{RISE_MINIMUM} or more)")
    return Goal(
        "connections",
        6,
        title,
        target,
        measured,
        not problems,
        "; ".join(problems) + ("." if problems else ""),
    )


def failover_goal(results: Results, figures: Mapping[str, FigureSummary]) -> Goal:
    title = "Failover: kill a scheduler → next task starts"
    target = f"< {FAILOVER_GOAL_SECONDS:.0f} s"
    value = med(figures, "failover_next_start", configs.TUNED)
    if value is None:
        ran = any(s.failover for s in results.sessions_of(configs.TUNED))
        why = "no task started after the kill in any run" if ran else "no failover run completed"
        return Goal("failover", 6, title, target, "n/a", None, f"not measured ({why})")
    measured = f"{value:.1f} s"
    if value < FAILOVER_GOAL_SECONDS:
        return Goal("failover", 6, title, target, measured, True, "")
    survivor = med(figures, "failover_survivor_queued", configs.TUNED)
    detail = f"over by {value - FAILOVER_GOAL_SECONDS:.1f} s"
    if survivor is not None:
        detail += f"; the surviving scheduler queued its first task {survivor:.1f} s after the kill"
    return Goal("failover", 6, title, target, measured, False, detail + ".")


def goals(results: Results, figures: Mapping[str, FigureSummary]) -> list[Goal]:
    return [
        efficiency_goal(results, figures),
        *(vs_compose_goal(results, figures, n) for n in (1, 2, 4)),
        overload_goal(results, figures),
        cpu_goal(results, figures),
        idle_cpu_goal(results, figures),
        memory_goal(results, figures),
        throughput_goal(results, figures, 1),
        throughput_goal(results, figures, 2),
        connections_goal(results, figures),
        failover_goal(results, figures),
    ]


def summarise(results: Results) -> Summary:
    figures = figure_summary(results)
    return Summary(
        figures=figures,
        goals=goals(results, figures),
        memory_by_service_gib=service_memory(results),
        cpu_per_task_by_service=service_cpu_per_task(results),
        idle_cores_by_service=service_idle_cores(results),
    )


# --- rendering ----------------------------------------------------------------------------------------
def number(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit in ("conn.", "tasks"):
        return f"{value:g}"
    if unit == "s" and abs(value) >= 10:
        return f"{value:.1f}"
    if unit in ("core-s", "cores", "tasks/s") and abs(value) < 1:
        return f"{value:.3f}"
    return f"{value:.2f}"


def cell(value: Spread | None, unit: str) -> str:
    if value is None:
        return "n/a"
    text = number(value.median, unit)
    if value.n > 1:
        text += f" ({number(value.min, unit)}-{number(value.max, unit)})"
    return text


def factor(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def row(*cells: object) -> str:
    """A markdown table row; a | inside a cell would split it."""
    return "| " + " | ".join(str(c).replace("|", "/").replace("\n", " ") for c in cells) + " |"


def met_text(met: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "not measured"}[met]


def present_configs(figures: Iterable[FigureSummary]) -> list[str]:
    listed = list(figures)
    return [config for config in CONFIGS if any(f.by_config.get(config) for f in listed)]


def figure_table(summary: Summary, group: str) -> list[str]:
    chosen = [
        (f.key, summary.figures[f.key]) for f in FIGURES if f.group == group and f.key in summary.figures
    ]
    chosen = [(key, f) for key, f in chosen if any(f.by_config.values())]
    if not chosen:
        return ["No figures in this run."]
    columns = present_configs(f for _, f in chosen)
    lines = [
        row("figure", "unit", "better", *columns, "tuned / official", "tuned / compose"),
        "|" + "---|" * (len(columns) + 5),
    ]
    for _, figure in chosen:
        lines.append(
            row(
                figure.label,
                figure.unit,
                figure.better,
                *(cell(figure.by_config.get(config), figure.unit) for config in columns),
                factor(figure.ratio_official),
                factor(figure.ratio_compose),
            )
        )
    return lines


def service_table(
    table: Mapping[str, Mapping[str, float | None]], columns: Sequence[str], unit: str, total: bool
) -> list[str]:
    present = [c for c in columns if any(values.get(c) is not None for values in table.values())]
    if not present:
        return ["Not measured in this run."]
    lines = [row("service", *present), "|" + "---|" * (len(present) + 1)]
    for service, values in table.items():
        lines.append(row(service, *(number(values.get(c), unit) for c in present)))
    if total:
        sums = [sum(v.get(c) or 0.0 for v in table.values()) for c in present]
        lines.append(row("**all services**", *(f"**{number(s, unit)}**" for s in sums)))
    return lines


def overload_table(results: Results) -> list[str]:
    lines = [
        row(
            "session",
            "tasks",
            "succeeded",
            "failed",
            "not ended",
            "re-queued (times)",
            "tries exceeded",
            "wave (s)",
            "default_pool",
            "stuck check every (s)",
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    found = False
    for session in results.sessions:
        wave = session.overload
        if wave is None:
            continue
        found = True
        figures, stuck = wave.figures, wave.stuck
        lines.append(
            row(
                f"{session.config} #{session.repetition}",
                figures.tasks,
                figures.succeeded,
                figures.failed,
                figures.unfinished,
                f"{stuck.task_instances} ({stuck.events})" if stuck else "n/a",
                stuck.tries_exceeded if stuck else "n/a",
                number(figures.wave_seconds, "s"),
                "n/a" if wave.pool_slots is None else wave.pool_slots,
                f"{read_float(session.config, 'scheduler', 'task_queued_timeout_check_interval'):g}",
            )
        )
    return (
        lines
        if found
        else ["Not run in this run" + (" (--quick skips it)." if results.settings.quick else ".")]
    )


def header(results: Results) -> list[str]:
    settings, host = results.settings, results.host
    images = "offline kit" if settings.offline else "official"
    machine = (
        f"{host.cpus} CPUs, {host.memory_gib} GiB, Docker {host.docker}, {host.compose}" if host else "?"
    )
    fanout = ", ".join(f"{settings.fanout_tasks(n)} tasks on {n}" for n in settings.fanout_workers)
    configurations = "; ".join(f"**{c.name}** ({c.letter}): {c.summary}" for c in configs.CONFIGURATIONS)
    sessions = " ".join(spec.short for spec in results.plan) + (" (quick pass)" if settings.quick else "")
    workloads = [
        f"no-op, {settings.tasks} mapped tasks per run ({settings.failover_tasks} in the failover run)",
        f"I/O fan-out, {settings.fanout_runs} concurrent runs of tasks sleeping "
        f"{settings.fanout_min_seconds}-{settings.fanout_max_seconds} s ({fanout} worker(s))",
    ]
    if settings.overload:
        workloads.append(
            f"overload, {settings.overload_tasks} tasks of {settings.overload_task_seconds} s in "
            f"{settings.overload_runs} runs on 1 worker, with [scheduler] task_queued_timeout overridden "
            f"to {overload_queued_timeout():g} s in every configuration for this workload "
            f"({configs.OVERLOAD}; the stack's own is "
            f"{read_float('tuned', 'scheduler', 'task_queued_timeout'):g} s, Airflow's default "
            f"{read_float('official', 'scheduler', 'task_queued_timeout'):g} s)"
        )
    status = f"**Status: {results.status}**" + (f": {results.error}" if results.error else "")
    return [
        f"# Benchmark: this stack against Airflow's defaults and the official compose ({results.started_at})",
        "",
        status,
        "",
        f"Machine: {machine}; images: {images}. "
        "Figures: median over repetitions, (min-max) where more than one.",
        "",
        f"Configurations: {configurations}. Sessions: {sessions}.",
        "",
        "Workloads: " + "; ".join(workloads) + ".",
    ]


SECTIONS = [
    (
        "I/O fan-out",
        "fanout",
        "Throughput = mapped tasks / (last run end - first run start); peak from the tasks' start and end "
        "times; queue wait = start - queued; efficiency = throughput with N / (N x throughput with 1), "
        "within a session.",
    ),
    (
        "Overload",
        "overload",
        "Tasks failed, and task instances the scheduler re-queued as stuck in queued "
        "(`log` event 'stuck in queued reschedule').",
    ),
    ("No-op workload", "noop", ""),
    ("Stack", "stack", ""),
]


def connections_table(summary: Summary) -> list[str]:
    columns = {
        configs.TUNED: "tuned, through PgBouncer",
        configs.OFFICIAL: "official, through PgBouncer",
        configs.COMPOSE: "compose, straight to Postgres",
        configs.DIRECT: "direct: tuned, straight to Postgres",
    }
    lines = [row("workers", *columns.values()), "|---|---|---|---|---|"]
    for workers in (1, 2, 4):
        figure = summary.figures[f"connections_w{workers}"]
        lines.append(row(workers, *(cell(figure.by_config.get(c), "conn.") for c in columns)))
    return lines


def session_problems(session: SessionRecord) -> list[str]:
    problems = [p for run in session.noop for p in run.problems]
    problems += [p for wave in session.fanout for p in wave.problems]
    problems += session.overload.problems if session.overload else []
    problems += session.failover.problems if session.failover else []
    problems += [f"CPU: {p}" for run in session.noop if run.cpu for p in run.cpu.problems]
    return problems + ([f"error: {session.error}"] if session.error else [])


def sessions_table(results: Results) -> list[str]:
    lines = [
        "| # | session | started | up → healthy (s) | runs | problems / error |",
        "|---|---|---|---|---|---|",
    ]
    for index, session in enumerate(results.sessions, start=1):
        runs = [f"{len(session.noop)} no-op"]
        runs += [f"{len(session.fanout)} fan-out"] if session.fanout else []
        runs += ["failover"] if session.failover else []
        runs += ["overload"] if session.overload else []
        lines.append(
            row(
                index,
                f"{session.config} #{session.repetition}",
                session.started_at,
                number(session.up_seconds, "s"),
                " + ".join(runs),
                "; ".join(session_problems(session))[:400],
            )
        )
    return lines


def markdown(results: Results) -> str:
    summary = results.summary or summarise(results)
    lines = [*header(results), "", "## Goals", ""]
    lines += [
        "| issue | goal | target | measured | met | by how much / what limits it |",
        "|---|---|---|---|---|---|",
    ]
    for goal in summary.goals:
        lines.append(
            row(f"#{goal.issue}", goal.title, goal.target, goal.measured, met_text(goal.met), goal.detail)
        )
    for title, group, note in SECTIONS:
        lines += ["", f"## {title}", "", *([note, ""] if note else []), *figure_table(summary, group)]
        if group == "overload":
            lines += ["", *overload_table(results)]
    lines += [
        "",
        "## CPU per no-op task by service (core-seconds, 1 worker, idle rate subtracted; median)",
        "",
    ]
    lines += service_table(summary.cpu_per_task_by_service, CONFIGS, "core-s", total=True)
    lines += ["", "## Idle CPU by service (cores, 1 worker; median)", ""]
    lines += service_table(summary.idle_cores_by_service, CONFIGS, "cores", total=True)
    lines += ["", "## Postgres server connections under load (max of one sample per second)", ""]
    lines += connections_table(summary)
    if summary.memory_by_service_gib:
        columns = [f"{c}_{kind}" for kind in ("idle", "load_w1") for c in CONFIGS]
        lines += [
            "",
            "## Memory by service (GiB, median; all replicas together; load: no-op run, 1 worker)",
            "",
        ]
        lines += service_table(summary.memory_by_service_gib, columns, "GiB", total=False)
    if results.sessions:
        lines += ["", "## Sessions", "", *sessions_table(results)]
    return "\n".join(lines) + "\n"


def write(results: Results, json_path: Path) -> Path:
    """Summarise, then write the JSON and the markdown next to it (same name, .md); the markdown path."""
    results.summary = summarise(results)
    record.write(results, json_path)
    markdown_path = json_path.with_suffix(".md")
    record.atomic_write(markdown_path, markdown(results))
    return markdown_path
