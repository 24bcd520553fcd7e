"""What the monitoring promises rest on: every PromQL expression of the provisioned dashboards and of
the Prometheus rules, with the dashboard variables substituted, and the series selectors inside
each one (taken from Prometheus' own parser, /api/v1/parse_query).

Counts of what was checked are kept in COVERAGE and printed at the end of the test session."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((REPO / "grafana" / "dashboards").rglob("*.json"))
RULE_FILES = sorted((REPO / "prometheus" / "rules").glob("*.yml"))
# Values the dashboard variables take in the tests: every DAG and task (the example workload ran),
# a rate window and a range that span that workload, as a user looking at the last hour sees them.
# 10m, not Grafana's usual few minutes: the last of ~170 queries runs minutes after the workload ended,
# and a quantile or ratio of rates with nothing in its window is NaN.
VARIABLES = {"dag_id": ".*", "task_id": ".*", "__rate_interval": "10m", "__range": "1h", "__interval": "1m"}
COVERAGE: Counter[str] = Counter()


@dataclass(frozen=True)
class Expression:
    where: str  # "dashboard <uid> / <panel>" or "rule <group> / <name>"
    kind: str  # "panel", "recording rule" or "alert rule"
    expr: str


def substitute(expr: str) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: VARIABLES.get(m.group(1), m.group(0)), expr)


def panel_expressions() -> list[Expression]:
    found = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                where = f"dashboard {dashboard['uid']} / {panel['title']} [{target['refId']}]"
                found.append(Expression(where, "panel", substitute(target["expr"])))
    return found


def rule_expressions() -> list[Expression]:
    found = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                name = rule.get("record") or rule["alert"]
                kind = "recording rule" if "record" in rule else "alert rule"
                found.append(Expression(f"rule {group['name']} / {name}", kind, rule["expr"]))
    return found


def selectors(ast: object) -> set[str]:
    """The series selectors of a parsed expression, as PromQL text (offsets and ranges dropped)."""
    found: set[str] = set()
    if isinstance(ast, dict):
        if isinstance(ast.get("matchers"), list):
            matchers = sorted(f"{m['name']}{m['type']}{json.dumps(m['value'])}" for m in ast["matchers"])
            found.add("{" + ",".join(matchers) + "}")
        for value in ast.values():
            found |= selectors(value)
    elif isinstance(ast, list):
        for value in ast:
            found |= selectors(value)
    return found


def metric_names(ast: object) -> set[str]:
    names: set[str] = set()
    if isinstance(ast, dict):
        if ast.get("type") in ("vectorSelector", "matrixSelector") and ast.get("name"):
            names.add(ast["name"])
        for value in ast.values():
            names |= metric_names(value)
    elif isinstance(ast, list):
        for value in ast:
            names |= metric_names(value)
    return names
