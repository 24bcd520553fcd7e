"""Check that this machine can run the stack before anything is built: Docker, Compose, memory, CPUs, disk.

Run by `make up` before the images are built (and by hand: `python3 scripts/preflight.py`). Prints one
line per check, `preflight: ok|WARN|FAIL <what> <found>[: how far short of what is needed]`, and exits 1
if any check FAILs, 0 otherwise. Checks:
  - the Docker engine answers (`docker version`), version >= MIN_ENGINE;
  - the Compose v2 plugin (`docker compose version --short`), version >= MIN_COMPOSE;
  - memory for Docker (`docker info` MemTotal: the host's memory on Linux, the VM's on Docker Desktop):
    FAIL below MEMORY_FAIL_GIB, WARN below MEMORY_WARN_GIB (the official Airflow compose file warns
    under 4 GB); CPUs (`docker info` NCPU): WARN below CPUS_WARN;
  - free disk where Docker keeps images and volumes (`docker info` DockerRootDir, or the current
    directory when that path is not visible from here, as on Docker Desktop): FAIL below
    DISK_FAIL_GIB, WARN below DISK_WARN_GIB (the images take about 3 GB, plus the volumes).
Environment: PREFLIGHT=warn turns every FAIL into a WARN (exit 0), to try anyway on a small machine.
Change the thresholds in the constants below. Standard library only: it runs on the host before any
image or virtualenv exists. The verdicts are pure functions (tests/unit/test_preflight.py).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIN_ENGINE = (20, 10)  # README "Requirements"; Debian 12's docker.io
MIN_COMPOSE = (2, 24)  # README "Requirements"
MEMORY_FAIL_GIB = 3.0
MEMORY_WARN_GIB = 4.0
CPUS_WARN = 2
DISK_FAIL_GIB = 5.0
DISK_WARN_GIB = 10.0
DOCKER_TIMEOUT = 30.0  # s for one docker command
GIB = 1024**3

OK, WARN, FAIL = "ok", "WARN", "FAIL"


@dataclass(frozen=True)
class Check:
    level: str  # OK, WARN or FAIL
    text: str

    @property
    def line(self) -> str:
        return f"preflight: {self.level:<4} {self.text}"


def parse_version(text: str | None) -> tuple[int, ...] | None:
    """The leading numbers of a version: "2.26.1-4" is (2, 26, 1), "v2.24.0" (2, 24, 0), "20.10.24+dfsg1"
    (20, 10, 24); None when there are none."""
    found = re.match(r"\s*v?(\d+(?:\.\d+)*)", text or "")
    return tuple(int(part) for part in found.group(1).split(".")) if found else None


def dotted(version: Sequence[int]) -> str:
    return ".".join(str(part) for part in version)


def version_check(what: str, found: str | None, needed: tuple[int, ...]) -> Check:
    version = parse_version(found)
    if version is None:
        shown = f" (version {found.strip()!r} unreadable)" if found and found.strip() else ""
        return Check(FAIL, f"{what} not found{shown}: {dotted(needed)} or newer is needed")
    if version < needed:
        return Check(FAIL, f"{what} {dotted(version)}: too old, {dotted(needed)} or newer is needed")
    return Check(OK, f"{what} {dotted(version)}")


def gib(size: float) -> str:
    """A size in GiB, one decimal: "3.5", "4"."""
    return f"{size:.1f}".removesuffix(".0")


def shortfall(found_bytes: int, limit_gib: float) -> str:
    """How many GiB found_bytes is short of limit_gib, rounded up to a tenth."""
    return gib(math.ceil(round((limit_gib - found_bytes / GIB) * 10, 6)) / 10)


def size_check(what: str, found_bytes: int, fail_gib: float, warn_gib: float) -> Check:
    """FAIL below fail_gib, WARN below warn_gib. Found rounded down, shortfall up: they add up."""
    found = gib(math.floor(round(found_bytes / GIB * 10, 6)) / 10)
    if found_bytes < fail_gib * GIB:
        return Check(
            FAIL,
            f"{what} {found} GiB: {shortfall(found_bytes, fail_gib)} GiB short of the required "
            f"{gib(fail_gib)} GiB ({gib(warn_gib)} GiB recommended)",
        )
    if found_bytes < warn_gib * GIB:
        return Check(
            WARN,
            f"{what} {found} GiB: {shortfall(found_bytes, warn_gib)} GiB short of the recommended "
            f"{gib(warn_gib)} GiB",
        )
    return Check(OK, f"{what} {found} GiB")


def memory_check(mem_total: int) -> Check:
    return size_check("memory for Docker", mem_total, MEMORY_FAIL_GIB, MEMORY_WARN_GIB)


def cpu_check(cpus: int) -> Check:
    if cpus < CPUS_WARN:
        return Check(WARN, f"CPUs for Docker {cpus}: {CPUS_WARN - cpus} short of the recommended {CPUS_WARN}")
    return Check(OK, f"CPUs for Docker {cpus}")


def disk_check(free: int, where: str) -> Check:
    return size_check(f"free disk for Docker at {where}", free, DISK_FAIL_GIB, DISK_WARN_GIB)


def soften(checks: Sequence[Check], mode: str) -> list[Check]:
    """PREFLIGHT=warn: every FAIL becomes a WARN."""
    if mode.strip().lower() != "warn":
        return list(checks)
    return [Check(WARN, f"{c.text} (PREFLIGHT=warn: going on)") if c.level == FAIL else c for c in checks]


def exit_code(checks: Sequence[Check]) -> int:
    return 1 if any(c.level == FAIL for c in checks) else 0


def first_line(stderr: str) -> str:
    """The line of a docker error that says what is wrong (skipping WARN lines)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if not line.startswith("WARN[")]
    return (errors or lines or ["no error message"])[0]


def docker(args: Sequence[str]) -> tuple[str | None, str]:
    """(stdout, "") when `docker args` succeeds, (None, one line saying why) when it does not."""
    try:
        done = subprocess.run(
            ["docker", *args], capture_output=True, text=True, check=False, timeout=DOCKER_TIMEOUT
        )
    except FileNotFoundError:
        return None, "docker not found on PATH"
    except subprocess.TimeoutExpired:
        return None, f"no answer within {DOCKER_TIMEOUT:.0f}s"
    if done.returncode != 0:
        return None, first_line(done.stderr)
    return done.stdout, ""


def docker_json(args: Sequence[str]) -> tuple[dict[str, Any] | None, str]:
    out, error = docker([*args, "--format", "{{json .}}"])
    if out is None:
        return None, error
    try:
        data = json.loads(out)
    except json.JSONDecodeError:
        return None, f"unreadable output {out.strip()[:60]!r}"
    return (data, "") if isinstance(data, dict) else (None, f"unexpected output {out.strip()[:60]!r}")


def engine_checks() -> tuple[list[Check], bool]:
    """The engine's version check, and whether the engine answered."""
    version, error = docker_json(["version"])
    server = (version or {}).get("Server") or {}
    if version is None or not server.get("Version"):
        why = error or "no server in `docker version`"
        needed = dotted(MIN_ENGINE)
        return [
            Check(FAIL, f"Docker engine not reachable (docker version: {why}): {needed} or newer is needed")
        ], False
    return [version_check("Docker engine", str(server["Version"]), MIN_ENGINE)], True


def compose_check() -> Check:
    out, error = docker(["compose", "version", "--short"])
    if out is None:
        return Check(
            FAIL,
            f"Docker Compose plugin not found (docker compose version: {error}): "
            f"{dotted(MIN_COMPOSE)} or newer is needed",
        )
    return version_check("Docker Compose", out.strip(), MIN_COMPOSE)


def free_disk(root_dir: str) -> tuple[int, str]:
    """Free bytes where Docker keeps its data, and where that was measured."""
    if root_dir and Path(root_dir).is_dir():
        try:
            return shutil.disk_usage(root_dir).free, root_dir
        except OSError:
            pass
    here = os.getcwd()
    return shutil.disk_usage(
        here
    ).free, f"{here} (Docker's {root_dir or 'data directory'} is not visible here)"


def info_checks() -> list[Check]:
    info, error = docker_json(["info"])
    server_errors = (info or {}).get("ServerErrors")
    if info is None or server_errors:
        why = error or first_line("\n".join(map(str, server_errors or [])))
        return [Check(FAIL, f"docker info failed: {why}")]
    checks: list[Check] = []
    try:
        checks.append(memory_check(int(info["MemTotal"])))
        checks.append(cpu_check(int(info["NCPU"])))
    except (KeyError, TypeError, ValueError) as e:
        checks.append(Check(FAIL, f"docker info: no memory or CPU count ({type(e).__name__}: {e})"))
    free, where = free_disk(str(info.get("DockerRootDir") or ""))
    checks.append(disk_check(free, where))
    return checks


def main() -> int:
    checks, engine_up = engine_checks()
    checks.append(compose_check())
    if engine_up:
        checks += info_checks()
    checks = soften(checks, os.environ.get("PREFLIGHT", ""))
    for check in checks:
        print(check.line, flush=True)
    code = exit_code(checks)
    if code:
        print(
            "preflight: refusing to start the stack: fix the FAIL lines above "
            "(or set PREFLIGHT=warn to try anyway)",
            file=sys.stderr,
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
