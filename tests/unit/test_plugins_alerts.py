"""stack_patterns.alerts: the webhook URL rebuilt from the alert_webhook connection, the Slack-compatible
payload built from the context a worker hands to callbacks, the no-op when the connection is empty or
absent, and a real POST to scripts/webhook_receiver.py running on a free local port."""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from airflow.sdk import Connection
from airflow.sdk.exceptions import AirflowFailException
from stack_patterns import alerts

from tests.unit.example_support import load_dag, running_receiver, runtime_ti

BASE_URL = "http://airflow.example.test:8080/"
RUN_ID = "manual__2026-01-15T12:00:00+00:00"


@pytest.fixture(autouse=True)
def api_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", BASE_URL)


@pytest.fixture(scope="module")
def retries_dag() -> Any:
    return load_dag("example_retries_and_failures.py", "example_retries_and_failures")


def failure_context(dag: Any, task_id: str = "fails_on_purpose", **kwargs: Any) -> dict[str, Any]:
    """The context the task runner passes to on_failure_callback: the task's template context + exception."""
    context = dict(runtime_ti(dag, task_id, **kwargs).get_template_context())
    context["exception"] = AirflowFailException("failing on purpose: <b>& more</b>")
    return context


def received(base_url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{base_url}/received", timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def receiver() -> Iterator[str]:
    with running_receiver() as url:
        yield url


@pytest.mark.parametrize(
    "url",
    [
        "http://webhook-receiver:8080/alerts",
        "https://hooks.slack.com/services/T000/B000/XXXX",
        "http://webhook-receiver:8080",
        "http://user:p%40ss@hooks.example.com:8443/a/b/c",
        "https://hooks.example.com/hook?token=abc",
    ],
)
def test_webhook_url_round_trips_through_a_connection(url: str) -> None:
    # What the secrets backend makes of AIRFLOW_CONN_ALERT_WEBHOOK=<url>.
    assert alerts.webhook_url(Connection.from_uri(url, conn_id="alert_webhook")) == url


def test_webhook_url_edge_cases() -> None:
    assert alerts.webhook_url(Connection(conn_id="x", conn_type="http")) is None
    full = Connection(conn_id="x", conn_type="http", host="https://hooks.slack.com", schema="services/T/B/X")
    assert alerts.webhook_url(full) == "https://hooks.slack.com/services/T/B/X"
    odd_type = Connection(conn_id="x", conn_type="slackwebhook", host="hooks.slack.com", schema="services/T")
    assert alerts.webhook_url(odd_type) == "https://hooks.slack.com/services/T"


def test_redact_keeps_the_secret_path_out_of_logs() -> None:
    assert alerts.redact("https://hooks.slack.com/services/T000/B000/XXXX") == "https://hooks.slack.com/..."
    assert alerts.redact("http://webhook-receiver:8080/alerts") == "http://webhook-receiver:8080/..."


def test_failure_payload(retries_dag: Any) -> None:
    payload = alerts.build_alert_payload(failure_context(retries_dag, try_number=2), "failed")
    fields = payload["metadata"]["event_payload"]
    assert payload["metadata"]["event_type"] == "airflow_task_failed"
    assert {k: fields[k] for k in ("dag_id", "task_id", "run_id", "map_index", "try_number", "state")} == {
        "dag_id": "example_retries_and_failures",
        "task_id": "fails_on_purpose",
        "run_id": RUN_ID,
        "map_index": -1,
        "try_number": 2,
        "state": "failed",
    }
    assert fields["max_tries"] == 3
    assert fields["exception_type"] == "AirflowFailException"
    assert fields["exception_message"] == "failing on purpose: <b>& more</b>"
    assert fields["log_url"] == (
        "http://airflow.example.test:8080/dags/example_retries_and_failures/runs/"
        "manual__2026-01-15T12%3A00%3A00%2B00%3A00/tasks/fails_on_purpose?try_number=2"
    )
    assert fields["logical_date"] == "2026-01-15T12:00:00+00:00"
    assert fields["hostname"] == "airflow-worker-1"
    assert fields["owner"] == "platform"
    # Slack message metadata values are flat JSON scalars.
    assert all(isinstance(v, str | int | bool) for v in fields.values())

    text = payload["text"]
    for expected in (
        "example_retries_and_failures.fails_on_purpose",
        RUN_ID,
        "try 2 of 4",
        "AirflowFailException",
    ):
        assert expected in text
    header, section, error, context_block = payload["blocks"]
    assert header["type"] == "header"
    assert len(header["text"]["text"]) <= 150
    assert len(section["fields"]) <= 10
    assert "*Try*\n2 of 4" in [f["text"] for f in section["fields"]]
    assert "&lt;b&gt;&amp; more&lt;/b&gt;" in error["text"]["text"]  # mrkdwn-escaped
    assert f"<{fields['log_url']}|Task log>" in context_block["elements"][0]["text"]
    json.dumps(payload)  # serialisable as is


def test_retry_and_mapped_payload() -> None:
    dag = load_dag("example_mapped_throttle.py", "example_mapped_throttle")
    context = dict(runtime_ti(dag, "process", map_index=5).get_template_context())
    context["exception"] = RuntimeError("item 5 fails")
    payload = alerts.build_alert_payload(context, "up_for_retry")
    fields = payload["metadata"]["event_payload"]
    assert payload["metadata"]["event_type"] == "airflow_task_up_for_retry"
    assert (fields["state"], fields["map_index"]) == ("up_for_retry", 5)
    assert "/tasks/process/mapped/5?try_number=1" in fields["log_url"]
    assert "process[5]" in payload["text"]


def test_no_alert_when_the_connection_is_absent_or_empty(
    retries_dag: Any, receiver: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    context = failure_context(retries_dag)
    monkeypatch.delenv("AIRFLOW_CONN_ALERT_WEBHOOK", raising=False)
    with caplog.at_level("INFO", logger="stack_patterns.alerts"):
        assert alerts.send_alert(context, "failed") is False
        alerts.on_failure_alert(context)  # returns, does not raise
    assert "connection 'alert_webhook' is not set: no alert sent" in caplog.text
    monkeypatch.setenv("AIRFLOW_CONN_ALERT_WEBHOOK", "")
    assert alerts.send_alert(context, "failed") is False
    alerts.on_retry_alert(context)
    assert received(receiver) == []


def test_callbacks_post_to_the_receiver(
    retries_dag: Any, receiver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ALERT_WEBHOOK", f"{receiver}/alerts")
    context = failure_context(retries_dag, try_number=4)
    alerts.on_failure_alert(context)
    alerts.on_retry_alert(context)
    got = received(receiver)
    assert [r["path"] for r in got] == ["/alerts", "/alerts"]
    failure, retry = (r["body"] for r in got)
    assert failure["metadata"]["event_payload"]["state"] == "failed"
    assert retry["metadata"]["event_payload"]["state"] == "up_for_retry"
    expected = alerts.build_alert_payload(context, "failed")
    sent_at = failure["metadata"]["event_payload"]["sent_at"]
    expected["metadata"]["event_payload"]["sent_at"] = sent_at
    assert failure["metadata"] == expected["metadata"]
    assert failure["text"] == expected["text"]


def test_unreachable_or_silent_webhook_never_raises(
    retries_dag: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    context = failure_context(retries_dag)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("AIRFLOW_CONN_ALERT_WEBHOOK", f"http://127.0.0.1:{port}/alerts")
    assert alerts.send_alert(context, "failed") is False
    alerts.on_failure_alert(context)
    # A server that accepts the connection and never answers: the POST gives up after its timeout.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/alerts"
        assert alerts.post_alert(url, {"text": "x"}, timeout=0.5) is False


def test_a_broken_context_never_raises(monkeypatch: pytest.MonkeyPatch, receiver: str) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ALERT_WEBHOOK", f"{receiver}/alerts")
    alerts.on_failure_alert({})  # type: ignore[arg-type]
    assert alerts.send_alert({"ti": object()}, "no-such-state") is False
