"""The provisioned dashboards are well-formed for provisioning: valid JSON, the provisioned
datasource uid everywhere, unique panel ids, no import placeholders, a uid and title each."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((REPO / "grafana" / "dashboards").rglob("*.json"))


def provisioned_uid() -> str:
    provisioning = yaml.safe_load((REPO / "grafana/provisioning/datasources/prometheus.yml").read_text())
    (datasource,) = provisioning["datasources"]
    return datasource["uid"]


def datasources(node: object) -> Iterator[dict]:
    if isinstance(node, dict):
        if isinstance(node.get("datasource"), dict):
            yield node["datasource"]
        for value in node.values():
            yield from datasources(value)
    elif isinstance(node, list):
        for value in node:
            yield from datasources(value)


def test_there_are_dashboards() -> None:
    assert DASHBOARDS


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_dashboard_is_provisionable(path: Path) -> None:
    text = path.read_text()
    dashboard = json.loads(text)
    assert dashboard.get("uid"), "no uid"
    assert dashboard.get("title"), "no title"
    assert "${DS_" not in text, "import placeholders left in"
    assert "__inputs" not in dashboard, "import placeholders left in"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {ids}"
    uid = provisioned_uid()
    for datasource in datasources(dashboard):
        assert datasource == {"type": "prometheus", "uid": uid}, datasource
    for panel in dashboard["panels"]:
        assert panel.get("targets"), f"panel {panel['title']!r} has no query"
        assert all(target.get("expr") for target in panel["targets"]), panel["title"]


def test_dashboard_uids_are_unique() -> None:
    uids = [json.loads(p.read_text())["uid"] for p in DASHBOARDS]
    assert len(uids) == len(set(uids))
