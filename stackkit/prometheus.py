"""Prometheus' HTTP API. It is not published on the host: asked at the container's own address on its
Compose network where the host reaches it (a Linux host does), else from inside the container."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PORT = 9090
# GETs "/api/v1/...?query" from Prometheus and returns the body.
Fetch = Callable[[str], str]


def wget_command(path_and_query: str) -> list[str]:
    """The same GET from inside the container, with the image's own wget."""
    return ["wget", "-q", "-O", "-", f"http://127.0.0.1:{PORT}{path_and_query}"]


@dataclass(frozen=True)
class Prometheus:
    fetch: Fetch

    def get(self, path: str, **params: str) -> Any:
        """The `data` of a successful answer to GET PATH?PARAMS."""
        body = json.loads(self.fetch(f"{path}?" + urllib.parse.urlencode(params)))
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
