"""The one exception the kit raises on purpose: its message says what failed and why."""

from __future__ import annotations


class StackError(RuntimeError):
    """A compose command, a command in a container or a request to the stack failed."""
