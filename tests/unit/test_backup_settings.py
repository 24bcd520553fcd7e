"""`make backup` (scripts/backup.sh) refuses a retention that is not a whole number of days, naming it,
before it touches Docker or any file."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.unit.compose import REPO


def test_backup_refuses_a_non_numeric_retention(tmp_path: Path) -> None:
    env = {**os.environ, "BACKUP_RETENTION_DAYS": "seven", "BACKUP_DIR": str(tmp_path / "backups")}
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "backup.sh")], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "BACKUP_RETENTION_DAYS must be a whole number of days, not 'seven'" in result.stderr
    assert not (tmp_path / "backups").exists()
