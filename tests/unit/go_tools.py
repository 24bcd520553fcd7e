"""The Prometheus-project programs the unit tests run (promtool, amtool, statsd_exporter), at the
versions the stack pins: found on PATH or in the cache where `make tools` builds them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
XDG_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
CACHE_BIN = Path(os.environ.get("AIRFLOW_STACK_CACHE", XDG_CACHE / "airflow-stack")) / "bin"


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(CACHE_BIN))
    if found is None:
        pytest.fail(f"{name} not found on PATH or in {CACHE_BIN}: run `make tools` (needs Go)")
    return found


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
