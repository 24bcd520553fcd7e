"""Refuse a .env whose sizes, ports, addresses or URLs cannot work, before anything starts.

Run by `make up` and `make scale` (and by hand: `python3 scripts/check_env.py [.env]`). Exit 0 when
every value it knows is well-formed, 1 with one line per problem naming the variable, its value and
what it must be. Compose itself names a missing or empty secret; Airflow's secrets are checked for
shape by airflow-init. Values left unset or commented out fall back to the compose defaults, which
are valid. Change: add a variable to KINDS when .env.example gains a size, port, address or URL.
Standard library only (and stackkit.envfile, which is too): it runs on the host before any image or
virtualenv exists.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from collections.abc import Callable
from pathlib import Path

# Run as `python3 scripts/<name>.py` too: the checkout's root, where stackkit is, goes on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stackkit import envfile


def whole_number(value: str) -> str | None:
    return None if re.fullmatch(r"[1-9][0-9]*", value) else "a whole number of at least 1"


def port(value: str) -> str | None:
    ok = re.fullmatch(r"[0-9]+", value) and 1 <= int(value) <= 65535
    return None if ok else "a port number (1-65535)"


def address(value: str) -> str | None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return "an IP address of this host (127.0.0.1, 0.0.0.0 or one interface's address)"
    return None


def advertised_address(value: str) -> str | None:
    """An address others connect to (a worker host's, for the main host): 0.0.0.0 and :: are none."""
    try:
        usable = not ipaddress.ip_address(value).is_unspecified
    except ValueError:
        usable = False
    return None if usable else "this host's IP address that the main host reaches (not 0.0.0.0 or ::)"


def compose_duration(value: str) -> str | None:
    """Compose reads durations with Go's time.ParseDuration."""
    ok = re.fullmatch(r"([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+", value)
    return None if ok else "a duration such as 90s, 10m or 1h30m"


def public_url(value: str) -> str | None:
    """Airflow's [api] base_url: scheme and host (and port) only. A path would move every route of the
    api-server under it, and the health checks, workers and tests of this stack expect the root."""
    ok = re.fullmatch(r"https?://[^/\s?#]+/?", value)
    return None if ok else "an http(s) URL of scheme, host and port only, such as https://airflow.example.com"


def prometheus_duration(value: str) -> str | None:
    ok = re.fullmatch(r"([0-9]+(ms|s|m|h|d|w|y))+", value)
    return None if ok else "a Prometheus duration such as 15d, 12h or 2w"


KINDS: dict[str, Callable[[str], str | None]] = {
    "HOST_BIND_ADDRESS": address,
    "WORKER_BIND_ADDRESS": address,
    "WORKER_ADVERTISE_ADDRESS": advertised_address,
    "AIRFLOW_API_PORT": port,
    "AIRFLOW_PUBLIC_URL": public_url,
    "FLOWER_PORT": port,
    "GRAFANA_PORT": port,
    "REDIS_PUBLISHED_PORT": port,
    "PGBOUNCER_PUBLISHED_PORT": port,
    "STATSD_PUBLISHED_PORT": port,
    "WORKER_LOG_PUBLISHED_PORT": port,
    "AIRFLOW_WORKER_STOP_GRACE_PERIOD": compose_duration,
    "PROMETHEUS_RETENTION": prometheus_duration,
    "BACKUP_RETENTION_DAYS": whole_number,
    "BACKUP_INTERVAL_HOURS": whole_number,
}


def problems(values: dict[str, str]) -> list[str]:
    found = []
    for key, check in KINDS.items():
        value = values.get(key, "")
        if value == "":
            continue  # unset: the compose default applies
        expected = check(value)
        if expected:
            found.append(f"{key}={value!r} in .env is not {expected}")
    return found + public_url_needed(values)


def public_url_needed(values: dict[str, str]) -> list[str]:
    """Without AIRFLOW_PUBLIC_URL, docker-compose.yml builds the UI's URL from HOST_BIND_ADDRESS and
    AIRFLOW_API_PORT; 0.0.0.0, :: and IPv6 addresses make no usable URL that way."""
    bind = values.get("HOST_BIND_ADDRESS", "")
    if values.get("AIRFLOW_PUBLIC_URL", "") or not bind or address(bind):
        return []  # set; unset (127.0.0.1); or malformed, which is reported already
    parsed = ipaddress.ip_address(bind)
    if parsed.version == 4 and not parsed.is_unspecified:
        return []
    return [
        f"HOST_BIND_ADDRESS={bind!r} in .env needs AIRFLOW_PUBLIC_URL: the address users open the Airflow "
        "UI at (links in alerts and Grafana point there), e.g. https://airflow.example.com"
    ]


def main(argv: list[str]) -> int:
    path = Path(argv[1] if len(argv) > 1 else ".env")
    try:
        text = path.read_text()
    except OSError as error:
        print(f"cannot read {path}: {error.strerror} (make env creates it)", file=sys.stderr)
        return 1
    found = problems(envfile.parse(text))
    for line in found:
        print(f"{path}: {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
