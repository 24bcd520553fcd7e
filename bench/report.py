"""The benchmark's results: the summary of every figure over repetitions, the goals, the JSON file and
the markdown table written next to it.

summarise() and markdown() are pure functions of the results dict (the JSON document), so a partial
or synthetic result set renders the same way; write() replaces both files atomically.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.stats import Spread, median, ratio, spread

SCHEMA = "airflow-stack-bench/1"
CONFIGS = ("tuned", "official", "direct")
REPO = Path(__file__).resolve().parents[1]

# Goals of issue 6, measured on a 2-core machine.
THROUGHPUT_RATIO_GOAL = 1.5
IDLE_MEMORY_GOAL_GIB = 2.0
FAILOVER_GOAL_SECONDS = 10.0
# "Flat": 4 workers may add at most this many Postgres connections to 1 worker's through PgBouncer...
FLAT_TOLERANCE = 2
# ... and "rising" without it: at least one more per added worker from 1 to 4 workers.
RISE_MINIMUM = 3
# Clients that reach Postgres without PgBouncer in every configuration: postgres-exporter.
DIRECT_CLIENTS_ALLOWANCE = 2

Session = Mapping[str, object]


def pgbouncer_max_db_connections(path: Path = REPO / "config" / "pgbouncer.ini") -> int | None:
    match = re.search(r"^max_db_connections\s*=\s*(\d+)", path.read_text(), re.MULTILINE)
    return int(match.group(1)) if match else None


# --- figures ------------------------------------------------------------------------------------------
def run_with_workers(session: Session, workers: int) -> Mapping[str, object] | None:
    runs = session.get("runs") or []
    assert isinstance(runs, list)
    return next((r for r in runs if r.get("kind") == "mapped" and r.get("workers") == workers), None)


def run_value(workers: int, key: str) -> Callable[[Session], float | None]:
    def get(session: Session) -> float | None:
        run = run_with_workers(session, workers)
        return None if run is None else run["figures"].get(key)  # type: ignore[index]

    return get


def connections(workers: int) -> Callable[[Session], float | None]:
    def get(session: Session) -> float | None:
        run = run_with_workers(session, workers)
        return None if run is None else run["connections"].get("max")  # type: ignore[index]

    return get


def load_memory(workers: int) -> Callable[[Session], float | None]:
    def get(session: Session) -> float | None:
        run = run_with_workers(session, workers)
        memory = None if run is None else run.get("memory_load")
        return None if not memory else memory["total_gib"]  # type: ignore[index]

    return get


def idle_memory(session: Session) -> float | None:
    memory = session.get("idle_memory")
    return None if not memory else memory["total_gib"]  # type: ignore[index]


def first_trigger(session: Session) -> float | None:
    runs = [r for r in session.get("runs") or [] if r.get("kind") == "mapped"]  # type: ignore[union-attr]
    return runs[0]["figures"].get("trigger_to_first_start") if runs else None


def failover_value(key: str) -> Callable[[Session], float | None]:
    def get(session: Session) -> float | None:
        failover = session.get("failover")
        return None if not failover else (failover.get("figures") or {}).get(key)  # type: ignore[union-attr]

    return get


def up_seconds(session: Session) -> float | None:
    return session.get("up_seconds")  # type: ignore[return-value]


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    unit: str
    better: str  # "higher" or "lower"
    get: Callable[[Session], float | None]


FIGURES: list[Figure] = [
    Figure("throughput_w1", "Throughput, 1 worker", "tasks/s", "higher", run_value(1, "throughput")),
    Figure("throughput_w2", "Throughput, 2 workers", "tasks/s", "higher", run_value(2, "throughput")),
    Figure("throughput_w4", "Throughput, 4 workers", "tasks/s", "higher", run_value(4, "throughput")),
    Figure(
        "latency_p50_w1",
        "Start latency p50 (queued → running), 1 worker",
        "s",
        "lower",
        run_value(1, "latency_p50"),
    ),
    Figure("latency_p95_w1", "Start latency p95, 1 worker", "s", "lower", run_value(1, "latency_p95")),
    Figure("latency_p50_w2", "Start latency p50, 2 workers", "s", "lower", run_value(2, "latency_p50")),
    Figure("latency_p95_w2", "Start latency p95, 2 workers", "s", "lower", run_value(2, "latency_p95")),
    Figure("up_seconds", "`up` → all healthy (images cached)", "s", "lower", up_seconds),
    Figure("trigger_to_first_task", "Trigger → first task running", "s", "lower", first_trigger),
    Figure("idle_memory", "Memory, idle, 1 worker (all containers)", "GiB", "lower", idle_memory),
    Figure("load_memory_w1", "Memory under load, 1 worker", "GiB", "lower", load_memory(1)),
    Figure("load_memory_w2", "Memory under load, 2 workers", "GiB", "lower", load_memory(2)),
    Figure("load_memory_w4", "Memory under load, 4 workers", "GiB", "lower", load_memory(4)),
    Figure("connections_w1", "Postgres server connections, 1 worker", "conn.", "lower", connections(1)),
    Figure("connections_w2", "Postgres server connections, 2 workers", "conn.", "lower", connections(2)),
    Figure("connections_w4", "Postgres server connections, 4 workers", "conn.", "lower", connections(4)),
    Figure(
        "failover_next_start",
        "Failover: kill → next task start",
        "s",
        "lower",
        failover_value("next_start_seconds"),
    ),
    Figure(
        "failover_survivor_queued",
        "Failover: kill → first task queued by the survivor",
        "s",
        "lower",
        failover_value("survivor_queued_seconds"),
    ),
    Figure(
        "peak_concurrency_w1",
        "Tasks running at once (peak), 1 worker",
        "tasks",
        "higher",
        run_value(1, "peak_concurrency"),
    ),
    Figure(
        "peak_concurrency_w2",
        "Tasks running at once (peak), 2 workers",
        "tasks",
        "higher",
        run_value(2, "peak_concurrency"),
    ),
]


def sessions_of(results: Mapping[str, object], config: str) -> list[Session]:
    sessions = results.get("sessions") or []
    assert isinstance(sessions, list)
    return [s for s in sessions if s.get("config") == config]


def figure_summary(results: Mapping[str, object]) -> dict[str, dict[str, object]]:
    summary: dict[str, dict[str, object]] = {}
    for figure in FIGURES:
        per_config: dict[str, Spread | None] = {
            config: spread(figure.get(s) for s in sessions_of(results, config)) for config in CONFIGS
        }
        tuned, official = per_config["tuned"], per_config["official"]
        summary[figure.key] = {
            "label": figure.label,
            "unit": figure.unit,
            "better": figure.better,
            **{config: (value.as_dict() if value else None) for config, value in per_config.items()},
            "ratio_tuned_official": ratio(
                tuned.median if tuned else None, official.median if official else None
            ),
        }
    return summary


def service_memory(results: Mapping[str, object]) -> dict[str, dict[str, float | None]]:
    """Median GiB per service: idle and under load (1 worker), tuned and official."""
    columns: dict[str, Callable[[Session], Mapping[str, int] | None]] = {}
    for config in ("tuned", "official"):
        columns[f"{config}_idle"] = lambda s: (s.get("idle_memory") or {}).get("services")  # type: ignore[union-attr]
        columns[f"{config}_load_w1"] = lambda s: (
            (run_with_workers(s, 1) or {}).get("memory_load") or {}
        ).get(  # type: ignore[union-attr]
            "services"
        )
    table: dict[str, dict[str, float | None]] = {}
    for column, get in columns.items():
        config = column.split("_", 1)[0]
        samples = [get(s) for s in sessions_of(results, config)]
        services = sorted({name for sample in samples if sample for name in sample})
        for service in services:
            values = [sample[service] / 1024**3 for sample in samples if sample and service in sample]
            table.setdefault(service, {})[column] = median(values)
    return dict(sorted(table.items()))


# --- goals --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Goal:
    key: str
    title: str
    target: str
    measured: str
    met: bool | None  # None: not measured in this run
    detail: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def med(summary: Mapping[str, Mapping[str, object]], key: str, config: str) -> float | None:
    value = summary[key].get(config)
    return None if value is None else float(value["median"])  # type: ignore[index]


def ceiling_text(results: Mapping[str, object], config: str, workers: int) -> str | None:
    for session in sessions_of(results, config):
        for entry in session.get("ceilings") or []:  # type: ignore[union-attr]
            if entry.get("workers") == workers:
                return f"{entry['ceiling']} ({entry['limited_by']})"
    return None


def throughput_goal(results: Mapping[str, object], summary: Mapping, workers: int) -> Goal:
    key = f"throughput_w{workers}"
    title = f"Throughput ≥ {THROUGHPUT_RATIO_GOAL}x official, {workers} worker{'s' if workers > 1 else ''}"
    target = f"≥ {THROUGHPUT_RATIO_GOAL:.1f}x"
    tuned, official = med(summary, key, "tuned"), med(summary, key, "official")
    if tuned is None or official is None or official == 0:
        return Goal(key, title, target, "n/a", None, "not measured in this run")
    factor = tuned / official
    measured = f"{factor:.2f}x ({tuned:.2f} vs {official:.2f} tasks/s)"
    if factor >= THROUGHPUT_RATIO_GOAL:
        return Goal(key, title, target, measured, True, "")
    needed = THROUGHPUT_RATIO_GOAL * official
    peak_t = med(summary, f"peak_concurrency_w{workers}", "tuned")
    peak_o = med(summary, f"peak_concurrency_w{workers}", "official")
    detail = (
        f"short by {THROUGHPUT_RATIO_GOAL - factor:.2f}x: tuned would need {needed:.2f} tasks/s "
        f"({(needed / tuned - 1) * 100:.0f}% more). Limits: tasks of one run at once, tuned "
        f"{ceiling_text(results, 'tuned', workers)} vs official {ceiling_text(results, 'official', workers)}"
    )
    if peak_t is not None and peak_o is not None:
        detail += f"; peak seen {peak_t:g} vs {peak_o:g}"
    return Goal(key, title, target, measured, False, detail + ".")


def memory_goal(results: Mapping[str, object], summary: Mapping) -> Goal:
    title = "Full stack idle memory, 1 worker"
    target = f"< {IDLE_MEMORY_GOAL_GIB:.1f} GiB"
    value = med(summary, "idle_memory", "tuned")
    if value is None:
        return Goal("idle_memory", title, target, "n/a", None, "not measured in this run")
    grafana = all(s.get("with_grafana") for s in sessions_of(results, "tuned"))
    measured = f"{value:.2f} GiB" + ("" if grafana else " (without Grafana: no image here)")
    if value < IDLE_MEMORY_GOAL_GIB:
        return Goal("idle_memory", title, target, measured, True, "")
    services = service_memory(results)
    top = sorted(
        ((name, cols.get("tuned_idle") or 0.0) for name, cols in services.items()), key=lambda x: -x[1]
    )[:3]
    over = value - IDLE_MEMORY_GOAL_GIB
    detail = (
        f"over by {over:.2f} GiB ({over / IDLE_MEMORY_GOAL_GIB * 100:.0f}%); largest services: "
        + ", ".join(f"{name} {gib:.2f} GiB" for name, gib in top)
    )
    return Goal("idle_memory", title, target, measured, False, detail + ".")


def connections_goal(results: Mapping[str, object], summary: Mapping) -> Goal:
    title = "Postgres connections flat 1 → 4 workers via PgBouncer, rising without"
    target = f"PgBouncer: +≤{FLAT_TOLERANCE}, within its pool; direct: +≥{RISE_MINIMUM}"
    pgb = [med(summary, f"connections_w{n}", "tuned") for n in (1, 2, 4)]
    direct = [med(summary, f"connections_w{n}", "direct") for n in (1, 2, 4)]
    if pgb[0] is None or pgb[2] is None or direct[0] is None or direct[2] is None:
        settings = results.get("settings") or {}
        why = (
            "4 workers and direct-Postgres sessions are skipped by --quick"
            if settings.get("quick")  # type: ignore[union-attr]
            else "needs a tuned session with 4 workers and a direct-Postgres session"
        )
        return Goal("connections", title, target, "n/a", None, f"not measured in this run ({why})")

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
        "connections", title, target, measured, not problems, "; ".join(problems) + ("." if problems else "")
    )


def failover_goal(results: Mapping[str, object], summary: Mapping) -> Goal:
    title = "Failover: kill a scheduler → next task starts"
    target = f"< {FAILOVER_GOAL_SECONDS:.0f} s"
    value = med(summary, "failover_next_start", "tuned")
    if value is None:
        ran = any(s.get("failover") for s in sessions_of(results, "tuned"))
        why = "no task started after the kill in any run" if ran else "no failover run completed"
        return Goal("failover", title, target, "n/a", None, f"not measured ({why})")
    measured = f"{value:.1f} s"
    if value < FAILOVER_GOAL_SECONDS:
        return Goal("failover", title, target, measured, True, "")
    survivor = med(summary, "failover_survivor_queued", "tuned")
    detail = f"over by {value - FAILOVER_GOAL_SECONDS:.1f} s"
    if survivor is not None:
        detail += f"; the surviving scheduler queued its first task {survivor:.1f} s after the kill"
    return Goal("failover", title, target, measured, False, detail + ".")


def goals(results: Mapping[str, object], summary: Mapping) -> list[Goal]:
    return [
        throughput_goal(results, summary, 1),
        throughput_goal(results, summary, 2),
        memory_goal(results, summary),
        connections_goal(results, summary),
        failover_goal(results, summary),
    ]


def summarise(results: Mapping[str, object]) -> dict[str, object]:
    figures = figure_summary(results)
    return {
        "figures": figures,
        "goals": [goal.as_dict() for goal in goals(results, figures)],
        "memory_by_service_gib": service_memory(results),
    }


# --- rendering ----------------------------------------------------------------------------------------
def number(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit in ("conn.", "tasks"):
        return f"{value:g}"
    if unit == "s" and abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def cell(value: Mapping[str, float] | None, unit: str) -> str:
    if not value:
        return "n/a"
    text = number(value["median"], unit)
    if value["n"] > 1:
        text += f" ({number(value['min'], unit)}-{number(value['max'], unit)})"
    return text


def row(*cells: str) -> str:
    """A markdown table row; a | inside a cell would split it."""
    return "| " + " | ".join(str(c).replace("|", "/").replace("\n", " ") for c in cells) + " |"


def met_text(met: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "not measured"}[met]


def markdown(results: Mapping[str, object]) -> str:
    summary = results.get("summary") or summarise(results)
    assert isinstance(summary, Mapping)
    figures: Mapping[str, Mapping] = summary["figures"]
    settings: Mapping = results.get("settings") or {}
    host: Mapping = results.get("host") or {}
    lines = [
        f"# Benchmark: tuned configuration vs Airflow's official defaults ({results.get('started_at', '?')})",
        "",
    ]
    status = results.get("status", "?")
    lines.append(f"**Status: {status}**" + (f": {results['error']}" if results.get("error") else ""))
    images = "offline kit" if settings.get("offline") else "official"
    lines += [
        "",
        f"Machine: {host.get('cpus', '?')} CPUs, {host.get('memory_gib', '?')} GiB, "
        f"Docker {host.get('docker', '?')}, {host.get('compose', '?')}; images: {images}. "
        f"Workload: {settings.get('tasks', '?')} mapped no-op tasks per run "
        f"({settings.get('failover_tasks', '?')} in the failover run), {settings.get('repetitions', '?')} "
        "repetition(s), tuned and official interleaved"
        + (", quick pass" if settings.get("quick") else "")
        + ". Figures: median over repetitions, (min-max) where more than one.",
        "",
        "## Goals",
        "",
        "| goal | target | measured | met | by how much / what limits it |",
        "|---|---|---|---|---|",
    ]
    for goal in summary["goals"]:
        lines.append(
            row(goal["title"], goal["target"], goal["measured"], met_text(goal["met"]), goal["detail"])
        )
    lines += [
        "",
        "## Figures",
        "",
        "| figure | unit | better | tuned | official | tuned / official |",
        "|---|---|---|---|---|---|",
    ]
    for key, figure in figures.items():
        if not figure.get("tuned") and not figure.get("official"):
            continue
        if key.startswith("connections_"):
            continue  # in the connections table below
        factor = figure.get("ratio_tuned_official")
        unit = figure["unit"]
        lines.append(
            row(
                figure["label"],
                unit,
                figure["better"],
                cell(figure.get("tuned"), unit),
                cell(figure.get("official"), unit),
                "n/a" if factor is None else f"{factor:.2f}x",
            )
        )
    lines += [
        "",
        "## Postgres server connections under load (max of one sample per second)",
        "",
        "| workers | tuned, through PgBouncer | official, through PgBouncer | tuned, straight to Postgres |",
        "|---|---|---|---|",
    ]
    for workers in (1, 2, 4):
        figure = figures[f"connections_w{workers}"]
        lines.append(
            f"| {workers} | {cell(figure.get('tuned'), 'conn.')} | {cell(figure.get('official'), 'conn.')} "
            f"| {cell(figure.get('direct'), 'conn.')} |"
        )
    memory = summary.get("memory_by_service_gib") or {}
    if memory:
        lines += [
            "",
            "## Memory by service (GiB, median; all replicas of a service together)",
            "",
            row("service", "tuned idle", "official idle", "tuned load, 1 worker", "official load, 1 worker"),
            "|---|---|---|---|---|",
        ]
        columns = ("tuned_idle", "official_idle", "tuned_load_w1", "official_load_w1")
        for service, values in memory.items():
            lines.append(f"| {service} | " + " | ".join(number(values.get(c), "GiB") for c in columns) + " |")
    sessions = results.get("sessions") or []
    assert isinstance(sessions, list)
    if sessions:
        lines += [
            "",
            "## Sessions",
            "",
            "| # | session | started | up → healthy (s) | runs | error |",
            "|---|---|---|---|---|---|",
        ]
        for index, session in enumerate(sessions, start=1):
            runs = [r for r in session.get("runs") or [] if r.get("kind") == "mapped"]
            error = str(session.get("error") or "").replace("\n", " ").replace("|", "/")[:300]
            lines.append(
                row(
                    str(index),
                    f"{session.get('config')} #{session.get('repetition')}",
                    str(session.get("started_at", "")),
                    number(session.get("up_seconds"), "s"),  # type: ignore[arg-type]
                    f"{len(runs)} mapped" + (" + failover" if session.get("failover") else ""),
                    error,
                )
            )
    return "\n".join(lines) + "\n"


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def write(results: dict[str, object], json_path: Path) -> Path:
    """Summarise, then write the JSON and the markdown next to it (same name, .md); the markdown path."""
    results["schema"] = SCHEMA
    results["summary"] = summarise(results)
    atomic_write(json_path, json.dumps(results, indent=2, sort_keys=False) + "\n")
    markdown_path = json_path.with_suffix(".md")
    atomic_write(markdown_path, markdown(results))
    return markdown_path
