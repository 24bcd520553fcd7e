"""Wait until every container of the compose project is healthy, printing progress as it goes.

Run by `make up` and `make scale` after `docker compose up -d`. Exits 0 when every long-running
service is healthy (or running, where it has no health check) and the one-shot airflow-init exited
0; exits 1, with the failing service's last log lines, when a container exits, crash-loops (its
restart count grew by RESTARTS_FAIL since the wait began, or it stays "restarting" longer than
RESTARTING_GRACE s) or stays unhealthy longer than UNHEALTHY_GRACE s, or at --timeout. A Docker or
Compose error (engine down, bad compose file or .env) is one line on stderr and exit 1.
Progress: a line whenever the set of waiting containers changes, and every PROGRESS_EVERY s.
Standard library only: it runs on the host with the system python3. The decisions are in step(),
a pure function of the containers seen (tests/unit/test_wait_healthy.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum

ONE_SHOT = {"airflow-init"}
POLL_EVERY = 3.0  # s between two looks at the containers
PROGRESS_EVERY = 15.0  # s: print a progress line at least this often
RESTARTS_FAIL = 2  # restarts since the wait began that make a crash loop
RESTARTING_GRACE = 30.0  # s a container may stay in state "restarting" (Docker's back-off between runs)
UNHEALTHY_GRACE = 120.0  # s a container may stay "unhealthy" before we give up
DOCKER_TIMEOUT = 60.0  # s for one docker command


class DockerError(Exception):
    """A docker command failed; the message is one line naming the command and why."""


@dataclass(frozen=True)
class Container:
    name: str
    service: str
    state: str
    health: str
    exit_code: int
    restart_count: int = 0

    @property
    def short_name(self) -> str:
        """`airflow-worker-2` rather than `<project>-airflow-worker-2`."""
        at = self.name.rfind(f"{self.service}-")
        return self.name[at:] if at >= 0 else self.name

    @property
    def status(self) -> str:
        if self.state == "running":
            return self.health or "running"
        return f"{self.state} (exit {self.exit_code})"

    @property
    def ready(self) -> bool:
        if self.service in ONE_SHOT:
            return self.state == "exited" and self.exit_code == 0
        return self.state == "running" and self.health in ("healthy", "")

    @property
    def failed(self) -> bool:
        if self.service in ONE_SHOT:
            return self.state == "exited" and self.exit_code != 0
        return self.state in ("exited", "dead")


@dataclass(frozen=True)
class Watch:
    """What the wait remembers between two looks, by container name."""

    start: float
    first_restarts: Mapping[str, int] = field(default_factory=dict)  # RestartCount when first seen
    restarting_since: Mapping[str, float] = field(default_factory=dict)
    unhealthy_since: Mapping[str, float] = field(default_factory=dict)


class Outcome(Enum):
    READY = "ready"
    WAITING = "waiting"
    FAILED = "failed"  # a container exited or crash-loops
    GAVE_UP = "gave up"  # unhealthy too long, or the timeout


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reasons: tuple[str, ...] = ()  # one line per failing container
    services: tuple[str, ...] = ()  # whose logs to show


def since(previous: Mapping[str, float], names: set[str], now: float) -> dict[str, float]:
    """When each of names entered its condition: kept from previous, or now for a newcomer."""
    return {name: previous.get(name, now) for name in names}


def failure(c: Container, watch: Watch, now: float) -> str | None:
    """Why c counts as failed, or None."""
    if c.failed:
        return f"{c.short_name}: {c.status}"
    restarts = c.restart_count - watch.first_restarts.get(c.name, c.restart_count)
    if restarts >= RESTARTS_FAIL:
        return f"{c.short_name}: restarted {restarts} times since the wait began (crash loop; now {c.status})"
    restarting_for = now - watch.restarting_since.get(c.name, now)
    if c.state == "restarting" and restarting_for > RESTARTING_GRACE:
        return f"{c.short_name}: restarting for {restarting_for:.0f}s (crash loop: it keeps exiting)"
    return None


def step(watch: Watch, found: Sequence[Container], now: float, timeout: float) -> tuple[Watch, Verdict]:
    """Decide on one look at the containers; returns what to remember for the next look."""
    watch = replace(
        watch,
        first_restarts={c.name: watch.first_restarts.get(c.name, c.restart_count) for c in found},
        restarting_since=since(
            watch.restarting_since, {c.name for c in found if c.state == "restarting"}, now
        ),
        unhealthy_since=since(watch.unhealthy_since, {c.name for c in found if c.health == "unhealthy"}, now),
    )
    failed: dict[str, list[str]] = {}  # service: why, for each of its failing containers
    for c in found:
        if why := failure(c, watch, now):
            failed.setdefault(c.service, []).append(why)
    if failed:
        return watch, Verdict(
            Outcome.FAILED, tuple(why for whys in failed.values() for why in whys), tuple(failed)
        )
    waiting = [c for c in found if not c.ready]
    if not waiting:
        return watch, Verdict(Outcome.READY)
    stuck = [c for c in waiting if now - watch.unhealthy_since.get(c.name, now) > UNHEALTHY_GRACE]
    if stuck:
        reasons = tuple(f"{c.short_name}: unhealthy for more than {UNHEALTHY_GRACE:.0f}s" for c in stuck)
        return watch, Verdict(Outcome.GAVE_UP, reasons, tuple(dict.fromkeys(c.service for c in stuck)))
    if now - watch.start > timeout:
        reasons = tuple(f"{c.short_name}: still {c.status} after {timeout:.0f}s" for c in waiting)
        return watch, Verdict(Outcome.GAVE_UP, reasons, tuple(dict.fromkeys(c.service for c in waiting)))
    return watch, Verdict(Outcome.WAITING)


def progress(found: Sequence[Container]) -> str:
    """The progress line without its time stamp: it changes only when the set of waiting ones does."""
    waiting = sorted(f"{c.short_name} ({c.status})" for c in found if not c.ready)
    line = f"ready {len(found) - len(waiting)}/{len(found)}"
    return line + (f"; waiting for: {', '.join(waiting)}" if waiting else "")


def due(line: str, last_line: str, now: float, last_printed: float | None) -> bool:
    return line != last_line or last_printed is None or now - last_printed >= PROGRESS_EVERY


def first_line(stderr: str) -> str:
    """The line of a docker error that says what is wrong (Compose puts WARN lines first)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if not line.startswith("WARN[")]
    return (errors or lines or ["no error message"])[0]


def docker(what: str, args: Sequence[str], ok_codes: tuple[int, ...] = (0,)) -> str:
    """Run docker with args and return its stdout; DockerError naming `what` if it fails."""
    try:
        done = subprocess.run(
            ["docker", *args], capture_output=True, text=True, check=False, timeout=DOCKER_TIMEOUT
        )
    except FileNotFoundError:
        raise DockerError(f"{what} failed: docker not found on PATH") from None
    except subprocess.TimeoutExpired:
        raise DockerError(f"{what} failed: no answer within {DOCKER_TIMEOUT:.0f}s") from None
    if done.returncode not in ok_codes:
        raise DockerError(f"{what} failed: {first_line(done.stderr)}")
    return done.stdout


def parse_ps(out: str) -> list[dict[str, object]]:
    """`docker compose ps --format json`: one JSON array (Compose < 2.21) or one object a line."""
    out = out.strip()
    rows = json.loads(out) if out.startswith("[") else [json.loads(line) for line in out.splitlines() if line]
    return [r for r in rows if isinstance(r, dict)]


def restart_counts(names: Sequence[str]) -> dict[str, int]:
    """RestartCount by container name. A container removed since `ps` is just left out."""
    if not names:
        return {}
    out = docker("docker inspect", ["inspect", "--type", "container", *names], ok_codes=(0, 1))
    try:
        rows = json.loads(out or "[]")
    except json.JSONDecodeError:
        raise DockerError(f"docker inspect failed: unreadable output: {out[:80]!r}") from None
    return {str(r.get("Name", "")).lstrip("/"): int(r.get("RestartCount", 0)) for r in rows}


def containers() -> list[Container]:
    out = docker("docker compose ps", ["compose", "ps", "--all", "--format", "json"])
    try:
        rows = parse_ps(out)
        found = [
            Container(
                str(r["Name"]),
                str(r["Service"]),
                str(r["State"]),
                str(r.get("Health") or ""),
                int(str(r.get("ExitCode") or 0)),
            )
            for r in rows
        ]
    except (json.JSONDecodeError, KeyError, ValueError) as e:
        raise DockerError(f"docker compose ps failed: unreadable output ({type(e).__name__}: {e})") from None
    counts = restart_counts([c.name for c in found])
    return [replace(c, restart_count=counts.get(c.name, 0)) for c in found]


def show_logs(service: str) -> None:
    try:
        subprocess.run(["docker", "compose", "logs", "--no-color", "--tail=40", service], check=False)
    except FileNotFoundError:
        print("wait_healthy: docker compose logs failed: docker not found on PATH", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--timeout", type=float, default=900, help="give up after this many seconds")
    args = parser.parse_args(argv)
    watch = Watch(start=time.monotonic())
    last_line, last_printed = "", None
    try:
        while True:
            now = time.monotonic()
            found = containers()
            if not found:
                print("wait_healthy: no containers found for this compose project", file=sys.stderr)
                return 1
            watch, verdict = step(watch, found, now, args.timeout)
            line = progress(found)
            if due(line, last_line, now, last_printed):
                print(f"[{now - watch.start:5.0f}s] {line}", flush=True)
                last_line, last_printed = line, now
            if verdict.outcome is Outcome.READY:
                return 0
            if verdict.outcome is not Outcome.WAITING:
                heading = "failed" if verdict.outcome is Outcome.FAILED else "gave up waiting"
                print(f"\n{heading}:", *verdict.reasons, sep="\n  ", file=sys.stderr)
                for service in verdict.services:
                    print(f"\n{service}: its last log lines:", file=sys.stderr, flush=True)
                    show_logs(service)
                return 1
            time.sleep(POLL_EVERY)
    except DockerError as e:
        print(f"wait_healthy: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
