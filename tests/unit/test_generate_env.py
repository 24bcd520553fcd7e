"""`make env` writes strong, distinct, well-formed secrets into a private .env and never overwrites one."""

from __future__ import annotations

import re
import stat
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

from tests.unit.compose import REPO, SECRETS


def generate(tmp_path: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
    output = tmp_path / ".env"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "generate_env.py"),
            "--example",
            str(REPO / ".env.example"),
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return output, result


def values(path: Path) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#")
    )


def test_secrets_are_generated_strong_and_distinct(tmp_path: Path) -> None:
    env, _ = generate(tmp_path)
    generated = values(env)
    secrets = [generated[key] for key in SECRETS]
    assert all(len(secret) >= 32 for secret in secrets)
    assert len(set(secrets)) == len(secrets)
    Fernet(generated["AIRFLOW_FERNET_KEY"].encode())  # raises on a malformed key
    assert len(generated["AIRFLOW_JWT_SECRET"].encode()) >= 64
    assert all(re.fullmatch(r"[A-Za-z0-9_=-]+", secret) for secret in secrets), "must be URL-safe base64"
    for in_url in ("POSTGRES_PASSWORD", "REDIS_PASSWORD"):
        assert re.fullmatch(r"[A-Za-z0-9_-]+", generated[in_url]), f"{in_url} goes into connection URLs"


def test_env_file_is_private(tmp_path: Path) -> None:
    env, _ = generate(tmp_path)
    assert stat.S_IMODE(env.stat().st_mode) == 0o600


def test_existing_env_is_never_overwritten(tmp_path: Path) -> None:
    env, _ = generate(tmp_path)
    before = env.read_text()
    _, second = generate(tmp_path)
    assert env.read_text() == before
    assert "kept as it is" in second.stdout


def test_every_variable_is_documented() -> None:
    example = (REPO / ".env.example").read_text()
    compose = (REPO / "docker-compose.yml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", compose)) | set(
        re.findall(r"environment: ([A-Z_]+)", compose)
    )
    documented = set(re.findall(r"^#?([A-Z][A-Z0-9_]*)=", example, re.M))
    assert used <= documented, f"not in .env.example: {sorted(used - documented)}"
