"""The one exception the benchmark raises on purpose: its message is what the user reads."""

from __future__ import annotations


class BenchError(Exception):
    """A step of the benchmark failed; the message says which and why."""
