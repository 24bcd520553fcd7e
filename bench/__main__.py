"""`python -m bench`: the benchmark's command line (what `make bench` runs).

Brings up one stack per session (the configurations of bench/configs.py interleaved: tuned, official,
compose, direct), runs its workloads, tears each down with its volumes, and writes
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

from bench import configs
from bench.errors import BenchError
from bench.plan import REPO, Settings, build_plan, estimate_seconds
from bench.record import Host, Results
from bench.report import write
from bench.session import new_record, now, prepare, run_session
from stackkit.errors import StackError


class Interrupted(BaseException):
    """SIGTERM or SIGINT: stop after tearing the current stack down. A BaseException, like
    KeyboardInterrupt, so that no `except Exception` on the way swallows it."""


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    defaults = Settings()
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke pass (~15 min): tuned and compose once, 20 no-op tasks, fan-out of 10-30 s tasks "
        "on 1 and 2 workers, no overload, no 4 workers, no direct Postgres",
    )
    parser.add_argument(
        "--repetitions",
        type=int,
        help=f"repetitions of the tuned and official sessions (default {defaults.repetitions})",
    )
    parser.add_argument(
        "--tasks", type=int, help=f"K, mapped tasks per run (default {defaults.tasks}, --quick 20)"
    )
    parser.add_argument(
        "--full-repetitions",
        type=int,
        help="first repetitions that run every workload (fan-out, overload, 4 workers) and the compose "
        f"and direct sessions (default {defaults.full_repetitions}; 0: short sessions only)",
    )
    parser.add_argument(
        "--no-overload", action="store_true", help="skip the overload workload (--quick skips it too)"
    )
    parser.add_argument(
        "--only",
        choices=configs.NAMES,
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
        "full_repetitions": args.full_repetitions,
        "settle_seconds": args.settle,
        "run_timeout": args.run_timeout,
        "results_dir": args.results_dir,
        "only": args.only,
    }
    values = {key: value for key, value in overrides.items() if value is not None}
    values["offline"] = args.offline or os.environ.get("OFFLINE") == "1"
    values["grafana"] = not args.no_grafana
    if args.no_overload:
        values["overload"] = False
    try:
        return Settings.quick_pass(**values) if args.quick else Settings(**values)  # type: ignore[arg-type]
    except ValueError as error:
        parser.error(str(error))
        raise  # unreachable: parser.error exits


def memory_gib() -> float | None:
    try:
        meminfo = Path("/proc/meminfo").read_text()
        kib = int(next(line for line in meminfo.splitlines() if line.startswith("MemTotal")).split()[1])
    except (OSError, StopIteration, ValueError):
        return None
    return round(kib / 1024**2, 1)


def host_facts() -> Host:
    """The machine, Docker, Compose and the commit; raises BenchError when Docker or Compose is missing."""
    try:
        docker_version = docker.from_env().version().get("Version")
    except docker.errors.DockerException as error:
        raise BenchError(f"cannot reach the Docker engine: {error}") from error
    compose = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, check=False)
    if compose.returncode != 0:
        raise BenchError("docker compose (the Compose v2 plugin) is not installed")
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, check=False
    )
    return Host(
        cpus=os.cpu_count(),
        platform=platform.platform(),
        memory_gib=memory_gib(),
        docker=str(docker_version) if docker_version else None,
        compose=compose.stdout.strip(),
        commit=commit.stdout.strip() or None,
        dirty=bool(dirty.stdout.strip()),
    )


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
    results = Results(started_at=now(), settings=settings, plan=plan)

    def save() -> None:
        write(results, json_path)

    workdir = Path(tempfile.mkdtemp(prefix="airflow-bench-"))
    env_path = workdir / "bench.env"  # secrets: mode 600, removed at the end
    code = 0
    try:
        results.host = host_facts()
        log(
            f"plan: {len(plan)} stack sessions ({' '.join(spec.short for spec in plan)}), "
            f"K={settings.tasks}; roughly {estimate_seconds(plan, settings) / 60:.0f} min on 2 cores"
        )
        prepared = prepare(settings, env_path, log)
        results.images = prepared.images
        results.with_grafana = prepared.with_grafana
        save()
        for spec in plan:
            record = new_record(spec, settings, prepared)
            results.sessions.append(record)
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
        results.status = "complete"
    except Interrupted as error:
        results.status, results.error, code = "interrupted", str(error), 130
    except StackError as error:  # BenchError included
        results.status, results.error, code = "failed", str(error), 1
    except Exception as error:  # anything unexpected: still keep the partial results
        results.status, results.error, code = "failed", f"{type(error).__name__}: {error}", 1
    finally:
        results.finished_at = now()
        markdown_path = write(results, json_path)
        shutil.rmtree(workdir, ignore_errors=True)  # the env file with the secrets
    print(markdown_path.read_text(), flush=True)
    if code:
        print(f"bench: {results.status.upper()}: {results.error}", file=sys.stderr)
        print(f"partial results kept in {json_path} and {markdown_path}", file=sys.stderr)
    else:
        print(f"results: {json_path} and {markdown_path}")
    return code


if __name__ == "__main__":
    sys.exit(main())
