"""Runs `docker compose config` on the repository's compose file (the CLI only: no engine needed)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SECRETS = [
    "POSTGRES_PASSWORD",
    "REDIS_PASSWORD",
    "AIRFLOW_FERNET_KEY",
    "AIRFLOW_JWT_SECRET",
    "AIRFLOW_API_SECRET_KEY",
    "AIRFLOW_ADMIN_PASSWORD",
    "FLOWER_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
    "DEMO_DB_PASSWORD",
]
# What a worker host's .env holds (docs/remote-workers.md): never the admin, Flower or Grafana passwords.
WORKER_SECRETS = [
    "POSTGRES_PASSWORD",
    "REDIS_PASSWORD",
    "AIRFLOW_FERNET_KEY",
    "AIRFLOW_JWT_SECRET",
    "AIRFLOW_API_SECRET_KEY",
    "DEMO_DB_PASSWORD",
]


def compose_config(
    env_file: Path | str, *extra: str, compose_file: Path = REPO / "docker-compose.yml"
) -> subprocess.CompletedProcess[str]:
    # Only PATH and HOME from the caller: a secret exported in the shell must not mask a missing one.
    env = {key: os.environ[key] for key in ("PATH", "HOME") if key in os.environ}
    return subprocess.run(
        [
            "docker",
            "compose",
            "--file",
            str(compose_file),
            "--env-file",
            str(env_file),
            *extra,
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        check=False,
    )


def resolved(env_file: Path) -> dict:
    result = compose_config(env_file, "--profile", "grafana")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
