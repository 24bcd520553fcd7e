"""The exception the benchmark raises on purpose: its message is what the user reads. The stack kit's
own (a compose command, psql or the REST API failed) is its base class, read the same way."""

from __future__ import annotations

from stackkit.errors import StackError


class BenchError(StackError):
    """A step of the benchmark failed; the message says which and why."""
