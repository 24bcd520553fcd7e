"""`make backup` (scripts/backup.sh) and the db-backup service share one implementation
(scripts/db-backup.sh): a retention or interval that is not a whole number of at least 1 is refused,
naming the variable, before Docker or any file is touched."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.unit.compose import REPO

SCRIPT = REPO / "scripts" / "db-backup.sh"


@pytest.mark.parametrize("retention", ["seven", "0", "-1", "07"])
def test_backup_refuses_a_bad_retention(tmp_path: Path, retention: str) -> None:
    env = {**os.environ, "BACKUP_RETENTION_DAYS": retention, "BACKUP_DIR": str(tmp_path / "backups")}
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "backup.sh")], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert (
        f"BACKUP_RETENTION_DAYS must be a whole number of at least 1 (set it in .env), not '{retention}'"
        in result.stderr
    )
    assert not (tmp_path / "backups").exists()


@pytest.mark.parametrize(
    ("name", "value", "mode"),
    [
        ("BACKUP_INTERVAL_HOURS", "abc", "loop"),
        ("BACKUP_INTERVAL_HOURS", "0", "loop"),
        ("BACKUP_RETENTION_DAYS", "0", "loop"),
        ("BACKUP_RETENTION_DAYS", "7d", "once"),
    ],
)
def test_the_service_refuses_a_bad_setting_before_any_work(name: str, value: str, mode: str) -> None:
    """Run as the service runs it (settings from compose's environment). A bad value stops it at once
    (sh arithmetic would read a word as 0 and loop without pause)."""
    env = {**os.environ, "BACKUP_INTERVAL_HOURS": "24", "BACKUP_RETENTION_DAYS": "7", name: value}
    result = subprocess.run(["sh", str(SCRIPT), mode], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 1, result
    assert result.stderr.startswith(f"db-backup: ERROR: {name} must be a whole number of at least 1"), (
        result.stderr
    )


def test_the_once_mode_ignores_the_interval() -> None:
    env = {**os.environ, "BACKUP_INTERVAL_HOURS": "abc", "BACKUP_RETENTION_DAYS": "7"}
    result = subprocess.run(
        ["sh", str(SCRIPT), "check"], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_an_unknown_mode_is_refused() -> None:
    result = subprocess.run(["sh", str(SCRIPT), "twice"], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "unknown mode 'twice' (loop, once or check)" in result.stderr
