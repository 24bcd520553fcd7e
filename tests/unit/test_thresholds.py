"""A panel and the alert that watch the same quantity turn red (orange for a warning level) and fire at
the same number: the one in grafana/dashboards_src/thresholds.py. The dashboards import it; here each
named alert's expression must compare with it, and each named panel of the generated JSON must take the
threshold's colour exactly there."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from grafana.dashboards_src.thresholds import SHARED, TASK_FAILURE_RATIO, Threshold

REPO = Path(__file__).resolve().parents[2]
ALERTS = {
    rule["alert"]: rule
    for path in sorted((REPO / "prometheus" / "rules").glob("*.yml"))
    for group in yaml.safe_load(path.read_text())["groups"]
    for rule in group["rules"]
    if "alert" in rule
}
PANELS = [
    panel
    for path in sorted((REPO / "grafana" / "dashboards").rglob("*.json"))
    for panel in json.loads(path.read_text())["panels"]
]


def compared_with(expr: str) -> set[float]:
    """The numbers an expression compares something with (`x > 0.1`, `y >= 10`)."""
    return {float(number) for number in re.findall(r"(?<![=!<>])[<>]=?\s*([0-9]+(?:\.[0-9]+)?)\b", expr)}


def colour_from(panel: dict, colour: str) -> float | None:
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    found = [step["value"] for step in steps if step["color"] == colour]
    return found[0] if len(found) == 1 else None


@pytest.mark.parametrize("threshold", SHARED, ids=lambda t: t.alert)
def test_alert_fires_at_the_shared_threshold(threshold: Threshold) -> None:
    expr = ALERTS[threshold.alert]["expr"]
    assert threshold.value in compared_with(expr), (
        f"{threshold.alert} compares with {sorted(compared_with(expr))}, "
        f"grafana/dashboards_src/thresholds.py says {threshold.value}"
    )


@pytest.mark.parametrize("threshold", SHARED, ids=lambda t: t.alert)
def test_panels_change_colour_at_the_shared_threshold(threshold: Threshold) -> None:
    for title in threshold.panels:
        found = [panel for panel in PANELS if panel["title"] == title]
        assert found, f"no dashboard panel titled {title!r}"
        for panel in found:
            at = colour_from(panel, threshold.color)
            assert at == threshold.value, f"{title!r} turns {threshold.color} at {at}"


def test_failure_ratio_alert_states_its_threshold() -> None:
    description = ALERTS[TASK_FAILURE_RATIO.alert]["annotations"]["description"]
    assert f"threshold {TASK_FAILURE_RATIO.value:.0%}" in description


def test_comparison_extraction() -> None:
    expr = 'a:b:c > 0.1\nand on () sum(x{state=~"a|b"}) >= 10 unless y == 3 or z < 5e2'
    assert compared_with(expr) == {0.1, 10.0}
