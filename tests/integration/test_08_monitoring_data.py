"""Every dashboard panel and every Prometheus rule is backed by data from the live stack, after the
example workload (successes, failures, retries, deferrals, pool waits) has run: each panel query,
WITHOUT its zero fallback (`or vector(0)`, `or (x) * 0`), and each recording rule returns a series
with a value; every series selector inside each alert rule matches live series; and every metric name
they use exists in Prometheus. The only exceptions are the metrics of EVENT_ONLY (monitoring.py), each
with its reason: a query using one may come back empty, and its panel must then still show its
fallback. Where a live Grafana runs, it lists every provisioned dashboard, reports its datasource
healthy, and opens the on-call dashboard as its home."""

from __future__ import annotations

import json

import pytest
import requests

from tests.integration.monitoring import (
    COVERAGE,
    DASHBOARDS,
    EVENT_ONLY,
    Expression,
    check_panel,
    event_only_metrics,
    has_value,
    metric_names,
    panel_expressions,
    rule_expressions,
    selectors,
)
from tests.integration.testbed import IntegrationStack

PANELS = panel_expressions()
RULES = rule_expressions()
RECORDING = [e for e in RULES if e.kind == "recording rule"]
ALERTS = [e for e in RULES if e.kind == "alert rule"]
HOME_UID = "airflow-oncall"


@pytest.fixture(scope="module")
def workload_scraped(stack: IntegrationStack) -> IntegrationStack:
    """The example workload's failures have reached Prometheus (its DAG tests ran just before)."""
    assert stack.prometheus.wait_for_series('airflow_ti_finish{state="failed"}', timeout=120), (
        "no failed task metrics"
    )
    assert stack.prometheus.wait_for_series("airflow_dagrun_duration_failed_count", timeout=120), (
        "no failed run metrics"
    )
    return stack


@pytest.mark.parametrize("expression", PANELS, ids=[e.where for e in PANELS])
def test_panel_query_returns_data_without_its_fallback(
    workload_scraped: IntegrationStack, expression: Expression
) -> None:
    COVERAGE["panel expressions checked"] += 1
    verdict = check_panel(workload_scraped.prometheus, expression)
    assert verdict.ok, verdict.message
    if verdict.skipped:
        COVERAGE["panel expressions empty, event-only"] += 1
        pytest.skip(verdict.message)
    COVERAGE["panel expressions with data, no fallback"] += 1


@pytest.mark.parametrize("expression", RECORDING, ids=[e.where for e in RECORDING])
def test_recording_rule_returns_data(workload_scraped: IntegrationStack, expression: Expression) -> None:
    COVERAGE["recording rule expressions checked"] += 1
    reasons = event_only_metrics(expression.expr)
    result = workload_scraped.prometheus.wait_for_series(expression.expr, timeout=0 if reasons else 30)
    if not result and reasons:
        pytest.skip(f"{expression.where}: {reasons}")
    assert result, f"{expression.where}: no series for {expression.expr}"
    assert has_value(result), f"{expression.where}: only NaN for {expression.expr}"
    COVERAGE["recording rule expressions with data"] += 1


@pytest.mark.parametrize("expression", ALERTS, ids=[e.where for e in ALERTS])
def test_alert_rule_selectors_match_live_series(
    workload_scraped: IntegrationStack, expression: Expression
) -> None:
    COVERAGE["alert rule expressions checked"] += 1
    empty = [
        s
        for s in sorted(selectors(workload_scraped.prometheus.parse_query(expression.expr)))
        if not workload_scraped.prometheus.query(s)
    ]
    # A selector of an event-only metric may match nothing yet; every other selector must match.
    unexplained = [s for s in empty if not event_only_metrics(s)]
    assert not unexplained, f"{expression.where}: selectors without series: {unexplained}"
    if empty:
        pytest.skip(f"{expression.where}: only event-only selectors empty: {empty}")
    COVERAGE["alert rule expressions with data"] += 1


def test_every_metric_name_used_exists_in_prometheus(workload_scraped: IntegrationStack) -> None:
    used: dict[str, str] = {}
    for expression in PANELS + RULES:
        for name in metric_names(workload_scraped.prometheus.parse_query(expression.expr)):
            used.setdefault(name, expression.where)
    present = set(workload_scraped.prometheus.metric_names())
    missing = {name: where for name, where in used.items() if name not in present and name not in EVENT_ONLY}
    COVERAGE["metric names used"] = len(used)
    COVERAGE["metric names used, present"] = len(used.keys() & present)
    assert not missing, f"metric names not in Prometheus: {missing}"


def test_the_ui_url_for_grafana_links_is_airflows_base_url(workload_scraped: IntegrationStack) -> None:
    """worker-capacity exports [api] base_url as airflow_ui_info{url}; the on-call dashboard's links to DAG
    pages read it. The test stack sets no AIRFLOW_PUBLIC_URL, so it is the published api-server."""
    urls = {
        s["metric"]["url"] for s in workload_scraped.prometheus.wait_for_series("airflow_ui_info", timeout=60)
    }
    assert urls == {workload_scraped.url("AIRFLOW_API_PORT")}


@pytest.fixture
def grafana(stack: IntegrationStack) -> tuple[str, tuple[str, str]]:
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


def test_grafana_opens_the_on_call_dashboard_as_home(grafana: tuple[str, tuple[str, str]]) -> None:
    url, auth = grafana
    home = requests.get(f"{url}/api/dashboards/home", auth=auth, timeout=30).json()
    assert home["dashboard"]["uid"] == HOME_UID, home.get("meta")
