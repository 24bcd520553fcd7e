"""Env files as Compose reads them, and the private ones the tests and the benchmark write.

Standard library only: `make up`'s helper scripts import it before any virtualenv exists.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def parse(text: str) -> dict[str, str]:
    """KEY=value lines as Compose reads them: comments and blank lines skipped, white space around
    keys and values stripped, one pair of matching quotes around a value removed."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def read(path: Path) -> dict[str, str]:
    return parse(path.read_text())


def key_of(line: str) -> str | None:
    """The key a line assigns, None for a comment, a blank line or anything else."""
    stripped = line.strip()
    if not stripped or stripped.startswith("#") or "=" not in stripped:
        return None
    return stripped.split("=", 1)[0].strip()


def with_values(text: str, values: Mapping[str, str]) -> str:
    """TEXT with each key of VALUES set: in place of its line where one assigns it, else appended."""
    lines, seen = [], set()
    for line in text.splitlines():
        key = key_of(line)
        if key in values:
            line = f"{key}={values[key]}"
            seen.add(key)
        lines.append(line)
    lines += [f"{key}={value}" for key, value in values.items() if key not in seen]
    return "\n".join(lines) + "\n"


def render(values: Mapping[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in values.items())


def write_private(path: Path, text: str) -> Path:
    """Write an env file readable by its owner only (mode 600 from the start: it holds secrets)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    return path
