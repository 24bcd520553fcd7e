"""The statsd mapping and the Prometheus configuration load in the real programs that read them
(statsd_exporter --check-config, promtool check config), at the versions the stack pins; and the
mapping, run in the real statsd_exporter, keeps Airflow's metric names, gives the scheduler's timers
millisecond buckets, and expires gauges only (with a margin over their slowest sender)."""

from __future__ import annotations

import configparser
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from stackkit.durations import seconds
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


# --- config/statsd_mapping.yml: what the mappings must keep doing ------------------------------------

MAPPING = REPO / "config" / "statsd_mapping.yml"
FINE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05]


def mapping() -> dict:
    return yaml.safe_load(MAPPING.read_text())


def test_only_gauges_expire_and_with_margin() -> None:
    """A ttl on counters or timers would delete event-only series (a DAG's failed runs) that the rules
    count; a gauge's ttl must be well above its slowest sender, the dag-processor's parse pass."""
    config = mapping()
    assert "ttl" not in config["defaults"], "a default ttl would expire counters and timers too"
    expiring = [m for m in config["mappings"] if m.get("ttl")]
    assert expiring, "no gauge expires: a gone triggerer's gauges would stay frozen"
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "config" / "airflow.cfg")
    parse_pass = cfg.getfloat("dag_processor", "min_file_process_interval")
    for rule in expiring:
        assert rule.get("match_metric_type") == "gauge", rule
        assert seconds(rule["ttl"]) >= 5 * max(parse_pass, 30), rule


def test_scheduler_timers_get_millisecond_buckets() -> None:
    config = mapping()
    default = config["defaults"]["histogram_options"]["buckets"]
    (fast,) = [m for m in config["mappings"] if m.get("match_metric_type") == "observer"]
    assert fast["histogram_options"]["buckets"] == sorted(set(FINE_BUCKETS) | set(default))


@pytest.fixture(scope="module")
def exporter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    """statsd_exporter with the stack's mapping, but gauges expiring after 1 s: (UDP port, metrics URL)."""
    config = tmp_path_factory.mktemp("statsd") / "mapping.yml"
    config.write_text(re.sub(r"ttl: \w+", "ttl: 1s", MAPPING.read_text()))
    udp, web = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    process = subprocess.Popen(
        [
            tool("statsd_exporter"),
            f"--statsd.mapping-config={config}",
            f"--statsd.listen-udp=127.0.0.1:{udp}",
            "--statsd.listen-tcp=",
            f"--web.listen-address=127.0.0.1:{web}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{web}/metrics"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(url, timeout=1).read()
                break
            except OSError:
                assert time.monotonic() < deadline, "statsd_exporter did not start"
                time.sleep(0.1)
        yield udp, url
    finally:
        process.terminate()
        process.wait(timeout=10)


def free_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape(url: str) -> dict[str, str]:
    """Series (name and labels, as exported) -> value, statsd_exporter's own metrics left out."""
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    return dict(
        line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("airflow_") and " " in line
    )


def test_mapped_series_keep_the_unmapped_names(exporter: tuple[int, str]) -> None:
    """The mappings add buckets and expiry only: names and tags come out as without them, so the
    rules and dashboards keep working. Then gauges expire, except pool.starving_tasks; counters and
    timers stay."""
    udp, url = exporter
    lines = [
        "airflow.scheduler.critical_section_duration:3|ms",  # a scheduler timer: millisecond buckets
        "airflow.dagrun.dependency-check,dag_id=d,run_type=manual:2|ms",  # the dash becomes _
        "airflow.task.duration,dag_id=d,task_id=t:1500|ms",  # the default buckets
        "airflow.pool.open_slots,pool_name=default_pool:16|g",
        "airflow.pool.starving_tasks,pool_name=p:2|g",
        "airflow.triggerer.capacity_left,hostname=h:200|g",
        "airflow.ti.finish,dag_id=d,task_id=t,state=failed:1|c",
        "airflow.task_instances_without_heartbeats_killed,dag_id=d,task_id=t:1|c",
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for line in lines:
            sock.sendto(line.encode(), ("127.0.0.1", udp))
    time.sleep(0.5)
    series = scrape(url)
    assert series['airflow_scheduler_critical_section_duration_bucket{le="0.005"}'] == "1"
    assert series['airflow_scheduler_critical_section_duration_bucket{le="0.0025"}'] == "0"
    assert series['airflow_dagrun_dependency_check_bucket{dag_id="d",run_type="manual",le="0.0025"}'] == "1"
    task_buckets = [s for s in series if s.startswith("airflow_task_duration_bucket")]
    assert task_buckets[0] == 'airflow_task_duration_bucket{dag_id="d",task_id="t",le="0.05"}'
    kept = {
        'airflow_pool_starving_tasks{pool_name="p"}',
        'airflow_ti_finish{dag_id="d",state="failed",task_id="t"}',
        'airflow_task_instances_without_heartbeats_killed{dag_id="d",task_id="t"}',
        'airflow_task_duration_count{dag_id="d",task_id="t"}',
    }
    expiring = {
        'airflow_pool_open_slots{pool_name="default_pool"}',
        'airflow_triggerer_capacity_left{hostname="h"}',
    }
    assert kept | expiring <= set(series)
    deadline = time.monotonic() + 10
    while expiring & set(scrape(url)):
        assert time.monotonic() < deadline, "gauges did not expire"
        time.sleep(0.5)
    assert kept <= set(scrape(url))
