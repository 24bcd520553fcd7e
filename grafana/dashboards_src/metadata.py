"""Metadata database, PgBouncer and Redis: up, connections, waiting clients, transaction age, memory."""

from __future__ import annotations

from .common import BROKER_QUEUE, BROKER_STEPS, METADATA_UID, TAG, links
from .panels import (
    GREEN,
    ORANGE,
    RED,
    Dashboard,
    Json,
    Panel,
    Query,
    stat,
    steps_up,
    timeseries,
    value_text,
)
from .thresholds import PGBOUNCER_CLIENT_WAIT, POSTGRES_CONNECTIONS_USED, POSTGRES_TRANSACTION_AGE

MIB = 1024 * 1024
UP_DOWN = [value_text("0", "down", RED), value_text("1", "up", GREEN)]
UP_STEPS = [(RED, None), (GREEN, 1)]


def up_stat(title: str, metric: str, what: str) -> Panel:
    return stat(
        title,
        f"1 when the exporter can reach {what}, 0 when it cannot; no value at all means the exporter "
        "itself is not scraped (see 'Scrape targets'). Down: `make ps`, then `make logs S=<service>`.",
        [Query(f"max({metric})")],
        "short",
        UP_STEPS,
        width=3,
        mappings=UP_DOWN,
    )


def line_override(name: str, color: str) -> Json:
    """A reference line (a limit) drawn dashed and outside the stack."""
    return {
        "matcher": {"id": "byName", "options": name},
        "properties": [
            {"id": "color", "value": {"fixedColor": color, "mode": "fixed"}},
            {"id": "custom.stacking", "value": {"group": "A", "mode": "none"}},
            {"id": "custom.fillOpacity", "value": 0},
            {"id": "custom.lineStyle", "value": {"dash": [10, 10], "fill": "dash"}},
        ],
    }


def row_summary() -> list[Panel]:
    """Up and headline numbers."""
    return [
        up_stat("Postgres up", "pg_up", "Postgres"),
        up_stat("PgBouncer up", "pgbouncer_up", "PgBouncer"),
        up_stat("Redis up", "redis_up", "Redis"),
        stat(
            "Postgres connections used",
            "Server connections open in Postgres (every database and state) / max_connections. "
            "PgBouncer's pool sizes bound Airflow's share; near 100 % new connections fail: look for "
            "a client connecting straight to Postgres, or lower the PgBouncer pool size.",
            [Query("sum(pg_stat_activity_count) / max(pg_settings_max_connections)")],
            "percentunit",
            steps_up(GREEN, (ORANGE, 0.7), (RED, POSTGRES_CONNECTIONS_USED.value)),
            width=3,
            decimals=0,
        ),
        stat(
            "Longest transaction",
            "Age of the oldest open transaction in Postgres. Long transactions hold locks and keep "
            "vacuum from cleaning up; over 5 min find it in pg_stat_activity (state 'idle in "
            "transaction' is a client that forgot to commit) and end it.",
            [Query("max(pg_stat_activity_max_tx_duration)")],
            "s",
            steps_up(GREEN, (ORANGE, 60), (RED, POSTGRES_TRANSACTION_AGE.value)),
            width=3,
            decimals=0,
        ),
        stat(
            "PgBouncer clients waiting",
            "Client connections waiting in PgBouncer for a free server connection, all pools. Above "
            "0 for long: the pool is too small for the load or queries are slow; see longest client "
            "wait and Postgres transactions.",
            [Query("sum(pgbouncer_pools_client_waiting_connections)")],
            "short",
            steps_up(GREEN, (ORANGE, 1), (RED, 5)),
            width=3,
            decimals=0,
        ),
        stat(
            "Redis memory used",
            "Memory Redis uses. As a Celery broker it holds only waiting messages and a few keys, "
            "so tens of MiB is normal; growth means messages pile up (see the broker queue) or "
            "results are not expiring.",
            [Query("max(redis_memory_used_bytes)")],
            "bytes",
            steps_up(GREEN, (ORANGE, 256 * MIB), (RED, 1024 * MIB)),
            width=3,
        ),
        stat(
            "Broker queue · default",
            "Messages waiting in the Redis list `default` for a Celery worker. Growing: workers are "
            "missing, busy or not consuming; see the Workers dashboard.",
            [Query(BROKER_QUEUE)],
            "short",
            BROKER_STEPS,
            width=3,
            decimals=0,
        ),
    ]


def row_scrape_targets() -> list[Panel]:
    """Scrape targets."""
    return [
        stat(
            "Scrape targets",
            "Every Prometheus scrape job: up when its last scrape succeeded. A job that is down has "
            "no fresh data, so its panels freeze or empty: `make ps` and the exporter's logs.",
            [Query("min by (job) (up)", "{{job}}")],
            "short",
            UP_STEPS,
            width=24,
            height=3,
            mappings=UP_DOWN,
            sparkline=False,
        ),
    ]


def row_postgres() -> list[Panel]:
    """Postgres."""
    return [
        timeseries(
            "Postgres connections by state",
            "Postgres server connections by state (stacked), against max_connections (dashed). Many "
            "'idle in transaction': a client holds transactions open. Active near the limit: slow "
            "queries; see the longest transaction.",
            [
                Query("sum by (state) (pg_stat_activity_count)", "{{state}}"),
                Query("max(pg_settings_max_connections)", "max_connections"),
            ],
            "short",
            width=8,
            stack=True,
            overrides=[line_override("max_connections", RED)],
        ),
        timeseries(
            "Longest open transaction by database",
            "Age of the oldest open transaction per database. Airflow's own transactions are short; "
            "a line that keeps climbing is a stuck session: find it in pg_stat_activity.",
            [Query("max by (datname) (pg_stat_activity_max_tx_duration)", "{{datname}}")],
            "s",
            width=8,
            steps=steps_up(GREEN, (RED, POSTGRES_TRANSACTION_AGE.value)),
        ),
        timeseries(
            "Database size",
            "Size of each database on disk. The metadata database grows with task history and logs "
            "kept in it; steady growth is normal, purge old runs with `airflow db clean`.",
            [Query("max by (datname) (pg_database_size_bytes)", "{{datname}}")],
            "bytes",
            width=8,
        ),
    ]


def row_pgbouncer() -> list[Panel]:
    """PgBouncer."""
    return [
        timeseries(
            "PgBouncer clients: active and waiting",
            "Client connections to PgBouncer per database: active (paired with a server connection) "
            "and waiting (queued for one). Waiting above 0 for long: raise the pool size in "
            "config/pgbouncer.ini if Postgres has room, or find the slow queries.",
            [
                Query("sum by (database) (pgbouncer_pools_client_active_connections)", "{{database}} active"),
                Query(
                    "sum by (database) (pgbouncer_pools_client_waiting_connections)",
                    "{{database}} waiting",
                ),
            ],
            "short",
            width=8,
        ),
        timeseries(
            "PgBouncer server connections: active and idle",
            "Connections PgBouncer holds to Postgres per database: active (running a client's "
            "transaction) and idle (ready for reuse). Active stuck at the pool size while clients "
            "wait: the pool is the bottleneck.",
            [
                Query("sum by (database) (pgbouncer_pools_server_active_connections)", "{{database}} active"),
                Query("sum by (database) (pgbouncer_pools_server_idle_connections)", "{{database}} idle"),
            ],
            "short",
            width=8,
        ),
        timeseries(
            "PgBouncer longest client wait",
            "How long the longest-waiting client of each database has been waiting for a server "
            "connection. Seconds here are seconds added to scheduler loops and task starts.",
            [Query("max by (database) (pgbouncer_pools_client_maxwait_seconds)", "{{database}}")],
            "s",
            width=8,
            steps=steps_up(GREEN, (ORANGE, 1), (RED, PGBOUNCER_CLIENT_WAIT.value)),
        ),
    ]


def row_redis() -> list[Panel]:
    """Redis."""
    return [
        timeseries(
            "Redis memory: used and maxmemory",
            "Memory Redis uses, and its maxmemory (0 = no limit, this stack's default). With a "
            "limit set, a broker near it starts refusing or evicting messages: raise it, or find "
            "why messages are not consumed.",
            [
                Query("max(redis_memory_used_bytes)", "used"),
                Query("max(redis_memory_max_bytes)", "maxmemory (0 = no limit)"),
            ],
            "bytes",
            width=8,
            overrides=[line_override("maxmemory (0 = no limit)", RED)],
        ),
        timeseries(
            "Redis connected clients",
            "Client connections to Redis: schedulers, workers, Flower, the exporter. A worker holds a "
            "few; a steady climb without scaling is a connection leak: restart the growing client.",
            [Query("max(redis_connected_clients)", "clients")],
            "short",
            width=8,
        ),
        timeseries(
            "Broker queue length",
            "Messages waiting in the Redis list `default`. Growing while workers are idle: they "
            "stopped consuming (restart them); while they are busy: add workers.",
            [Query(BROKER_QUEUE, "default")],
            "short",
            width=8,
            steps=BROKER_STEPS,
        ),
    ]


def dashboard() -> Dashboard:
    rows = [row_summary(), row_scrape_targets(), row_postgres(), row_pgbouncer(), row_redis()]
    return Dashboard(
        uid=METADATA_UID,
        title="Airflow · Metadata DB, PgBouncer and Redis",
        folder="Metadata",
        description="The backends every Airflow process depends on: Postgres (through PgBouncer) and the "
        "Redis broker.",
        tags=[TAG, "metadata"],
        rows=rows,
        links=links(),
    )
