"""Thresholds that a dashboard panel and an alert rule share: the panel turns red (or, for a warning
level under a critical one, orange) where the alert fires.

The dashboards take the values from here. The alert rules (prometheus/rules/*.yml) are YAML and cannot
import them, so tests/unit/test_thresholds.py reads each named alert's expression and fails unless it
compares with the same number, and checks that each named panel takes the threshold's colour at it.
To change one: edit the value here and in the alert's `expr` (its description and promtool tests too),
then run `make dashboards` and `make test-unit`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Threshold:
    value: float
    alert: str  # the alert rule in prometheus/rules/ that fires above it
    panels: tuple[str, ...]  # titles of the panels whose step of `color` starts at it
    color: str = "red"


# Failed / (success + failed) task instances. The alert looks at the last hour (and needs 10 tasks),
# the overview stat at the last 24 h; both call 10% failing.
TASK_FAILURE_RATIO = Threshold(
    0.1, "AirflowTaskFailureRatioHigh", ("Task failure ratio · 24 h", "Task failure ratio · 1 h")
)
# The same stat's yellow step, for the dashboard only: some tasks fail.
TASK_FAILURE_RATIO_NOTICE = 0.01

# Postgres connections in use / max_connections.
POSTGRES_CONNECTIONS_USED = Threshold(0.8, "PostgresConnectionsNearLimit", ("Postgres connections used",))

# Age of the oldest open transaction, seconds.
POSTGRES_TRANSACTION_AGE = Threshold(
    300,
    "PostgresLongTransaction",
    ("Longest transaction", "Longest open transaction by database"),
)

# How long the longest-waiting PgBouncer client has waited for a server connection, seconds.
PGBOUNCER_CLIENT_WAIT = Threshold(10, "PgBouncerClientWaitTimeHigh", ("PgBouncer longest client wait",))

# Scheduler lag: p95 of how late scheduled DAG runs started over the last hour, seconds (recording rule
# airflow:dagrun_schedule_delay_seconds:p95_1h, the alerts' input). Warning, then critical.
SCHEDULER_LAG_PANELS = ("Scheduler lag · schedule delay p95, 1 h",)
SCHEDULER_LAG_WARNING = Threshold(10, "AirflowSchedulerLag", SCHEDULER_LAG_PANELS, color="orange")
SCHEDULER_LAG = Threshold(60, "AirflowSchedulerLagCritical", SCHEDULER_LAG_PANELS)

# A container's working set / its memory limit (containers with a limit only).
CONTAINER_MEMORY_OF_LIMIT = Threshold(
    0.9,
    "ContainerMemoryNearLimit",
    ("Memory used of limit · highest container", "Memory used of limit by container"),
)

# Used share of a host filesystem (not tmpfs, overlay or read-only).
HOST_DISK_USED = Threshold(
    0.85, "HostDiskSpaceLow", ("Host disk used · fullest filesystem", "Host disk used by filesystem")
)

# Share of the host's memory not available (1 - MemAvailable / MemTotal).
HOST_MEMORY_USED = Threshold(0.9, "HostMemoryLow", ("Host memory used",))

SHARED = [
    TASK_FAILURE_RATIO,
    POSTGRES_CONNECTIONS_USED,
    POSTGRES_TRANSACTION_AGE,
    PGBOUNCER_CLIENT_WAIT,
    SCHEDULER_LAG_WARNING,
    SCHEDULER_LAG,
    CONTAINER_MEMORY_OF_LIMIT,
    HOST_DISK_USED,
    HOST_MEMORY_USED,
]
