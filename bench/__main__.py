"""`python -m bench`: the benchmark's command line (what `make bench` runs).

Brings up one stack per session (tuned and official configurations interleaved, plus the
direct-to-Postgres sessions), measures, tears each down with its volumes, and writes
bench/results/<UTC date-time>.json and .md, printing the markdown at the end. Exit status: 0 when
every session completed (goals not met are results, not failures), 1 when a step failed (partial
results are kept, the failing session's service logs next to them), 2 for a usage error, 130 when
interrupted (SIGINT or SIGTERM: the current stack is torn down first; further signals are ignored
until it is).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import docker
import docker.errors

from bench.errors import BenchError
from bench.plan import REPO, Settings, build_plan, estimate_seconds
from bench.report import write
from bench.session import now, prepare, run_session


class Interrupted(BaseException):
    """SIGTERM or SIGINT: stop after tearing the current stack down. A BaseException, like
    KeyboardInterrupt, so that no `except Exception` on the way swallows it."""


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    defaults = Settings()
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke pass: 1 repetition, 20 tasks, no 4 workers, no direct Postgres",
    )
    parser.add_argument(
        "--repetitions", type=int, help=f"tuned/official pairs (default {defaults.repetitions})"
    )
    parser.add_argument(
        "--tasks", type=int, help=f"K, mapped tasks per run (default {defaults.tasks}, --quick 20)"
    )
    parser.add_argument(
        "--direct-repetitions",
        type=int,
        help="first repetitions that add 4 workers and a direct-to-Postgres session "
        f"(default {defaults.direct_repetitions}; 0 skips them)",
    )
    parser.add_argument(
        "--only",
        choices=("tuned", "official"),
        help="tuning pass: run the sessions of one configuration only (no ratios)",
    )
    parser.add_argument(
        "--offline", action="store_true", help="offline kit images (also OFFLINE=1 in the environment)"
    )
    parser.add_argument(
        "--no-grafana", action="store_true", help="leave Grafana out even where its image is present"
    )
    parser.add_argument(
        "--settle", type=float, help=f"seconds before the idle memory sample ({defaults.settle_seconds:g})"
    )
    parser.add_argument(
        "--run-timeout", type=float, help=f"seconds a run may take ({defaults.run_timeout:g})"
    )
    parser.add_argument("--results-dir", type=Path, help=f"where results go ({defaults.results_dir})")
    args = parser.parse_args(argv)
    overrides = {
        "repetitions": args.repetitions,
        "tasks": args.tasks,
        "direct_repetitions": args.direct_repetitions,
        "settle_seconds": args.settle,
        "run_timeout": args.run_timeout,
        "results_dir": args.results_dir,
        "only": args.only,
    }
    values = {key: value for key, value in overrides.items() if value is not None}
    values["offline"] = args.offline or os.environ.get("OFFLINE") == "1"
    values["grafana"] = not args.no_grafana
    try:
        return Settings.quick_pass(**values) if args.quick else Settings(**values)  # type: ignore[arg-type]
    except ValueError as error:
        parser.error(str(error))
        raise  # unreachable: parser.error exits


def machine_facts() -> dict[str, object]:
    facts: dict[str, object] = {"cpus": os.cpu_count(), "platform": platform.platform()}
    try:
        meminfo = Path("/proc/meminfo").read_text()
        kib = int(next(line for line in meminfo.splitlines() if line.startswith("MemTotal")).split()[1])
        facts["memory_gib"] = round(kib / 1024**2, 1)
    except (OSError, StopIteration, ValueError):
        facts["memory_gib"] = None
    return facts


def tool_facts() -> dict[str, object]:
    """Docker, Compose and the commit; raises BenchError when Docker or Compose is missing."""
    facts: dict[str, object] = {}
    try:
        facts["docker"] = docker.from_env().version().get("Version")
    except docker.errors.DockerException as error:
        raise BenchError(f"cannot reach the Docker engine: {error}") from error
    compose = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, check=False)
    if compose.returncode != 0:
        raise BenchError("docker compose (the Compose v2 plugin) is not installed")
    facts["compose"] = compose.stdout.strip()
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, check=False
    )
    facts["commit"] = commit.stdout.strip() or None
    facts["dirty"] = bool(dirty.stdout.strip())
    return facts


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    started = time.monotonic()

    def log(message: str) -> None:
        elapsed = int(time.monotonic() - started)
        print(f"[bench +{elapsed // 60:02d}:{elapsed % 60:02d}] {message}", flush=True)

    interrupted: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if interrupted:
            log("still tearing down the stack; please wait")
            return
        interrupted.append(signum)
        raise Interrupted(f"interrupted by signal {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%SZ")
    json_path = settings.results_dir / f"{stamp}.json"
    plan = build_plan(settings)
    sessions: list[dict[str, object]] = []
    results: dict[str, object] = {
        "started_at": now(),
        "status": "running",
        "error": None,
        "settings": settings.as_dict(),
        "plan": [spec.as_dict() for spec in plan],
        "sessions": sessions,
    }

    def save() -> None:
        write(results, json_path)

    workdir = Path(tempfile.mkdtemp(prefix="airflow-bench-"))
    env_path = workdir / "bench.env"  # secrets: mode 600, removed at the end
    code = 0
    try:
        results["host"] = machine_facts()
        results["host"].update(tool_facts())  # type: ignore[union-attr]
        log(
            f"plan: {len(plan)} stack sessions ({', '.join(spec.name for spec in plan)}), "
            f"K={settings.tasks}; roughly {estimate_seconds(plan, settings) / 60:.0f} min on 2 cores"
        )
        prepared = prepare(settings, env_path, log)
        results["images"] = prepared.images
        results["with_grafana"] = prepared.with_grafana
        save()
        for spec in plan:
            record: dict[str, object] = {}
            sessions.append(record)
            run_session(
                spec,
                settings,
                prepared,
                env_path,
                settings.results_dir / f"{stamp}-{spec.config}-{spec.repetition}.log",
                record,
                save,
                log,
            )
        results["status"] = "complete"
    except Interrupted as error:
        results["status"], results["error"], code = "interrupted", str(error), 130
    except BenchError as error:
        results["status"], results["error"], code = "failed", str(error), 1
    except Exception as error:  # anything unexpected: still keep the partial results
        results["status"], results["error"], code = "failed", f"{type(error).__name__}: {error}", 1
    finally:
        results["finished_at"] = now()
        markdown_path = write(results, json_path)
        shutil.rmtree(workdir, ignore_errors=True)  # the env file with the secrets
    print(markdown_path.read_text(), flush=True)
    if code:
        print(f"bench: {results['status'].upper()}: {results['error']}", file=sys.stderr)  # type: ignore[union-attr]
        print(f"partial results kept in {json_path} and {markdown_path}", file=sys.stderr)
    else:
        print(f"results: {json_path} and {markdown_path}")
    return code


if __name__ == "__main__":
    sys.exit(main())
