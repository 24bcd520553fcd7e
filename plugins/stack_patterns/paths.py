"""Finds files in the stack's config/ directory from a DAG file, wherever the repository is mounted.

In the containers dags/, plugins/ and config/ are siblings under /opt/airflow; in a checkout they are
siblings at the repository root. An environment variable can point somewhere else (tests use it).
"""

from __future__ import annotations

import os
from pathlib import Path


def config_file(name: str, *, anchor: str | Path, env_var: str | None = None) -> Path:
    """Return the path of config/<name> next to the folder holding `anchor` (a DAG file's __file__).

    Tried in order: the file named by `env_var` if that variable is set and not empty; config/ next to
    the anchor's folder, first as given, then with symlinks resolved; $AIRFLOW_HOME/config.
    Raises FileNotFoundError naming every path tried, which the dag-processor shows as an import error.
    """
    if env_var and (override := os.environ.get(env_var, "").strip()):
        path = Path(override)
        if not path.is_file():
            raise FileNotFoundError(f"{env_var}={override!r}: no such file")
        return path
    anchor_path = Path(anchor)
    candidates = [
        anchor_path.parent.parent / "config" / name,
        anchor_path.resolve().parent.parent / "config" / name,
    ]
    if airflow_home := os.environ.get("AIRFLOW_HOME"):
        candidates.append(Path(airflow_home) / "config" / name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = ", ".join(str(c) for c in dict.fromkeys(candidates))
    raise FileNotFoundError(f"config file {name!r} not found; tried: {tried}")
