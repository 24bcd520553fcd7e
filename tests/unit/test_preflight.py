"""`scripts/preflight.py` (run by `make up` before anything is built): its verdicts on constructed versions
and sizes (versions compared numerically, shortfalls named), PREFLIGHT=warn, a Docker error as one line,
and the real script against this machine's engine when there is one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.preflight import (
    CPUS_WARN,
    FAIL,
    GIB,
    MIN_COMPOSE,
    MIN_ENGINE,
    OK,
    WARN,
    Check,
    cpu_check,
    disk_check,
    exit_code,
    memory_check,
    parse_version,
    soften,
    version_check,
)
from tests.unit.compose import REPO

SCRIPT = REPO / "scripts" / "preflight.py"


def run(env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, check=False, timeout=120, env=env
    )


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("2.26.1-4", (2, 26, 1)),
        ("v2.24.0", (2, 24, 0)),
        ("20.10.24+dfsg1", (20, 10, 24)),
        ("2.29.7-desktop.1\n", (2, 29, 7)),
        ("27", (27,)),
        ("", None),
        ("dev", None),
        (None, None),
    ],
)
def test_parse_version(text: str | None, version: tuple[int, ...] | None) -> None:
    assert parse_version(text) == version


def test_versions_compare_numerically() -> None:
    assert parse_version("2.9") == (2, 9)
    assert (2, 9) < MIN_COMPOSE == (2, 24)
    assert version_check("Docker Compose", "2.9.0", MIN_COMPOSE) == Check(
        FAIL, "Docker Compose 2.9.0: too old, 2.24 or newer is needed"
    )
    assert version_check("Docker Compose", "2.26.1-4", MIN_COMPOSE) == Check(OK, "Docker Compose 2.26.1")
    assert version_check("Docker Compose", "2.24", MIN_COMPOSE).level == OK


def test_engine_versions() -> None:
    assert version_check("Docker engine", "20.10.24+dfsg1", MIN_ENGINE) == Check(OK, "Docker engine 20.10.24")
    assert version_check("Docker engine", "19.03.15", MIN_ENGINE).level == FAIL
    assert version_check("Docker engine", "28.2.2", MIN_ENGINE).level == OK


def test_an_unreadable_version_fails_naming_it_and_the_needed_one() -> None:
    check = version_check("Docker Compose", "dev", MIN_COMPOSE)
    assert check == Check(
        FAIL, "Docker Compose not found (version 'dev' unreadable): 2.24 or newer is needed"
    )


@pytest.mark.parametrize(
    ("gib", "expected"),
    [
        (
            2.5,
            Check(FAIL, "memory for Docker 2.5 GiB: 0.5 GiB short of the required 3 GiB (4 GiB recommended)"),
        ),
        (3.5, Check(WARN, "memory for Docker 3.5 GiB: 0.5 GiB short of the recommended 4 GiB")),
        (3.0, Check(WARN, "memory for Docker 3 GiB: 1 GiB short of the recommended 4 GiB")),
        (4.0, Check(OK, "memory for Docker 4 GiB")),
        (23.58, Check(OK, "memory for Docker 23.5 GiB")),
    ],
)
def test_memory(gib: float, expected: Check) -> None:
    assert memory_check(int(gib * GIB)) == expected


def test_shortfall_and_found_add_up_to_the_threshold() -> None:
    """3.95 GiB: shown as 3.9 (rounded down), 0.1 short (rounded up), never "4.0 GiB: 0.0 GiB short"."""
    assert (
        memory_check(int(3.95 * GIB)).text
        == "memory for Docker 3.9 GiB: 0.1 GiB short of the recommended 4 GiB"
    )


def test_cpus() -> None:
    assert cpu_check(1) == Check(WARN, "CPUs for Docker 1: 1 short of the recommended 2")
    assert cpu_check(CPUS_WARN).level == OK


@pytest.mark.parametrize(("gib", "level"), [(4.2, FAIL), (5.0, WARN), (9.9, WARN), (10.0, OK), (80.0, OK)])
def test_disk(gib: float, level: str) -> None:
    check = disk_check(int(gib * GIB), "/var/lib/docker")
    assert check.level == level
    assert check.text.startswith("free disk for Docker at /var/lib/docker ")


def test_disk_failure_names_the_shortfall() -> None:
    assert disk_check(int(4.2 * GIB), "/var/lib/docker").text == (
        "free disk for Docker at /var/lib/docker 4.2 GiB: 0.8 GiB short of the required 5 GiB"
        " (10 GiB recommended)"
    )


def test_any_fail_exits_1_and_preflight_warn_turns_fails_into_warnings() -> None:
    checks = [Check(OK, "Docker engine 20.10.24"), memory_check(2 * GIB), cpu_check(1)]
    assert exit_code(checks) == 1
    assert exit_code([c for c in checks if c.level != FAIL]) == 0
    softened = soften(checks, "warn")
    assert [c.level for c in softened] == [OK, WARN, WARN]
    assert exit_code(softened) == 0
    assert soften(checks, "") == checks
    assert soften(checks, "WARN") == softened


def test_the_line_format() -> None:
    assert Check(OK, "Docker engine 20.10.24").line == "preflight: ok   Docker engine 20.10.24"
    assert Check(WARN, "x").line == "preflight: WARN x"
    assert Check(FAIL, "x").line == "preflight: FAIL x"


def test_no_docker_is_one_fail_line_each_and_no_traceback(tmp_path: Path) -> None:
    result = run({"PATH": str(tmp_path)})
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "preflight: FAIL Docker engine not reachable (docker version: docker not found on PATH): "
        "20.10 or newer is needed",
        "preflight: FAIL Docker Compose plugin not found (docker compose version: docker not found on PATH): "
        "2.24 or newer is needed",
    ]
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_an_engine_that_does_not_answer_fails_and_preflight_warn_lets_it_pass(tmp_path: Path) -> None:
    docker = tmp_path / "docker"
    docker.write_text(
        '#!/bin/sh\nif [ "$1" = compose ]; then echo 2.26.1; exit 0; fi\n'
        'echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock." >&2\nexit 1\n'
    )
    docker.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PREFLIGHT", None)
    result = run(env)
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == (
        "preflight: FAIL Docker engine not reachable (docker version: Cannot connect to the Docker daemon "
        "at unix:///var/run/docker.sock.): 20.10 or newer is needed"
    )
    assert "preflight: ok   Docker Compose 2.26.1" in result.stdout
    assert "Traceback" not in result.stderr
    assert run({**env, "PREFLIGHT": "warn"}).returncode == 0


def docker_answers() -> bool:
    if not shutil.which("docker"):
        return False
    done = subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=60)
    return done.returncode == 0


@pytest.mark.skipif(not docker_answers(), reason="no Docker engine answers `docker info` here")
def test_against_this_machines_engine() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PREFLIGHT"}
    result = run(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert any(line.startswith("preflight: ok   Docker engine ") for line in result.stdout.splitlines())
    assert "Traceback" not in result.stderr
