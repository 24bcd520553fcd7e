"""alertmanager/alertmanager.yml loads in amtool, routes each severity (and each real alert of
prometheus/rules/) to the intended receiver, never pages for the always-firing Watchdog, delivers
through the webhook URL file only (no URL in the file), and its inhibit rules name alerts and services
that exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from stackkit.durations import seconds
from tests.unit.go_tools import run, tool

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "alertmanager" / "alertmanager.yml"
RULES_DIR = REPO / "prometheus" / "rules"
WEBHOOK_URL_FILE = "/run/secrets/alertmanager_webhook_url"

# severity label -> the receiver it must reach ("null" notifies nobody)
RECEIVER_BY_SEVERITY = {"critical": "webhook-critical", "warning": "webhook-warning", "info": "null"}


def routed_to(*labels: str) -> str:
    result = run(tool("amtool"), "config", "routes", "test", f"--config.file={CONFIG}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def alert_rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in sorted(RULES_DIR.glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return yaml.safe_load(CONFIG.read_text())


def test_amtool_check_config() -> None:
    result = run(tool("amtool"), "check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("severity", "receiver"), sorted(RECEIVER_BY_SEVERITY.items()))
def test_severity_routes_to_receiver(severity: str, receiver: str) -> None:
    assert routed_to(f"severity={severity}", "alertname=AnyAlert") == receiver


def test_alert_without_severity_still_notifies() -> None:
    assert routed_to("alertname=AnyAlert") == "webhook-warning"


def test_every_alert_rule_reaches_its_severity_receiver() -> None:
    wrong = {}
    for rule in alert_rules():
        labels = {"alertname": rule["alert"], **rule["labels"]}
        got = routed_to(*(f"{key}={value}" for key, value in labels.items()))
        if got != RECEIVER_BY_SEVERITY[rule["labels"]["severity"]]:
            wrong[rule["alert"]] = got
    assert not wrong, wrong


def test_watchdog_notifies_nobody(config: dict[str, Any]) -> None:
    (watchdog,) = (rule for rule in alert_rules() if rule["alert"] == "Watchdog")
    labels = {"alertname": "Watchdog", **watchdog["labels"]}
    assert routed_to(*(f"{key}={value}" for key, value in labels.items())) == "null"
    # Its own route comes first: a change to the severity routes or its severity cannot make it page.
    assert config["route"]["routes"][0] == {"matchers": ['alertname="Watchdog"'], "receiver": "null"}
    assert routed_to("alertname=Watchdog", "severity=critical") == "null"


def test_no_url_in_the_file_webhooks_read_the_secret(config: dict[str, Any]) -> None:
    assert "://" not in CONFIG.read_text(), "the webhook URL comes from .env through a secret file"
    webhooks = [hook for receiver in config["receivers"] for hook in receiver.get("webhook_configs", [])]
    assert webhooks
    for hook in webhooks:
        assert hook["url_file"] == WEBHOOK_URL_FILE
        assert "url" not in hook
        assert hook["send_resolved"] is True


def test_routes_group_and_time_critical_faster(config: dict[str, Any]) -> None:
    route = config["route"]
    assert set(route["group_by"]) >= {"alertname", "service"}
    by_severity = {r["matchers"][0]: r for r in route["routes"]}
    critical, warning = by_severity['severity="critical"'], by_severity['severity="warning"']
    for key in ("group_wait", "repeat_interval"):
        assert seconds(critical[key]) < seconds(warning[key]), key


def test_inhibit_rules_name_existing_alerts_and_services(config: dict[str, Any]) -> None:
    rules = alert_rules()
    alerts = {rule["alert"] for rule in rules}
    services = {rule["labels"]["service"] for rule in rules}
    for inhibit in config["inhibit_rules"]:
        for matcher in inhibit["source_matchers"] + inhibit["target_matchers"]:
            name, op, value = re.fullmatch(r'(\w+)\s*(=~|!~|!=|=)\s*"(.*)"', matcher).groups()
            pool = {"alertname": alerts, "service": services}.get(name)
            if pool is None:
                continue
            if op in ("=", "!="):
                assert value in pool, f"{matcher}: no such {name}"
            else:
                assert any(re.fullmatch(value, item) for item in pool), f"{matcher}: matches no {name}"
