"""Prometheus' HTTP API, asked from inside its container (it is not published on the host)."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Runs a command in the prometheus container and returns its output.
Exec = Callable[[list[str]], str]


@dataclass(frozen=True)
class Prometheus:
    exec: Exec

    def get(self, path: str, **params: str) -> Any:
        """The `data` of a successful answer to GET PATH?PARAMS."""
        url = f"http://127.0.0.1:9090{path}?" + urllib.parse.urlencode(params)
        body = json.loads(self.exec(["wget", "-q", "-O", "-", url]))
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql: str) -> list[dict]:
        return self.get("/api/v1/query", query=promql)["result"]

    def parse_query(self, promql: str) -> dict:
        """Prometheus' own syntax tree of an expression."""
        return self.get("/api/v1/parse_query", query=promql)

    def metric_names(self) -> list[str]:
        return self.get("/api/v1/label/__name__/values")

    def alerts(self) -> list[dict]:
        """Prometheus' alerts: pending and firing, with labels and state."""
        return self.get("/api/v1/alerts")["alerts"]

    def wait_for_series(self, promql: str, timeout: float = 120) -> list[dict]:
        """The query's result once it has one, or the empty result after TIMEOUT seconds."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if result or time.monotonic() > deadline:
                return result
            time.sleep(5)
