"""config/postgres_exporter_queries.yml (postgres-exporter's custom queries) is wired into the compose
file, names the metrics the Prometheus rules read, counts Airflow's components with the job types and
the liveness window of the installed Airflow (3.3.2), and reads the columns the db-backup loop writes.

The exporter's own behaviour (a metric is <query name>_<column>, LABEL columns become labels, the
`server` label is added, NULL becomes NaN) was read in prometheus-community/postgres_exporter v0.19.1
and v0.20.1 (exporter/namespace.go, queries.go, util.go: the same code in both) and tried against a
scratch Postgres with v0.19.1; these tests hold the file to those rules without running it."""

from __future__ import annotations

import configparser
import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts import job_health
from scripts.generate_env import render
from tests.unit.compose import REPO, resolved
from tests.unit.test_prometheus_rules import POSTGRES_EXPORTER_QUERY_METRICS, TEST_GROUPS

QUERIES_PATH = REPO / "config" / "postgres_exporter_queries.yml"
QUERIES: dict[str, Any] = yaml.safe_load(QUERIES_PATH.read_text())
LOOP = (REPO / "scripts" / "db-backup.sh").read_text()
BACKUP = (REPO / "scripts" / "backup.sh").read_text()
# Where Airflow 3.3.2 keeps each job type's name (the `job_type` class attribute of its runner) and the
# option that sets its health-check threshold (airflow/jobs/job.py, health_check_threshold()).
# The triggerer's and dag-processor's options are the ones their health check reads.
JOB_TYPES: dict[str, tuple[str, tuple[str, str]]] = {
    "SchedulerJob": ("scheduler_job_runner.py", ("scheduler", "scheduler_health_check_threshold")),
    "TriggererJob": ("triggerer_job_runner.py", job_health.THRESHOLDS["TriggererJob"]),
    "DagProcessorJob": ("dag_processor_job_runner.py", job_health.THRESHOLDS["DagProcessorJob"]),
}
USAGES = {"LABEL", "GAUGE", "COUNTER", "DISCARD", "HISTOGRAM", "MAPPEDMETRIC", "DURATION"}


def columns(query: str, usage: str) -> list[str]:
    mappings = QUERIES[query]["metrics"]
    return [name for mapping in mappings for name, option in mapping.items() if option["usage"] == usage]


def exported_metrics() -> dict[str, set[str]]:
    """Metric name -> its labels from the exporter (Prometheus adds instance and job)."""
    found = {}
    for query in QUERIES:
        labels = set(columns(query, "LABEL")) | {"server"}
        for column in columns(query, "GAUGE") + columns(query, "COUNTER"):
            found[f"{query}_{column}"] = labels
    return found


def airflow_source(name: str) -> str:
    """A file of the installed Airflow's airflow/jobs/, read without importing Airflow."""
    spec = importlib.util.find_spec("airflow")
    assert spec is not None, "apache-airflow is not installed"
    assert spec.submodule_search_locations
    return (Path(next(iter(spec.submodule_search_locations))) / "jobs" / name).read_text()


def test_queries_are_well_formed() -> None:
    for name, spec in QUERIES.items():
        # postgres_exporter replaces the first "pg" of a query name with --metric-prefix.
        assert "pg" not in name, name
        assert spec["query"].strip().upper().startswith("SELECT"), name
        for mapping in spec["metrics"]:
            ((column, option),) = mapping.items()
            assert option["usage"] in USAGES, (name, column)
            assert option["description"].strip(), (name, column)
            # Every mapped column is one the query returns (an unmapped one would be exported untyped).
            assert re.search(rf"\b{column}\b", spec["query"]), (name, column)


def test_rules_read_exactly_the_exported_metrics() -> None:
    assert set(exported_metrics()) == POSTGRES_EXPORTER_QUERY_METRICS


def test_promtool_inputs_carry_the_exporter_labels() -> None:
    exported = exported_metrics()
    problems = []
    for group in TEST_GROUPS:
        for item in group.get("input_series", []):
            name, _, labels = item["series"].partition("{")
            if name in exported:
                have = set(re.findall(r"(\w+)\s*=", labels))
                if have != exported[name] | {"instance", "job"}:
                    problems.append(f"{item['series']}: the exporter gives {sorted(exported[name])}")
    assert not problems, "\n".join(problems)


def test_job_types_are_airflow_s() -> None:
    query = QUERIES["airflow_jobs"]["query"]
    for job_type, (source, _) in JOB_TYPES.items():
        assert re.search(rf'^\s+job_type = "{job_type}"$', airflow_source(source), re.MULTILINE), job_type
        assert f"('{job_type}')" in query, job_type
    # Alive the way Airflow judges it (Job._is_alive): state running and a recent heartbeat.
    assert "state == JobState.RUNNING" in airflow_source("job.py")
    assert "job.state = 'running'" in query


@pytest.fixture(scope="module")
def thresholds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    """Each job type's health-check threshold in the stack: config/airflow.cfg, else Airflow's default."""
    home = tmp_path_factory.mktemp("airflow_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_HOME", str(home))
        mp.setenv("AIRFLOW_CONFIG", str(home / "airflow.cfg"))
        from airflow.configuration import AirflowConfigParser

        defaults = AirflowConfigParser()
        cfg = configparser.ConfigParser(interpolation=None)
        cfg.read(REPO / "config" / "airflow.cfg")
        return {
            job_type: float(cfg.get(section, key, fallback=None) or defaults.get(section, key))
            for job_type, (_, (section, key)) in JOB_TYPES.items()
        }


def test_live_window_is_airflow_s_health_check_threshold(thresholds: dict[str, float]) -> None:
    query = QUERIES["airflow_jobs"]["query"]
    (window,) = re.findall(r"latest_heartbeat > now\(\) - interval '(\d+) seconds'", query)
    assert set(thresholds.values()) == {float(window)}, (
        f"the query counts heartbeats of the last {window} s, Airflow's thresholds are {thresholds}: "
        "one window for all three job types, change the query (and its comments) with airflow.cfg"
    )


def test_the_job_health_probe_reads_the_stacks_thresholds(thresholds: dict[str, float]) -> None:
    """scripts/job_health.py, which does not import Airflow, ends at the same threshold as Airflow:
    config/airflow.cfg, else the installed Airflow's default."""
    config = str(REPO / "config" / "airflow.cfg")
    for job_type in job_health.THRESHOLDS:
        assert job_health.threshold(job_type, {}, config) == thresholds[job_type], job_type


def test_no_compose_file_overrides_a_health_check_threshold() -> None:
    names = {f"AIRFLOW__{section.upper()}__{key.upper()}" for _, (section, key) in JOB_TYPES.values()}
    for path in (REPO / "docker-compose.yml", REPO / "tests" / "integration" / "compose.test.yml"):
        assert not [name for name in names if name in path.read_text()], path


def test_exporter_reads_the_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(render((REPO / ".env.example").read_text()))
    service = resolved(env_file)["services"]["postgres-exporter"]
    path = service["environment"]["PG_EXPORTER_EXTEND_QUERY_PATH"]
    mounts = {(Path(v["source"]), v["target"], v.get("read_only", False)) for v in service["volumes"]}
    assert (QUERIES_PATH, path, True) in mounts
    # Airflow's own database, straight to Postgres (PgBouncer's transaction pool is for Airflow's SQL).
    assert service["environment"]["DATA_SOURCE_URI"].startswith("postgres:5432/airflow?")


def test_backup_state_is_what_the_loop_writes() -> None:
    query = QUERIES["db_backup"]["query"]
    assert "FROM db_backup.status" in query
    table = re.search(r"CREATE TABLE IF NOT EXISTS db_backup\.status \((.*?)\n\);", LOOP, re.DOTALL)
    assert table, "scripts/db-backup.sh no longer creates db_backup.status"
    written = set(re.findall(r"^\s+(\w+) ", table.group(1), re.MULTILINE)) - {"id"}
    read = set(re.findall(r"\b(\w+_at|interval_seconds)\b", query))
    assert read == written, (read, written)
    assert "record last_success_at" in LOOP
    assert "record last_failure_at" in LOOP
    # Every dump leaves the state out, so restoring one never rolls it back; `make backup` dumps with
    # the same script (its `once` mode).
    assert "--exclude-schema=db_backup" in LOOP
    assert "db-backup once" in BACKUP
