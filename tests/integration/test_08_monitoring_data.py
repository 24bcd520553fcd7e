"""The provisioned Grafana dashboards are backed by data: every panel query returns at least one
series from the live Prometheus; where a Grafana image is present, Grafana itself lists every
provisioned dashboard and reports its datasource healthy."""

from __future__ import annotations

import json
import re

import pytest
import requests

from tests.integration.stack import REPO, Stack

DASHBOARDS = sorted((REPO / "grafana" / "dashboards").rglob("*.json"))
# Values the dashboard variables take in these tests (the smoke DAG is what ran).
VARIABLES = {"dag_id": "smoke_mapped", "__rate_interval": "2m", "__range": "1h", "__interval": "1m"}


def panel_queries() -> list[tuple[str, str]]:
    queries = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                queries.append((f"{path.stem}: {panel['title']}", target["expr"]))
    return queries


def substitute(expr: str) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: VARIABLES.get(m.group(1), m.group(0)), expr)


@pytest.mark.parametrize(("panel", "expr"), panel_queries(), ids=[p for p, _ in panel_queries()])
def test_panel_query_returns_data(stack: Stack, panel: str, expr: str) -> None:
    result = stack.wait_for_series(substitute(expr), timeout=90)
    assert result, f"{panel}: no series for {substitute(expr)}"


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
