"""The Prometheus rules in prometheus/rules/ load in promtool, pass their promtool unit tests in
prometheus/tests/, every alert carries severity, summary, a "check first" description and a runbook_url
to its own section of docs/runbooks.md and is tested firing and silent, every recording rule is tested,
and every metric name the rules read is one the stack really exports (KNOWN_METRICS below, the one list
of them)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.go_tools import run, tool

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "prometheus" / "rules"
TESTS_DIR = REPO / "prometheus" / "tests"
RUNBOOKS = REPO / "docs" / "runbooks.md"

SEVERITIES = {"critical", "warning", "info"}
# Alerts that fire all the time by design, so no test case can show them silent.
ALWAYS_FIRING = {"Watchdog"}
# What every runbook section says, as bold lead-ins.
RUNBOOK_PARTS = ("**Meaning.**", "**Check first.**", "**Fix.**")

# Every metric name the rules may read, with where it comes from. A name not listed here (nor recorded
# by a rule) is a typo or a metric the stack does not export. Sources:
# - Airflow 3.3.2 through statsd-exporter (job airflow-statsd), as seen on the live stack with InfluxDB
#   tags and legacy names off: name -> its labels (besides instance and job). Histograms are listed by
#   family name; their _bucket (plus le), _sum and _count series are allowed.
AIRFLOW_METRICS: dict[str, tuple[str, ...]] = {
    "airflow_asset_orphaned": (),
    "airflow_connection_test_active": (),
    "airflow_connection_test_pending": (),
    "airflow_dag_processing_file_path_queue_size": (),
    "airflow_dag_processing_file_path_queue_update_count": (),
    "airflow_dag_processing_import_errors": (),
    "airflow_dag_processing_last_run_seconds_ago": ("bundle_name", "file_name", "file_path"),
    "airflow_dag_processing_processes": ("action", "file_path"),
    "airflow_dag_processing_total_parse_time": (),
    "airflow_dag_processor_heartbeat": (),
    "airflow_dagbag_size": (),
    "airflow_executor_open_slots": ("executor_class_name", "status"),
    "airflow_executor_queued_tasks": ("executor_class_name", "status"),
    "airflow_executor_running_tasks": ("executor_class_name", "status"),
    "airflow_job_start": (),
    "airflow_operator_successes": ("dag_id", "operator_name", "task_id"),
    "airflow_pool_deferred_slots": ("pool_name",),
    "airflow_pool_open_slots": ("pool_name",),
    "airflow_pool_queued_slots": ("pool_name",),
    "airflow_pool_running_slots": ("pool_name",),
    "airflow_pool_scheduled_slots": ("pool_name",),
    "airflow_pool_starving_tasks": ("pool_name",),
    "airflow_scheduler_critical_section_busy": (),
    "airflow_scheduler_dag_bag_cache_hit": (),
    "airflow_scheduler_dag_bag_cache_miss": (),
    "airflow_scheduler_dagruns_running": (),
    "airflow_scheduler_heartbeat": (),
    "airflow_scheduler_orphaned_tasks_adopted": (),
    "airflow_scheduler_orphaned_tasks_cleared": (),
    "airflow_scheduler_tasks_executable": (),
    "airflow_scheduler_tasks_starving": (),
    "airflow_task_instance_created": ("dag_id", "run_type", "task_type"),
    "airflow_ti_finish": ("dag_id", "state", "task_id"),
    "airflow_ti_start": ("dag_id", "task_id"),
    "airflow_ti_successes": ("dag_id", "task_id"),
    "airflow_triggerer_capacity_left": ("hostname",),
    "airflow_triggerer_heartbeat": (),
    "airflow_triggers_blocked_main_thread": (),
    "airflow_triggers_running": ("hostname",),
    # Sent only when the scheduler kills a task instance, so not on a healthy stack (names and tags from
    # the 3.3.2 source, jobs/scheduler_job_runner.py; team_name only with multi_team on).
    "airflow_scheduler_tasks_killed_externally": ("dag_id", "task_id"),
    "airflow_task_instances_without_heartbeats_killed": ("dag_id", "task_id"),
}
AIRFLOW_HISTOGRAMS: dict[str, tuple[str, ...]] = {
    "airflow_dag_processing_last_duration": ("bundle_name", "file_name"),
    "airflow_dagrun_dependency_check": ("dag_id", "run_type"),
    "airflow_dagrun_duration_success": ("dag_id", "run_type"),
    "airflow_scheduler_critical_section_duration": (),
    "airflow_scheduler_critical_section_query_duration": (),
    "airflow_scheduler_executor_heartbeat_duration": ("executor",),
    "airflow_scheduler_scheduler_loop_duration": (),
    "airflow_serde_load_serializers": (),
    "airflow_task_duration": ("dag_id", "task_id"),
    "airflow_task_scheduled_duration": ("dag_id", "queue", "task_id"),
    # Not on a fresh stack: emitted only after a DAG run fails ...
    "airflow_dagrun_duration_failed": ("dag_id", "run_type"),
    # ... and only for runs Airflow schedules itself (not manual, asset-triggered or cleared runs).
    "airflow_dagrun_schedule_delay": ("dag_id",),
}
# - postgres-exporter's custom queries (config/postgres_exporter_queries.yml: <query>_<column>; labels
#   checked by tests/unit/test_postgres_exporter_queries.py, which also holds this set to the file).
POSTGRES_EXPORTER_QUERY_METRICS: set[str] = {
    # live Airflow components from the `job` table, label job_type
    "airflow_jobs_live",
    # the db-backup loop's state (db_backup.status)
    "db_backup_interval_seconds",
    "db_backup_started_timestamp_seconds",
    "db_backup_last_success_timestamp_seconds",
    "db_backup_last_failure_timestamp_seconds",
}
# - The exporters and Prometheus itself (scrape job in brackets).
EXPORTER_METRICS: set[str] = {
    # every job
    "up",
    # [prometheus]; the failure counter appears per rule group once rule files are loaded
    "prometheus_rule_evaluation_failures_total",
    # [alertmanager] failed deliveries per integration and reason, every integration at 0 from the start
    "alertmanager_notifications_failed_total",
    # [airflow-statsd] statsd_exporter's own process metrics
    "process_start_time_seconds",
    # [flower] Flower 2.x /metrics
    "flower_worker_online",
    "flower_worker_number_of_currently_executing_tasks",
    "flower_worker_prefetched_tasks",
    "flower_events_total",
    # [worker-capacity] scripts/worker_capacity.py
    "airflow_capacity_target_slots",
    "airflow_capacity_live_workers",
    "airflow_capacity_pool_slots",
    "airflow_capacity_broker_up",
    # [postgres-exporter] prometheus-community/postgres_exporter
    "pg_up",
    "pg_stat_activity_count",
    "pg_stat_activity_max_tx_duration",
    "pg_settings_max_connections",
    # [pgbouncer-exporter] prometheus-community/pgbouncer_exporter (SHOW POOLS columns)
    "pgbouncer_up",
    "pgbouncer_pools_client_active_connections",
    "pgbouncer_pools_client_waiting_connections",
    "pgbouncer_pools_client_maxwait_seconds",
    "pgbouncer_pools_server_active_connections",
    "pgbouncer_pools_server_idle_connections",
    # [redis-exporter] oliver006/redis_exporter; redis_key_size from --check-single-keys=db0=default
    "redis_up",
    "redis_memory_used_bytes",
    "redis_memory_max_bytes",
    "redis_key_size",
    # [cadvisor] google/cadvisor with --enable_metrics=cpu,memory,oom_event; prometheus.yml keeps these
    # and relabels name/compose labels to container, compose_service, compose_project
    "container_cpu_usage_seconds_total",
    "container_memory_working_set_bytes",
    "container_memory_rss",
    "container_spec_memory_limit_bytes",
    "container_oom_events_total",
    # [node-exporter] prometheus/node_exporter, collectors filesystem, meminfo, cpu, loadavg
    "node_filesystem_avail_bytes",
    "node_filesystem_size_bytes",
    "node_filesystem_readonly",
    "node_memory_MemAvailable_bytes",
    "node_memory_MemTotal_bytes",
    "node_cpu_seconds_total",
    "node_load1",
}
KNOWN_METRICS: set[str] = (
    set(AIRFLOW_METRICS)
    | {f"{family}{suffix}" for family in AIRFLOW_HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")}
    | EXPORTER_METRICS
    | POSTGRES_EXPORTER_QUERY_METRICS
)

# Words that are not metric names where a name could stand: operators, modifiers, and aggregations
# (in `max by (x) (...)` the aggregation is not followed by a parenthesis).
PROMQL_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "inf", "nan", "start", "end",
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}  # fmt: skip


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
TEST_FILES = sorted(TESTS_DIR.glob("*.yml"))
RULES = [rule for path in RULE_FILES for group in load(path)["groups"] for rule in group["rules"]]
ALERTS = {rule["alert"]: rule for rule in RULES if "alert" in rule}
RECORDED = {rule["record"] for rule in RULES if "record" in rule}
TEST_GROUPS = [group for path in TEST_FILES for group in load(path)["tests"]]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords and label names left out)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", expr)
    names = set()
    for match in re.finditer(r"(?<![\w:.])([A-Za-z_:][\w:]*)(\s*\()?", expr):
        word, call = match.groups()
        if not call and word.lower() not in PROMQL_KEYWORDS:
            names.add(word)
    return names


def series_name_and_labels(series: str) -> tuple[str, set[str]]:
    name, _, labels = series.partition("{")
    return name.strip(), set(re.findall(r"(\w+)\s*=", labels))


def test_rule_and_test_files_exist() -> None:
    assert {p.name for p in RULE_FILES} >= {
        "airflow-recording.yml",
        "airflow-alerts.yml",
        "infrastructure-alerts.yml",
    }
    assert TEST_FILES, f"no promtool test files in {TESTS_DIR}"


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules(path: Path) -> None:
    result = run(tool("promtool"), "check", "rules", "--lint=all", "--lint-fatal", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(path: Path) -> None:
    result = run(tool("promtool"), "test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_names_are_unique() -> None:
    alerts = [rule["alert"] for rule in RULES if "alert" in rule]
    records = [rule["record"] for rule in RULES if "record" in rule]
    assert len(alerts) == len(set(alerts)), alerts
    assert len(records) == len(set(records)), records


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_alert_has_severity_service_summary_and_what_to_check(name: str) -> None:
    rule = ALERTS[name]
    assert rule["labels"]["severity"] in SEVERITIES
    assert rule["labels"].get("service"), "Alertmanager groups and inhibits by the service label"
    assert rule["annotations"]["summary"].strip()
    description = rule["annotations"]["description"]
    assert "Check first" in description, "the description must say what to check first"
    assert "`" in description or "UI" in description, "name a concrete command or UI page"


def runbook_sections() -> dict[str, str]:
    """docs/runbooks.md's level-2 sections: heading -> text."""
    parts = re.split(r"^## (.+)$", RUNBOOKS.read_text(), flags=re.MULTILINE)
    return {heading.strip(): text for heading, text in zip(parts[1::2], parts[2::2], strict=True)}


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_alert_links_its_runbook_section(name: str) -> None:
    # GitHub's anchor of a heading that is a bare alert name is the name in lower case.
    assert ALERTS[name]["annotations"].get("runbook_url") == f"docs/runbooks.md#{name.lower()}"
    section = runbook_sections().get(name)
    assert section is not None, f"docs/runbooks.md has no '## {name}' section"
    missing = [part for part in RUNBOOK_PARTS if part not in section]
    assert not missing, f"docs/runbooks.md, {name}: no {missing}"


def test_every_runbook_section_is_an_alert() -> None:
    assert set(runbook_sections()) == set(ALERTS), "runbooks.md's '## ' sections are the alert names"


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_alert_is_tested_firing_and_silent(name: str) -> None:
    cases = [case for group in TEST_GROUPS for case in group.get("alert_rule_test", [])]
    fires = [c for c in cases if c["alertname"] == name and c.get("exp_alerts")]
    silent = [c for c in cases if c["alertname"] == name and not c.get("exp_alerts")]
    assert fires, f"{name}: no promtool test case where it fires"
    assert silent or name in ALWAYS_FIRING, f"{name}: no promtool test case where it stays silent"
    for case in fires:
        for alert in case["exp_alerts"]:
            assert alert["exp_labels"]["severity"] == ALERTS[name]["labels"]["severity"]
            assert set(alert.get("exp_annotations", {})) >= {"summary", "description", "runbook_url"}


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_recording_rule_value_is_tested(name: str) -> None:
    exprs = [case["expr"] for group in TEST_GROUPS for case in group.get("promql_expr_test", [])]
    assert any(name in metric_names(expr) for expr in exprs), f"no promql_expr_test evaluates {name}"


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_recording_rule_name_is_level_metric_operations(name: str) -> None:
    assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", name), name


@pytest.mark.parametrize(
    "rule", RULES, ids=lambda r: r.get("alert") or r.get("record")
)  # one case per rule, so a typo names its rule
def test_rule_reads_only_known_metrics(rule: dict) -> None:
    unknown = metric_names(rule["expr"]) - KNOWN_METRICS - RECORDED
    assert not unknown, (
        f"not exported by the stack (add it to KNOWN_METRICS with its source if it is): {unknown}"
    )


def test_test_inputs_use_exported_names_and_label_sets() -> None:
    problems = []
    for group in TEST_GROUPS:
        for item in group.get("input_series", []):
            name, labels = series_name_and_labels(item["series"])
            if name not in KNOWN_METRICS:
                problems.append(f"{name}: unknown metric")
            family = re.sub(r"_(bucket|sum|count)$", "", name)
            expected = AIRFLOW_METRICS.get(name) or AIRFLOW_HISTOGRAMS.get(family)
            if expected is not None:
                want = set(expected) | {"instance", "job"} | ({"le"} if name.endswith("_bucket") else set())
                if labels != want:
                    problems.append(
                        f"{item['series']}: labels {sorted(labels)}, the stack has {sorted(want)}"
                    )
    assert not problems, "\n".join(problems)


def test_metric_name_extraction() -> None:
    expr = (
        'sum by (dag_id, le) (rate(airflow_ti_finish{state="failed"}[5m] offset 1h)) / on (dag_id) '
        'group_left max(x:y:z) > 0.5e3 and absent(up{job="a"}) or vector(1)'
    )
    assert metric_names(expr) == {"airflow_ti_finish", "x:y:z", "up"}
