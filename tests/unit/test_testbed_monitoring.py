"""The integration tests' copies of the monitoring configuration: the same rules and routes as
production, with only the scrape, evaluation and grouping intervals shortened and the `for:` and range
windows of the alerts test_09 drives into firing divided by FAST_ALERT_SCALE; production keeps its own
(the copies are written outside the checkout)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from stackkit.durations import seconds
from tests.integration.testbed import (
    FAST_ALERT_SCALE,
    FAST_ALERTS,
    TEST_GROUP_INTERVAL,
    TEST_GROUP_WAIT,
    TEST_SCRAPE_INTERVAL,
    GuestDirs,
    guest_dirs,
)
from tests.unit.go_tools import run, tool

REPO = Path(__file__).resolve().parents[2]


def routes(route: dict) -> list[dict]:
    return [route, *(found for child in route.get("routes", []) for found in routes(child))]


def copies(tmp_path: Path) -> GuestDirs:
    root = tmp_path / "guest"
    root.mkdir()
    return guest_dirs(root)


def test_the_prometheus_copy_changes_only_the_global_intervals(tmp_path: Path) -> None:
    dirs = copies(tmp_path)
    production = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
    copy = yaml.safe_load((dirs.prometheus / "prometheus.yml").read_text())
    assert production["global"] == {"scrape_interval": "15s", "evaluation_interval": "15s"}
    assert copy["global"] == {
        "scrape_interval": TEST_SCRAPE_INTERVAL,
        "evaluation_interval": TEST_SCRAPE_INTERVAL,
    }
    assert {key: value for key, value in copy.items() if key != "global"} == {
        key: value for key, value in production.items() if key != "global"
    }


def alert_rules(rules_dir: Path) -> dict[str, dict]:
    return {
        rule.get("alert") or rule["record"]: rule
        for path in rules_dir.glob("*.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    }


def test_the_rule_copies_shorten_only_the_fast_alerts_windows(tmp_path: Path) -> None:
    dirs = copies(tmp_path)
    rules = sorted(path.name for path in (REPO / "prometheus" / "rules").glob("*.yml"))
    assert sorted(path.name for path in (dirs.prometheus / "rules").glob("*.yml")) == rules
    for name in rules:
        result = run(tool("promtool"), "check", "rules", str(dirs.prometheus / "rules" / name))
        assert result.returncode == 0, result.stdout + result.stderr
    production, copy = alert_rules(REPO / "prometheus" / "rules"), alert_rules(dirs.prometheus / "rules")
    assert production.keys() >= FAST_ALERTS, "a fast alert was renamed: test_09 would wait out production's"
    assert {n: r for n, r in copy.items() if n not in FAST_ALERTS} == {
        n: r for n, r in production.items() if n not in FAST_ALERTS
    }
    for name in FAST_ALERTS:
        ours, theirs = copy[name], production[name]
        assert {k: v for k, v in ours.items() if k not in ("for", "expr")} == {
            k: v for k, v in theirs.items() if k not in ("for", "expr")
        }
        assert seconds(ours["for"]) * FAST_ALERT_SCALE == seconds(theirs["for"])
        assert ours["expr"] != theirs["expr"] or "[" not in theirs["expr"]
        windows = re.findall(r"\[(\w+)\]", theirs["expr"])
        assert re.findall(r"\[(\w+)\]", ours["expr"]) == [
            f"{seconds(w) / FAST_ALERT_SCALE:g}s" for w in windows
        ]


def test_the_alertmanager_copy_loads_and_shortens_every_routes_grouping(tmp_path: Path) -> None:
    dirs = copies(tmp_path)
    result = run(tool("amtool"), "check-config", str(dirs.alertmanager_config))
    assert result.returncode == 0, result.stdout + result.stderr
    production = yaml.safe_load((REPO / "alertmanager" / "alertmanager.yml").read_text())
    copy = yaml.safe_load(dirs.alertmanager_config.read_text())
    assert production["route"]["group_wait"] != TEST_GROUP_WAIT
    for ours, theirs in zip(routes(copy["route"]), routes(production["route"]), strict=True):
        assert {k: v for k, v in ours.items() if k != "routes"} == {
            k: (TEST_GROUP_WAIT if k == "group_wait" else TEST_GROUP_INTERVAL if k == "group_interval" else v)
            for k, v in theirs.items()
            if k != "routes"
        }
    assert {k: v for k, v in copy.items() if k != "route"} == {
        k: v for k, v in production.items() if k != "route"
    }
