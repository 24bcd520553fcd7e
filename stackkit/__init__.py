"""Driving a Compose stack of this repository from the host: env files, compose commands, containers,
SQL in Postgres, Prometheus inside the stack and the Airflow REST API. Used by the integration tests,
the benchmark and the `make` helper scripts.

`envfile` is standard library only (the helper scripts run before any virtualenv exists); the other
modules need the test requirements (docker, requests, apache-airflow-client).
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
