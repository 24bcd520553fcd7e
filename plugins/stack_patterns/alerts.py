"""Task failure and retry callbacks that post a Slack-compatible alert to a webhook.

The webhook's URL comes from the Airflow connection `alert_webhook`, set in every container through
the environment variable AIRFLOW_CONN_ALERT_WEBHOOK, whose value is the URL itself: a Slack incoming
webhook (https://hooks.slack.com/services/...) in production, the stack's local receiver
(http://webhook-receiver:8080/alerts) in tests. When the connection is empty or absent, the callbacks
log one line and do nothing.

The alert is Slack's incoming-webhook JSON: `text` (the notification line), `blocks` (what Slack shows)
and `metadata` (Slack message metadata), whose `event_payload` holds the machine-readable fields:
dag_id, task_id, run_id, map_index, try_number, max_tries, state, exception_type, exception_message,
log_url, logical_date, hostname, owner, sent_at.

Use in a DAG: `default_args={..., **ALERT_CALLBACKS}`. A callback never raises: a broken webhook must not
change a task's outcome. The POST has a 5 s timeout, and the URL (whose path is Slack's secret) is never
logged beyond its scheme and host.
"""

from __future__ import annotations

import json
import logging
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

if TYPE_CHECKING:
    from airflow.sdk import Connection, Context

log = logging.getLogger(__name__)

ALERT_CONN_ID = "alert_webhook"
POST_TIMEOUT_SECONDS = 5.0
MAX_EXCEPTION_CHARS = 500

# state -> (Slack metadata event_type, emoji, verb for the headline)
_EVENTS: dict[str, tuple[str, str, str]] = {
    "failed": ("airflow_task_failed", ":red_circle:", "failed"),
    "up_for_retry": ("airflow_task_up_for_retry", ":large_orange_circle:", "failed, will retry"),
}


def webhook_url(conn: Connection) -> str | None:
    """Rebuild the webhook URL from a connection made from that URL, or None if it has no host.

    Connection.from_uri splits `https://hooks.slack.com/services/T0/B0/X` into conn_type `https`, host,
    port and schema `services/T0/B0/X` (the path), and a query string into extra; Connection.get_uri()
    does not give the URL back (it percent-encodes the path's slashes), so it is rebuilt here. A host
    holding a whole URL (the HTTP-connection habit) is accepted too.
    """
    host = (conn.host or "").strip()
    if not host:
        return None
    path = (conn.schema or "").lstrip("/")
    if "://" in host:
        base = host.rstrip("/") if path else host
    else:
        scheme = (conn.conn_type or "").lower()
        if scheme not in ("http", "https"):
            scheme = "https"
        userinfo = ""
        if conn.login:
            password = f":{quote(conn.password, safe='')}" if conn.password else ""
            userinfo = f"{quote(conn.login, safe='')}{password}@"
        port = f":{conn.port}" if conn.port else ""
        base = f"{scheme}://{userinfo}{host}{port}"
    url = f"{base}/{quote(path, safe='/')}" if path else base
    if extra := conn.extra_dejson:
        url = f"{url}?{urlencode(extra)}"
    return url


def redact(url: str) -> str:
    """Scheme and host only: a Slack webhook's path is its secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}/..."


def _log_url(ti: Any, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> str:
    """The task instance's own log_url (built from [api] base_url), or the same URL built here."""
    try:
        url = ti.log_url
        if isinstance(url, str) and url:
            return url
    except Exception:
        log.debug("task instance has no usable log_url; building one", exc_info=True)
    from airflow.sdk import conf

    base = conf.get("api", "base_url", fallback="http://localhost:8080/").rstrip("/")
    mapped = f"/mapped/{map_index}" if map_index >= 0 else ""
    tries = f"?try_number={try_number}" if try_number > 0 else ""
    return f"{base}/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/{task_id}{mapped}{tries}"


def _mrkdwn_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def build_alert_payload(context: Context | dict[str, Any], state: str) -> dict[str, Any]:
    """The Slack-compatible JSON for a task that ended in `state` ("failed" or "up_for_retry")."""
    event_type, emoji, verb = _EVENTS[state]
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    task = context.get("task")
    dag_id = str(getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "") or "")
    task_id = str(getattr(ti, "task_id", None) or getattr(task, "task_id", "") or "")
    run_id = str(getattr(ti, "run_id", None) or context.get("run_id") or "")
    map_index = getattr(ti, "map_index", -1)
    map_index = -1 if map_index is None else int(map_index)
    try_number = int(getattr(ti, "try_number", 0) or 0)
    max_tries = int(getattr(ti, "max_tries", 0) or 0)
    logical_date = getattr(dag_run, "logical_date", None)
    exception = context.get("exception")
    exception_type = type(exception).__name__ if isinstance(exception, BaseException) else ""
    exception_message = str(exception)[:MAX_EXCEPTION_CHARS] if exception is not None else ""
    log_url = _log_url(ti, dag_id, run_id, task_id, map_index, try_number)
    hostname = str(getattr(ti, "hostname", None) or socket.gethostname())
    owner = str(getattr(task, "owner", "") or "")
    sent_at = datetime.now(UTC).isoformat(timespec="seconds")

    task_label = f"{task_id}[{map_index}]" if map_index >= 0 else task_id
    attempts = f"{try_number} of {max_tries + 1}" if max_tries + 1 >= try_number > 0 else str(try_number)
    title = f"{emoji} Airflow task {verb}: {dag_id}.{task_label}"
    error_line = f"{exception_type}: {exception_message}" if exception_type else exception_message
    text = f"{title} (run {run_id}, try {attempts})" + (f": {error_line}" if error_line else "")

    fields = [
        ("DAG", dag_id),
        ("Task", task_label),
        ("Run", run_id),
        ("Try", attempts),
        ("State", state),
        ("Host", hostname),
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150], "emoji": True}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*{label}*\n{_mrkdwn_escape(value) or '-'}"}
                for label, value in fields
            ],
        },
    ]
    if error_line:
        code = _mrkdwn_escape(error_line).replace("```", "'''")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Error*\n```{code}```"}})
    blocks.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"<{log_url}|Task log> · owner {owner or '-'} · {sent_at}"}
            ],
        }
    )
    return {
        "text": text,
        "blocks": blocks,
        "metadata": {
            "event_type": event_type,
            "event_payload": {
                "dag_id": dag_id,
                "task_id": task_id,
                "run_id": run_id,
                "map_index": map_index,
                "try_number": try_number,
                "max_tries": max_tries,
                "state": state,
                "exception_type": exception_type,
                "exception_message": exception_message,
                "log_url": log_url,
                "logical_date": logical_date.isoformat() if logical_date else "",
                "hostname": hostname,
                "owner": owner,
                "sent_at": sent_at,
            },
        },
    }


def post_alert(url: str, payload: dict[str, Any], timeout: float = POST_TIMEOUT_SECONDS) -> bool:
    """POST the payload as JSON; True on a 2xx answer. Never raises."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload, default=str).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "airflow-stack-alerts/1"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        log.warning("alert webhook %s answered HTTP %s; alert not delivered", redact(url), error.code)
        return False
    except Exception as error:
        log.warning("alert webhook %s unreachable (%s: %s)", redact(url), type(error).__name__, error)
        return False
    log.info("alert delivered to %s (HTTP %s)", redact(url), status)
    return True


def resolve_webhook_url(conn_id: str = ALERT_CONN_ID) -> str | None:
    """The webhook URL from the connection, or None (logged once) when it is not set."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        log.info("connection %r is not set: no alert sent", conn_id)
        return None
    url = webhook_url(conn)
    if url is None:
        log.info("connection %r has no host: no alert sent", conn_id)
    return url


def send_alert(context: Context | dict[str, Any], state: str, conn_id: str = ALERT_CONN_ID) -> bool:
    """Build and post the alert; True if delivered. Never raises."""
    try:
        url = resolve_webhook_url(conn_id)
        if url is None:
            return False
        return post_alert(url, build_alert_payload(context, state))
    except Exception:
        log.exception("alert callback failed; the task's state is not affected")
        return False


def on_failure_alert(context: Context) -> None:
    """on_failure_callback: the task failed for good."""
    send_alert(context, "failed")


def on_retry_alert(context: Context) -> None:
    """on_retry_callback: the task failed and will be retried."""
    send_alert(context, "up_for_retry")


ALERT_CALLBACKS: dict[str, Callable[[Context], None]] = {
    "on_failure_callback": on_failure_alert,
    "on_retry_callback": on_retry_alert,
}
