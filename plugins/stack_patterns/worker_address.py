"""Where the main host's api-server reads the task logs of a worker on another host (docs/remote-workers.md).

Used by docker-compose.worker.yml only, in two ways:
- its workers' `[core] hostname_callable` (AIRFLOW__CORE__HOSTNAME_CALLABLE=
  stack_patterns.worker_address.advertised_hostname): the hostname each task instance records;
- `python -m stack_patterns.worker_address`, the command of its worker-log-server: checks the two variables
  below, then runs Airflow's log server on the host's log volume, which all the host's workers write.

Why the hostname holds a port and a path. Airflow 3.3.2's api-server fetches the log of a task that is not
on its own log volume from urljoin(f"http://{ti.hostname}:{[logging] worker_log_server_port}/log/", path)
(airflow/utils/log/file_task_handler.py, `_get_log_retrieval_url`): one port for every worker. With the
hostname `10.8.0.2:18793/log/#<container>` that base is `http://10.8.0.2:18793/log/#<container>:8793/log/`,
of which urljoin keeps the host, the port and the path /log/ and drops the fragment: the request goes to
http://10.8.0.2:18793/log/<path>, the port this worker host publishes, whatever the api-server's own
setting. The fragment names the worker container, so every replica records a hostname of its own (the
Execution API matches a task's heartbeats on hostname and pid) and the Host column says which one ran it.
tests/unit/test_worker_address.py checks this against the installed Airflow.

WORKER_ADVERTISE_ADDRESS (required): this worker host's IP address as the main host reaches it; also where
compose publishes the log server. WORKER_LOG_PUBLISHED_PORT (default 8793): the published port.
"""

from __future__ import annotations

import ipaddress
import os
import socket

ADDRESS_ENV = "WORKER_ADVERTISE_ADDRESS"
PORT_ENV = "WORKER_LOG_PUBLISHED_PORT"
DEFAULT_PORT = 8793


def log_server_url_base() -> str:
    """`address:port/log/` of this worker host's log server, from the environment; ValueError naming the
    variable when it cannot work."""
    value = os.environ.get(ADDRESS_ENV, "").strip()
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(
            f"{ADDRESS_ENV}={value!r} is not an IP address (IPv6 without brackets): set it to this worker "
            "host's address that the main host reaches (docs/remote-workers.md)"
        ) from None
    if address.is_unspecified:
        raise ValueError(
            f"{ADDRESS_ENV}={value!r} is no address to connect to: set it to this worker host's address "
            "that the main host reaches (docs/remote-workers.md)"
        )
    port_text = os.environ.get(PORT_ENV, "").strip() or str(DEFAULT_PORT)
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{PORT_ENV}={port_text!r} is not a TCP port number (1-65535)")
    host = f"[{address}]" if address.version == 6 else str(address)
    return f"{host}:{int(port_text)}/log/"


def advertised_hostname() -> str:
    """The `[core] hostname_callable` of remote workers: `address:port/log/#<this container's hostname>`."""
    return f"{log_server_url_base()}#{socket.gethostname()}"


def main() -> None:
    """worker-log-server: refuse unusable variables at start, then serve this host's task logs."""
    base = log_server_url_base()
    print(f"Tasks run here record hostnames {base}#<worker container>; serving their logs", flush=True)
    from airflow.utils.serve_logs import serve_logs

    serve_logs()


if __name__ == "__main__":
    main()
