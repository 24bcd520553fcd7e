"""test_08's proof that panels are backed by data, checked without a stack: without_fallback() strips
exactly the constant fallbacks of the real panel queries (and what is left still parses), the
event-only list matches by metric name, every entry of it is used by some panel or rule (no dead
entries), and check_panel() fails an empty query unless it uses an event-only metric."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.integration.monitoring import (
    EVENT_ONLY,
    Expression,
    check_panel,
    event_only_metrics,
    is_fallback,
    panel_expressions,
    rule_expressions,
    without_fallback,
)
from tests.unit.go_tools import tool

PANELS = panel_expressions()
RULES = rule_expressions()
FALLBACK = re.compile(r"vector\(0\)|\*\s*0(?![\d.])")


def panel(where: str) -> Expression:
    (found,) = [e for e in PANELS if e.where == where]
    return found


@pytest.mark.parametrize(
    ("expr", "bare"),
    [
        ("sum(x) or vector(0)", "sum(x)"),
        ("(sum(rate(x[5m])) * 60) or vector(0)", "(sum(rate(x[5m])) * 60)"),
        ('sum by (key) (k{key="default"}) or on () (max(up) * 0)', 'sum by (key) (k{key="default"})'),
        ("(a) or ((b) * 0)", "(a)"),
        ("(t - max(s)) or (max by (d) (f) * 0 + 604800)", "(t - max(s))"),
        (
            "(sum(a) or vector(0)) / ((sum(a) or vector(0)) + (sum(b) or vector(0)))",
            "(sum(a)) / ((sum(a)) + (sum(b)))",
        ),
        # Not fallbacks: a selector, a product with 0.5, `or` inside a label value.
        ("((increase(c[1h]) and c offset 1h) or c)", "((increase(c[1h]) and c offset 1h) or c)"),
        ("a or b * 0.5", "a or b * 0.5"),
        ('x{state="or"} or y', 'x{state="or"} or y'),
    ],
)
def test_without_fallback(expr: str, bare: str) -> None:
    assert without_fallback(expr) == bare


def test_fallback_operands() -> None:
    assert is_fallback(" vector(0)")
    assert is_fallback(" on () (max(redis_up) * 0)")
    assert not is_fallback(" airflow_ti_finish")
    assert not is_fallback(" x * 0.5")


def test_real_panels_lose_every_fallback_and_nothing_else() -> None:
    stripped = 0
    for expression in PANELS:
        bare = without_fallback(expression.expr)
        assert not FALLBACK.search(bare), f"{expression.where}: a fallback is left in {bare}"
        if bare != expression.expr:
            stripped += 1
            assert FALLBACK.search(expression.expr), expression.where
    assert stripped >= 20, "the dashboards' fallbacks were not found"
    broker = panel("dashboard airflow-workers / Broker queue · default [A]")
    assert without_fallback(broker.expr) == 'sum by (key) (redis_key_size{key="default"})'


def test_stripped_panel_queries_parse_in_promtool(tmp_path: Path) -> None:
    groups = [
        {"name": f"{i} {e.where}", "rules": [{"record": "dashboard:query", "expr": without_fallback(e.expr)}]}
        for i, e in enumerate(PANELS)
    ]
    rules = tmp_path / "stripped.yml"
    rules.write_text(yaml.safe_dump({"groups": groups}, allow_unicode=True))
    result = subprocess.run(
        [tool("promtool"), "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_event_only_entries_are_metric_names_with_reasons() -> None:
    for name, reason in EVENT_ONLY.items():
        assert re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^{}]+\})?", name), name
        assert len(reason) >= 40, f"{name}: say why it may have no series"


@pytest.mark.parametrize("name", sorted(EVENT_ONLY))
def test_every_event_only_entry_is_used(name: str) -> None:
    """No dead entries: each matches at least one panel query or rule as test_08 sees them."""
    used = [e.where for e in PANELS if name in event_only_metrics(without_fallback(e.expr))]
    used += [e.where for e in RULES if name in event_only_metrics(e.expr)]
    assert used, f"{name} is on the event-only list, but no panel or rule uses it"


def test_matching_is_by_whole_metric_name() -> None:
    blocked = panel("dashboard airflow-workers / Triggerer event loop blocked per hour [A]")
    assert set(event_only_metrics(without_fallback(blocked.expr))) == {"airflow_triggers_blocked_main_thread"}
    assert not event_only_metrics("airflow_triggers_blocked_main_thread_total + x")
    assert not event_only_metrics(panel("dashboard airflow-workers / Broker queue · default [A]").expr)
    # A selector entry exempts that selection only: the Watchdog, proof that rules run, is not exempt.
    critical = panel("dashboard airflow-oncall / Critical alerts firing [A]")
    assert len(event_only_metrics(without_fallback(critical.expr))) == 1
    assert not event_only_metrics(panel("dashboard airflow-oncall / Alerting pipeline · Watchdog [A]").expr)
    assert not event_only_metrics(panel("dashboard airflow-oncall / Firing now [A]").expr)


class FakePrometheus:
    """Answers every query from a fixed table; records what it was asked."""

    def __init__(self, answers: dict[str, list[dict]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def wait_for_series(self, promql: str, timeout: float = 0) -> list[dict]:
        self.asked.append(promql)
        return self.answers.get(promql, [])


SERIES = [{"metric": {}, "value": [0, "0"]}]


def test_check_panel_queries_without_the_fallback_and_fails_when_empty() -> None:
    broker = panel("dashboard airflow-workers / Broker queue · default [A]")
    prometheus = FakePrometheus({broker.expr: SERIES})  # only the query with its fallback has data
    verdict = check_panel(prometheus, broker, timeout=0)
    assert prometheus.asked[0] == without_fallback(broker.expr)
    assert not verdict.ok
    assert "no series without the fallback" in verdict.message


def test_check_panel_passes_with_data_and_rejects_nan() -> None:
    broker = panel("dashboard airflow-workers / Broker queue · default [A]")
    bare = without_fallback(broker.expr)
    assert check_panel(FakePrometheus({bare: SERIES}), broker, timeout=0).ok
    nan = [{"metric": {}, "value": [0, "NaN"]}]
    assert not check_panel(FakePrometheus({bare: nan}), broker, timeout=0).ok


def test_check_panel_skips_an_empty_event_only_panel_that_shows_its_fallback() -> None:
    blocked = panel("dashboard airflow-workers / Triggerer event loop blocked per hour [A]")
    verdict = check_panel(FakePrometheus({blocked.expr: SERIES}), blocked, timeout=0)
    assert verdict.ok
    assert verdict.skipped
    assert EVENT_ONLY["airflow_triggers_blocked_main_thread"] in verdict.message
    # Empty even with its fallback: the panel would show nothing at all.
    assert not check_panel(FakePrometheus({}), blocked, timeout=0).ok
