"""Wait until every container of the compose project is healthy, printing progress as it goes.

Run by `make up` and `make scale` after `docker compose up -d`. Exits 0 when every long-running
service is healthy (or running, where it has no health check) and the one-shot airflow-init exited
0; exits 1, with the failing service's last log lines, when a container exits or stays unhealthy.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass

ONE_SHOT = {"airflow-init"}


@dataclass(frozen=True)
class Container:
    name: str
    service: str
    state: str
    health: str
    exit_code: int

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


def containers() -> list[Container]:
    out = subprocess.run(
        ["docker", "compose", "ps", "--all", "--format", "json"], check=True, capture_output=True, text=True
    ).stdout.strip()
    rows = json.loads(out) if out.startswith("[") else [json.loads(line) for line in out.splitlines() if line]
    return [
        Container(r["Name"], r["Service"], r["State"], r.get("Health", ""), int(r.get("ExitCode", 0)))
        for r in rows
    ]


def show_logs(service: str) -> None:
    subprocess.run(["docker", "compose", "logs", "--no-color", "--tail=40", service], check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    start = time.monotonic()
    last_line = ""
    unhealthy_since: dict[str, float] = {}
    while True:
        now = time.monotonic()
        found = containers()
        if not found:
            print("no containers found for this compose project", file=sys.stderr)
            return 1
        for c in found:
            if c.failed:
                print(f"\n{c.service}: {c.status}. Its last log lines:", file=sys.stderr)
                show_logs(c.service)
                return 1
            if c.health == "unhealthy":
                unhealthy_since.setdefault(c.name, now)
            else:
                unhealthy_since.pop(c.name, None)
        waiting = sorted(f"{c.name.split('-', 1)[-1]} ({c.status})" for c in found if not c.ready)
        ready = len(found) - len(waiting)
        line = f"[{now - start:5.0f}s] ready {ready}/{len(found)}" + (
            f"; waiting for: {', '.join(waiting)}" if waiting else ""
        )
        if line.split("]", 1)[1] != last_line.split("]", 1)[-1] or int(now - start) % 30 == 0:
            print(line, flush=True)
            last_line = line
        if not waiting:
            return 0
        stuck = [n for n, t in unhealthy_since.items() if now - t > 120]
        if stuck or now - start > args.timeout:
            names = stuck or [w.split(" ")[0] for w in waiting]
            print(f"\ngave up waiting on: {', '.join(names)}", file=sys.stderr)
            for c in found:
                if c.name in names or c.name.split("-", 1)[-1] in names:
                    show_logs(c.service)
            return 1
        time.sleep(3)


if __name__ == "__main__":
    sys.exit(main())
