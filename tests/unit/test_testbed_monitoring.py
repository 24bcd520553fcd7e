"""The integration tests' copies of the monitoring configuration: the same rules and routes as
production, with only the scrape, evaluation and grouping intervals shortened; and production keeps
its own intervals (the copies are written outside the checkout)."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.integration.testbed import (
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
    rules = sorted(path.name for path in (REPO / "prometheus" / "rules").glob("*.yml"))
    assert sorted(path.name for path in (dirs.prometheus / "rules").glob("*.yml")) == rules
    for name in rules:
        assert (dirs.prometheus / "rules" / name).read_bytes() == (
            REPO / "prometheus" / "rules" / name
        ).read_bytes()


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
