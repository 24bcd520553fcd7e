"""Reads and validates config/dag_factory.yml, the input of dags/example_dag_factory.py.

The file holds `pipelines:`, a list of entries; each one becomes a DAG `factory_<name>`:

    pipelines:
      - name: orders                 # required: lower-case identifier, unique
        description: Loads orders    # required
        owner: sales-data            # required
        tables: [customers, orders]  # required: one load task per table
        schedule: null               # optional: cron or preset; null = manual runs only (default)
        retries: 1                   # optional: 0-5 (default 1)
        tags: [sales]                # optional: added to ["example", "factory"]
        sleep_seconds: 1             # optional: simulated work per table, 0-60 (default 1)

Every entry is checked before any DAG is built, and all problems are reported at once in one
DagFactoryConfigError naming each bad entry (number and name). Raised at import, it becomes the DAG
file's import error in the UI and API; no half-built set of DAGs is published from a broken file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_REQUIRED = ("name", "description", "owner", "tables")
_OPTIONAL = ("schedule", "retries", "tags", "sleep_seconds")


class DagFactoryConfigError(ValueError):
    """config/dag_factory.yml is not usable; the message names the file and every bad entry."""


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    description: str
    owner: str
    tables: tuple[str, ...]
    schedule: str | None = None
    retries: int = 1
    tags: tuple[str, ...] = field(default=())
    sleep_seconds: float = 1.0

    @property
    def dag_id(self) -> str:
        return f"factory_{self.name}"


def _string(entry: dict[str, Any], key: str) -> str:
    value = entry[key]
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key!r} must be a non-empty string, got {value!r}")
    return value.strip()


def _string_list(entry: dict[str, Any], key: str, *, identifiers: bool) -> tuple[str, ...]:
    value = entry.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{key!r} must be a list of strings, got {value!r}")
    if identifiers:
        if not value:
            raise ValueError(f"{key!r} must not be empty")
        if bad := [v for v in value if not _NAME.match(v)]:
            raise ValueError(f"{key!r} entries must be lower-case identifiers: {bad}")
        if len(set(value)) != len(value):
            raise ValueError(f"{key!r} has duplicates: {value}")
    return tuple(value)


def parse_entry(entry: object) -> PipelineSpec:
    """One YAML entry as a PipelineSpec; ValueError saying what is wrong."""
    if not isinstance(entry, dict):
        raise ValueError(f"must be a mapping, got {type(entry).__name__}")
    missing = [k for k in _REQUIRED if k not in entry]
    unknown = sorted(str(k) for k in set(entry) - set(_REQUIRED) - set(_OPTIONAL))
    if missing or unknown:
        problems = [f"missing key(s): {', '.join(missing)}"] if missing else []
        if unknown:
            problems.append(
                f"unknown key(s): {', '.join(unknown)} (allowed: {', '.join(_REQUIRED + _OPTIONAL)})"
            )
        raise ValueError("; ".join(problems))
    name = _string(entry, "name")
    if not _NAME.match(name):
        raise ValueError(f"'name' must be a lower-case identifier, got {name!r}")
    schedule = entry.get("schedule")
    if schedule is not None and (not isinstance(schedule, str) or not schedule.strip()):
        raise ValueError(f"'schedule' must be null or a cron expression or preset, got {schedule!r}")
    retries = entry.get("retries", 1)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 5:
        raise ValueError(f"'retries' must be an integer from 0 to 5, got {retries!r}")
    sleep_seconds = entry.get("sleep_seconds", 1.0)
    if (
        isinstance(sleep_seconds, bool)
        or not isinstance(sleep_seconds, int | float)
        or not 0 <= sleep_seconds <= 60
    ):
        raise ValueError(f"'sleep_seconds' must be a number from 0 to 60, got {sleep_seconds!r}")
    return PipelineSpec(
        name=name,
        description=_string(entry, "description"),
        owner=_string(entry, "owner"),
        tables=_string_list(entry, "tables", identifiers=True),
        schedule=schedule.strip() if schedule else None,
        retries=retries,
        tags=_string_list(entry, "tags", identifiers=False),
        sleep_seconds=float(sleep_seconds),
    )


def entry_label(index: int, entry: object) -> str:
    name = entry.get("name") if isinstance(entry, dict) else None
    return f"entry #{index}" + (f" ({name!r})" if isinstance(name, str) and name else "")


def raise_for_errors(path: Path, errors: list[str]) -> None:
    """One DagFactoryConfigError listing every bad entry, if there are any."""
    if errors:
        raise DagFactoryConfigError(
            f"{path}: {len(errors)} bad entr{'y' if len(errors) == 1 else 'ies'}:\n"
            + "\n".join(f"  - {e}" for e in errors)
        )


def load_pipeline_specs(path: Path) -> list[PipelineSpec]:
    """All entries of the file, validated; DagFactoryConfigError listing every bad entry otherwise."""
    import yaml

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise DagFactoryConfigError(f"{path}: not valid YAML: {error}") from error
    pipelines = document.get("pipelines") if isinstance(document, dict) else None
    if not isinstance(pipelines, list) or not pipelines:
        raise DagFactoryConfigError(f"{path}: expected a non-empty list under 'pipelines:'")
    specs: list[PipelineSpec] = []
    errors: list[str] = []
    for index, entry in enumerate(pipelines, start=1):
        try:
            spec = parse_entry(entry)
        except ValueError as error:
            errors.append(f"{entry_label(index, entry)}: {error}")
            continue
        if any(s.name == spec.name for s in specs):
            errors.append(f"{entry_label(index, entry)}: duplicate name (DAG ids must be unique)")
            continue
        specs.append(spec)
    raise_for_errors(path, errors)
    return specs
