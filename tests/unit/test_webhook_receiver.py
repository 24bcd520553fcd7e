"""scripts/webhook_receiver.py, the local alert sink: stores JSON POSTs on any path, lists them on
GET /received, answers /health, rejects a body that is not JSON with 400. Run for real on a free port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.unit.example_support import REPO, running_receiver


@pytest.fixture
def receiver() -> Iterator[str]:
    with running_receiver() as url:
        yield url


def call(method: str, url: str, body: bytes | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, data=body, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_health(receiver: str) -> None:
    assert call("GET", f"{receiver}/health") == (200, {"status": "ok"})


def test_post_then_list(receiver: str) -> None:
    assert call("GET", f"{receiver}/received") == (200, [])
    assert call("POST", f"{receiver}/alerts", json.dumps({"text": "one"}).encode()) == (200, {"ok": True})
    assert call("POST", f"{receiver}/other/path", b'{"text": "two", "n": [1, 2]}')[0] == 200
    status, received = call("GET", f"{receiver}/received")
    assert status == 200
    assert [(r["path"], r["body"]) for r in received] == [
        ("/alerts", {"text": "one"}),
        ("/other/path", {"text": "two", "n": [1, 2]}),
    ]
    assert all(r["received_at"].endswith("+00:00") for r in received)
    assert call("DELETE", f"{receiver}/received") == (200, {"ok": True})
    assert call("GET", f"{receiver}/received") == (200, [])


@pytest.mark.parametrize("body", [b"not json", b"", b"\xff\xfe", b'{"unterminated": '])
def test_a_body_that_is_not_json_is_a_400(receiver: str, body: bytes) -> None:
    status, answer = call("POST", f"{receiver}/alerts", body)
    assert status == 400
    assert "not JSON" in answer["error"]
    assert call("GET", f"{receiver}/received") == (200, [])


def test_unknown_get_path_is_a_404(receiver: str) -> None:
    assert call("GET", f"{receiver}/nope")[0] == 404


def test_memory_is_bounded() -> None:
    from scripts.webhook_receiver import make_server

    server = make_server("127.0.0.1", 0, max_items=3)
    try:
        for n in range(5):
            server.store({"path": "/", "body": {"n": n}, "received_at": ""})
        assert [r["body"]["n"] for r in server.snapshot()] == [2, 3, 4]
    finally:
        server.server_close()


def test_runs_as_a_script_prints_json_lines_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "webhook_receiver.py"), "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        port = json.loads(process.stdout.readline())["port"]
        assert call("POST", f"http://127.0.0.1:{port}/alerts", b'{"text": "hi"}')[0] == 200
        line = json.loads(process.stdout.readline())
        assert (line["path"], line["body"]) == ("/alerts", {"text": "hi"})
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
