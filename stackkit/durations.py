"""Prometheus and Alertmanager durations ("15s", "1m30s", "2h") in seconds: one parser for the test
stack's scaled rules and the unit tests that compare configured intervals."""

from __future__ import annotations

import re

UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
DURATION = re.compile(r"(?:\d+(?:ms|s|m|h|d|w|y))+")


def seconds(duration: str) -> float:
    """Raises ValueError naming the text when it is not a duration."""
    if not DURATION.fullmatch(duration):
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    return sum(int(n) * UNITS[unit] for n, unit in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", duration))
