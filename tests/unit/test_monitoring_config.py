"""The statsd mapping and the Prometheus configuration load in the real programs that read them
(statsd_exporter --check-config, promtool check config), at the versions the stack pins."""

from __future__ import annotations

from pathlib import Path

from tests.unit.go_tools import run, tool

REPO = Path(__file__).resolve().parents[2]


def test_statsd_mapping_loads() -> None:
    result = run(
        tool("statsd_exporter"),
        "--check-config",
        f"--statsd.mapping-config={REPO / 'config' / 'statsd_mapping.yml'}",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_broken_statsd_mapping_is_rejected(tmp_path: Path) -> None:
    broken = tmp_path / "mapping.yml"
    broken.write_text("mappings:\n  - match: airflow.*\n    timer_type: histogram\n")
    result = run(tool("statsd_exporter"), "--check-config", f"--statsd.mapping-config={broken}")
    assert result.returncode != 0, "a mapping with a removed key was accepted"


def test_prometheus_config_loads() -> None:
    config = REPO / "prometheus" / "prometheus.yml"
    result = run(tool("promtool"), "check", "config", "--syntax-only", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
