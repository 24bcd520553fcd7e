"""`scripts/check_env.py` (run by `make up`) refuses a .env whose sizes, ports or addresses cannot
work, naming the variable, before anything starts; the documented .env passes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scripts.check_env import KINDS, problems
from stackkit.envfile import parse
from tests.unit.compose import REPO

SCRIPT = REPO / "scripts" / "check_env.py"


def run(env_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(env_file)], capture_output=True, text=True, check=False
    )


def test_the_documented_env_passes(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text((REPO / ".env.example").read_text())
    result = run(env)
    assert result.returncode == 0, result.stderr


def test_every_checked_variable_is_documented_in_env_example() -> None:
    documented = (REPO / ".env.example").read_text()
    assert not [key for key in KINDS if f"{key}=" not in documented]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("BACKUP_RETENTION_DAYS", "seven"),
        ("BACKUP_INTERVAL_HOURS", "0"),
        ("AIRFLOW_API_PORT", "80a"),
        ("FLOWER_PORT", "70000"),
        ("HOST_BIND_ADDRESS", "localhost:8080"),
        ("WORKER_ADVERTISE_ADDRESS", "0.0.0.0"),
        ("WORKER_ADVERTISE_ADDRESS", "[fd00::2]"),
        ("STATSD_PUBLISHED_PORT", "70000"),
        ("WORKER_LOG_PUBLISHED_PORT", "87a"),
        ("AIRFLOW_WORKER_STOP_GRACE_PERIOD", "10 minutes"),
        ("PROMETHEUS_RETENTION", "15 days"),
    ],
)
def test_a_malformed_value_is_refused_naming_the_variable(tmp_path: Path, key: str, value: str) -> None:
    env = tmp_path / ".env"
    env.write_text((REPO / ".env.example").read_text() + f"{key}={value}\n")
    result = run(env)
    assert result.returncode == 1
    assert f"{key}={value!r}" in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("BACKUP_RETENTION_DAYS", "30"),
        ("HOST_BIND_ADDRESS", "10.0.0.5"),
        ("WORKER_BIND_ADDRESS", "10.0.0.5"),
        ("WORKER_ADVERTISE_ADDRESS", "10.8.0.2"),
        ("WORKER_ADVERTISE_ADDRESS", "fd00::2"),
        ("STATSD_PUBLISHED_PORT", "19125"),
        ("WORKER_LOG_PUBLISHED_PORT", "18793"),
        ("AIRFLOW_WORKER_STOP_GRACE_PERIOD", "1h30m"),
        ("PROMETHEUS_RETENTION", "2w"),
        ("GRAFANA_PORT", "3000"),
    ],
)
def test_well_formed_values_pass(key: str, value: str) -> None:
    assert problems({key: value}) == []


def test_unset_and_quoted_values_as_compose_reads_them() -> None:
    values = parse("# c\nBACKUP_RETENTION_DAYS=\nFLOWER_PORT='5555'\n  GRAFANA_PORT = \"3000\"\n")
    assert values == {"BACKUP_RETENTION_DAYS": "", "FLOWER_PORT": "5555", "GRAFANA_PORT": "3000"}
    assert problems(values) == []


def test_a_missing_env_file_says_how_to_create_it(tmp_path: Path) -> None:
    result = run(tmp_path / "absent.env")
    assert result.returncode == 1
    assert "make env" in result.stderr


@pytest.mark.parametrize(
    "url", ["https://airflow.example.com", "http://10.0.0.5:8080/", "http://[fd00::2]:8080"]
)
def test_a_public_url_of_scheme_host_and_port_passes(url: str) -> None:
    assert problems({"AIRFLOW_PUBLIC_URL": url, "HOST_BIND_ADDRESS": "0.0.0.0"}) == []


@pytest.mark.parametrize("url", ["https://example.com/airflow", "airflow.example.com", "ftp://example.com"])
def test_a_public_url_with_a_path_or_without_scheme_is_refused(url: str) -> None:
    (problem,) = problems({"AIRFLOW_PUBLIC_URL": url})
    assert problem.startswith(f"AIRFLOW_PUBLIC_URL={url!r}")


@pytest.mark.parametrize("bind", ["0.0.0.0", "::", "fd00::2"])
def test_an_address_that_makes_no_url_needs_a_public_url(bind: str) -> None:
    (problem,) = problems({"HOST_BIND_ADDRESS": bind})
    assert "needs AIRFLOW_PUBLIC_URL" in problem
