"""The Prometheus-project programs the unit tests run (promtool, amtool, statsd_exporter), at the
versions the stack pins (offline/images.env): the ones `make tools` builds into the cache, by path,
never whatever else is on PATH (Debian's promtool 2.42 rejects the stack's rules)."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
XDG_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
CACHE_BIN = Path(os.environ.get("AIRFLOW_STACK_CACHE", XDG_CACHE / "airflow-stack")) / "bin"
# The image in offline/images.env whose tag is each tool's version.
PINNED_BY = {
    "promtool": "PROMETHEUS_IMAGE",
    "prometheus": "PROMETHEUS_IMAGE",
    "amtool": "ALERTMANAGER_IMAGE",
    "statsd_exporter": "STATSD_EXPORTER_IMAGE",
}


def pinned_version(name: str) -> str:
    for line in (REPO / "offline" / "images.env").read_text().splitlines():
        if line.startswith(f"{PINNED_BY[name]}="):
            return line.rsplit(":", 1)[1].removeprefix("v")
    raise AssertionError(f"offline/images.env has no {PINNED_BY[name]}")


@functools.cache
def tool(name: str) -> str:
    path = CACHE_BIN / name
    if not os.access(path, os.X_OK):
        pytest.fail(f"{name} is not in {CACHE_BIN}: run `make tools` (needs Go)")
    want = pinned_version(name)
    out = run(str(path), "--version")
    if f"version {want} " not in out.stdout + out.stderr:
        pytest.fail(f"{path} is not version {want} (offline/images.env): {out.stdout or out.stderr}")
    return str(path)


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
