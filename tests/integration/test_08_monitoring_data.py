"""Every dashboard panel and every Prometheus rule is backed by data from the live stack, after the
example workload (successes, failures, retries, deferrals, pool waits) has run: each panel query
and each recording rule returns a series with a value, every series selector inside each alert rule
matches live series, and every metric name they use exists in Prometheus. Where a live Grafana runs,
it lists every provisioned dashboard and reports its datasource healthy."""

from __future__ import annotations

import json
import math

import pytest
import requests

from tests.integration.monitoring import (
    COVERAGE,
    DASHBOARDS,
    Expression,
    metric_names,
    panel_expressions,
    rule_expressions,
    selectors,
)
from tests.integration.stack import Stack

PANELS = panel_expressions()
RULES = rule_expressions()
RECORDING = [e for e in RULES if e.kind == "recording rule"]
ALERTS = [e for e in RULES if e.kind == "alert rule"]
# The one place for what may legitimately be absent, each with the reason: expression locations
# ("dashboard <uid> / <panel> [<ref>]", "rule <group> / <name>") and metric names.
KILLED = (
    "sent only when the scheduler fails a task instance whose heartbeat stopped or that Celery reported "
    "finished behind Airflow's back (a worker killed mid-task): no test before this module kills a "
    "worker mid-task (scale-downs are warm, test_04 kills a scheduler); test_12's worker kills come after"
)
EXPECTED_WITHOUT_DATA: dict[str, str] = {
    "airflow_triggers_blocked_main_thread": (
        "sent only when a trigger blocks the triggerer's event loop: a healthy stack may never send it "
        "(seen in busy runs, absent in calm ones); its panel shows 0 meanwhile"
    ),
    "airflow_task_instances_without_heartbeats_killed": KILLED,
    "airflow_scheduler_tasks_killed_externally": KILLED,
    "rule airflow-tasks-killed / AirflowTasksKilledWithoutHeartbeat": KILLED,
    "rule airflow-tasks-killed / AirflowTasksKilledExternally": KILLED,
}


@pytest.fixture(scope="module")
def workload_scraped(stack: Stack) -> Stack:
    """The example workload's failures have reached Prometheus (its DAG tests ran just before)."""
    assert stack.wait_for_series('airflow_ti_finish{state="failed"}', timeout=120), "no failed task metrics"
    assert stack.wait_for_series("airflow_dagrun_duration_failed_count", timeout=120), "no failed run metrics"
    return stack


def has_value(result: list[dict]) -> bool:
    return any(not math.isnan(float(series["value"][1])) for series in result)


def check_returns_data(stack: Stack, expression: Expression) -> None:
    COVERAGE[f"{expression.kind} expressions checked"] += 1
    if expression.where in EXPECTED_WITHOUT_DATA:
        pytest.skip(f"{expression.where}: {EXPECTED_WITHOUT_DATA[expression.where]}")
    result = stack.wait_for_series(expression.expr, timeout=30)
    assert result, f"{expression.where}: no series for {expression.expr}"
    assert has_value(result), f"{expression.where}: only NaN for {expression.expr}"
    COVERAGE[f"{expression.kind} expressions with data"] += 1


@pytest.mark.parametrize("expression", PANELS, ids=[e.where for e in PANELS])
def test_panel_query_returns_data(workload_scraped: Stack, expression: Expression) -> None:
    check_returns_data(workload_scraped, expression)


@pytest.mark.parametrize("expression", RECORDING, ids=[e.where for e in RECORDING])
def test_recording_rule_returns_data(workload_scraped: Stack, expression: Expression) -> None:
    check_returns_data(workload_scraped, expression)


@pytest.mark.parametrize("expression", ALERTS, ids=[e.where for e in ALERTS])
def test_alert_rule_selectors_match_live_series(workload_scraped: Stack, expression: Expression) -> None:
    COVERAGE["alert rule expressions checked"] += 1
    if expression.where in EXPECTED_WITHOUT_DATA:
        pytest.skip(f"{expression.where}: {EXPECTED_WITHOUT_DATA[expression.where]}")
    empty = [
        s
        for s in sorted(selectors(workload_scraped.parse_query(expression.expr)))
        if not workload_scraped.prometheus_query(s)
    ]
    assert not empty, f"{expression.where}: selectors without series: {empty}"
    COVERAGE["alert rule expressions with data"] += 1


def test_every_metric_name_used_exists_in_prometheus(workload_scraped: Stack) -> None:
    used: dict[str, str] = {}
    for expression in PANELS + RULES:
        for name in metric_names(workload_scraped.parse_query(expression.expr)):
            used.setdefault(name, expression.where)
    present = set(workload_scraped.metric_names())
    missing = {
        name: where
        for name, where in used.items()
        if name not in present and name not in EXPECTED_WITHOUT_DATA
    }
    COVERAGE["metric names used"] = len(used)
    COVERAGE["metric names used, present"] = len(used.keys() & present)
    assert not missing, f"metric names not in Prometheus: {missing}"


@pytest.fixture
def grafana(stack: Stack) -> tuple[str, tuple[str, str]]:
    if not stack.with_grafana:
        pytest.skip(f"live Grafana not tested: image {stack.grafana_image} is not present on this machine")
    return stack.url("GRAFANA_PORT"), (stack.env["GRAFANA_ADMIN_USER"], stack.env["GRAFANA_ADMIN_PASSWORD"])


def test_grafana_lists_every_provisioned_dashboard(grafana: tuple[str, tuple[str, str]]) -> None:
    url, auth = grafana
    found = requests.get(f"{url}/api/search", params={"type": "dash-db"}, auth=auth, timeout=30).json()
    expected = {json.loads(p.read_text())["uid"] for p in DASHBOARDS}
    assert expected <= {d["uid"] for d in found}


def test_grafana_datasource_is_healthy(grafana: tuple[str, tuple[str, str]]) -> None:
    url, auth = grafana
    health = requests.get(f"{url}/api/datasources/uid/prometheus/health", auth=auth, timeout=30).json()
    assert health["status"] == "OK", health


def test_grafana_refuses_anonymous_users(grafana: tuple[str, tuple[str, str]]) -> None:
    url, _ = grafana
    assert requests.get(f"{url}/api/search", timeout=30).status_code == 401
