"""What the monitoring promises rest on: every PromQL expression of the provisioned dashboards and of
the Prometheus rules, with the dashboard variables substituted, and the series selectors inside
each one (taken from Prometheus' own parser, /api/v1/parse_query). Panel queries are checked without
their zero fallback (without_fallback()): `x or vector(0)` shows 0 whether or not x has series, so
only x itself proves the panel is backed by data. The metrics that may legitimately have none, because
only an event sends them, are EVENT_ONLY, each with its reason; tests/unit/test_monitoring_proof.py
checks the stripping, the matching and that no entry is dead.

Counts of what was checked are kept in COVERAGE and printed at the end of the test session."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

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

KILLED = (
    "sent only when the scheduler fails a task instance whose heartbeat stopped or that Celery reported "
    "finished behind Airflow's back (a worker killed mid-task): no test before test_08 kills a worker "
    "mid-task (scale-downs are warm); test_12's worker kills come after"
)
# Metrics that only an event sends, so that a healthy stack after the example workload may have no
# series of them: metric name (or one exact selector of a metric, where only that selection is an
# event) -> why. An expression that uses one may come back empty (its panel then shows its zero
# fallback, which must itself return a value); any other empty result fails.
EVENT_ONLY: dict[str, str] = {
    'ALERTS{alertstate="firing", severity="critical"}': (
        "a critical alert fires only while something is broken: after the workload, on a healthy stack, "
        "none may fire (Watchdog, always firing, proves ALERTS itself)"
    ),
    'ALERTS{alertstate="firing", severity="warning"}': (
        "a warning fires only while something is wrong; whether the workload's failures still fire one "
        "when test_08 runs depends on timing (Watchdog, always firing, proves ALERTS itself)"
    ),
    "airflow_triggers_blocked_main_thread": (
        "sent only when a trigger blocks the triggerer's event loop: a healthy stack may never send it "
        "(seen in busy runs, absent in calm ones)"
    ),
    "airflow_scheduler_critical_section_busy": (
        "sent only when a scheduler finds the other one holding the critical section: two schedulers "
        "collide in some runs of the workload and not in others"
    ),
    "airflow_task_instances_without_heartbeats_killed": KILLED,
    "airflow_scheduler_tasks_killed_externally": KILLED,
}


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


def _groups(expr: str) -> list[tuple[int, int]]:
    """(start, end) of each outermost bracket pair, ( [ or {, outside quoted strings; end is inclusive."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    found: list[tuple[int, int]] = []
    stack: list[tuple[str, int]] = []
    quote = ""
    for index, char in enumerate(expr):
        if quote:
            if char == quote and expr[index - 1] != "\\":
                quote = ""
        elif char in "\"'`":
            quote = char
        elif char in pairs:
            stack.append((pairs[char], index))
        elif stack and char == stack[-1][0]:
            _, start = stack.pop()
            if not stack:
                found.append((start, index))
    if stack or quote:
        raise ValueError(f"unbalanced brackets or quotes: {expr}")
    return found


def _top_level_or(expr: str) -> list[str]:
    """The operands of `or` at the top level of expr (not inside brackets or strings), as written."""
    hidden = list(expr)
    for start, end in _groups(expr):
        hidden[start : end + 1] = "_" * (end + 1 - start)
    masked = "".join(hidden)
    masked = re.sub(r"(['\"`]).*?\1", lambda m: "_" * len(m.group(0)), masked)
    cuts = [m.span() for m in re.finditer(r"(?<![\w:])or(?![\w:])", masked)]
    operands, last = [], 0
    for start, end in cuts:
        operands.append(expr[last:start])
        last = end
    operands.append(expr[last:])
    return operands


_MODIFIER = re.compile(r"^\s*(?:on|ignoring)\s*\([^)]*\)")
# `vector(0)`, or anything multiplied by 0 (plus a constant): `(known) * 0`, `max(x) * 0 + 604800`.
_ZERO = re.compile(r"^(?:vector\(\s*0\s*\)|.*\*\s*0(?![\d.])(?:\s*\+\s*[\d.e+]+)?)$", re.DOTALL)


def _unwrap(expr: str) -> str:
    expr = expr.strip()
    while expr.startswith("(") and (0, len(expr) - 1) in _groups(expr):
        expr = expr[1:-1].strip()
    return expr


def is_fallback(operand: str) -> bool:
    """An `or` operand that only fills in a constant: vector(0), (x) * 0, x * 0 + c."""
    return bool(_ZERO.match(_unwrap(_MODIFIER.sub("", operand))))


def without_fallback(expr: str) -> str:
    """expr with every `or <constant fallback>` removed, at any depth; everything else as written."""
    operands = [operand for operand in _top_level_or(expr) if not is_fallback(operand)]
    if not operands:
        raise ValueError(f"nothing but fallbacks: {expr}")
    operands[0] = _MODIFIER.sub("", operands[0])  # a dropped first operand leaves no `on ()` behind
    joined = "or".join(operands).strip()
    result, last = [], 0
    for start, end in _groups(joined):
        if joined[start] == "(":
            result += [joined[last : start + 1], without_fallback(joined[start + 1 : end]), ")"]
            last = end + 1
    result.append(joined[last:])
    return "".join(result)


def event_only_metrics(expr: str) -> dict[str, str]:
    """The EVENT_ONLY entries that expr uses, with their reasons: a metric name matches as a whole name,
    a selector only exactly as written."""
    return {
        name: reason
        for name, reason in EVENT_ONLY.items()
        if (name in expr if "{" in name else re.search(rf"(?<![\w:]){re.escape(name)}(?![\w:])", expr))
    }


class Prometheus(Protocol):
    def wait_for_series(self, promql: str, timeout: float = ...) -> list[dict]: ...


def has_value(result: list[dict]) -> bool:
    return any(not math.isnan(float(series["value"][1])) for series in result)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    message: str
    skipped: bool = False


def check_panel(prometheus: Prometheus, expression: Expression, timeout: float = 30) -> Verdict:
    """A panel query without its fallback must return a value; an empty one passes (as skipped) only
    when it uses an EVENT_ONLY metric and the query as the panel runs it still shows its fallback."""
    bare = without_fallback(expression.expr)
    reasons = event_only_metrics(bare)
    # An event-only metric is scraped once its event happened, before test_08 starts: asked once, not
    # waited for (waiting 30 s per such panel cost minutes of every run).
    result = prometheus.wait_for_series(bare, timeout=0 if reasons else timeout)
    if result:
        if has_value(result):
            return Verdict(True, f"{expression.where}: data")
        return Verdict(False, f"{expression.where}: only NaN for {bare}")
    if not reasons:
        return Verdict(False, f"{expression.where}: no series without the fallback, for {bare}")
    if not prometheus.wait_for_series(expression.expr, timeout=0):
        return Verdict(False, f"{expression.where}: no series even with its fallback, for {expression.expr}")
    why = "; ".join(f"{name}: {reason}" for name, reason in sorted(reasons.items()))
    return Verdict(True, f"{expression.where}: no series of event-only metrics ({why})", skipped=True)
