"""SQL in the stack's Postgres through psql in its container: values quoted as literals, never pasted
into a query as they come, and psql's tab-separated output read back as rows."""

from __future__ import annotations

# standard_conforming_strings is on (Postgres 9.1+): in a literal only ' is special.
QUOTE = "'"


def literal(value: str | int | float) -> str:
    """A SQL literal of VALUE: a number as it is, a string quoted."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value)
    if not isinstance(value, str):
        raise TypeError(f"no SQL literal for {type(value).__name__}")
    if "\x00" in value:
        raise ValueError("NUL in a SQL literal")
    return QUOTE + value.replace(QUOTE, QUOTE * 2) + QUOTE


def bind(query: str, **params: str | int | float) -> str:
    """QUERY with each {name} replaced by the literal of PARAMS[name]."""
    return query.format(**{name: literal(value) for name, value in params.items()})


def psql(role: str, database: str, query: str) -> list[str]:
    """psql over the container's local socket: no psqlrc, stop at the first error, tab-separated rows
    without a header or footer."""
    return [
        "psql", f"--username={role}", f"--dbname={database}", "--no-psqlrc", "--set=ON_ERROR_STOP=1",
        "--tuples-only", "--no-align", "--field-separator=\t", "--command", query,
    ]  # fmt: skip


def rows(output: str) -> list[list[str]]:
    """psql's unaligned output as rows of strings (NULL = '')."""
    return [line.split("\t") for line in output.splitlines() if line]
