"""Health check of one Celery worker: it answers, and it is really taking tasks from its queue.

Run by Docker as the `airflow-worker` service's healthcheck, inside the worker container (Airflow image),
every 30 s: `python /opt/airflow/scripts/worker_health.py`. Exit 0 healthy, 1 unhealthy; either way one
line on stdout says why (`docker inspect` keeps the last lines under State.Health.Log). Reads the broker
URL from AIRFLOW__CELERY__BROKER_URL. Change the thresholds with the options below (see --help), not here.

Why more than `celery inspect ping` (upstream apache/airflow#63580): after a Redis restart a worker can
reconnect, keep answering control messages, and never take a task again (celery#8030, celery#9054,
kombu#2629: the consumer stays "registered" but the event loop no longer reads its queue). Tasks then
pile up in the `default` list while every probe says healthy.

How it tells, from kombu's Redis transport (kombu 5.7, kombu/transport/redis.py): a worker consumes with
`BRPOP <queue keys> <brpop_timeout>` on a connection of its own (Channel._brpop_start), re-sent on every
event-loop tick while the channel has queues and prefetch credit (MultiChannelPoller.on_poll_start,
brpop_timeout 1 s by default). Without credit (every slot busy) kombu pauses the BRPOP on purpose
(_update_brpop_polling). So Redis' own CLIENT LIST shows a consuming worker as a connection from the
worker's address with cmd=brpop, blocked (flag b) or idle for a second at most. The check:
  1. Redis CLIENT LIST (one cheap command): connections from this container's address (the address Redis
     sees for our own connection, so NAT and several networks do not matter);
  2. a Celery control `ping` to celery@$HOSTNAME (kombu's pidbox, exactly what `celery inspect ping`
     sends; kombu only, not the Airflow app: about 0.3 s of CPU instead of 2 s);
  3. a BRPOP from us, blocked or idle <= --max-idle s: healthy;
  4. otherwise ask the worker (control `stats`, `active`, `reserved`, `active_queues`): no free slot is
     healthy (busy, kombu polls again when a slot frees); queues and free slots but no BRPOP is the
     catatonic state: unhealthy.
Rejected: `inspect active_queues` alone misses kombu#2629 (queues still listed); the age of the oldest
queued message is unknowable (Celery messages carry no publish time); the Celery/Airflow CLI costs ~2 s
of CPU per probe on a 2-core machine.

Docker does not restart an unhealthy container by itself. With --restart-after N, after N consecutive
verdicts that a restart can cure (no ping answer, or not consuming) this script sends SIGTERM to PID 1
(dumb-init --single-child forwards it to Celery: warm shutdown, running tasks finish), the worker exits
and `restart: unless-stopped` starts a fresh one. A broker that cannot be reached is reported but never
counted: restarting a worker cannot fix Redis. State between runs is in --state-file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BROKER_ENV = "AIRFLOW__CELERY__BROKER_URL"
# Celery's defaults for control messages (celery/app/defaults.py: control_exchange, control_queue_*).
CONTROL_EXCHANGE = "celery"
CONTROL_QUEUE_TTL = 300.0
CONTROL_QUEUE_EXPIRES = 10.0


@dataclass(frozen=True)
class RedisClient:
    """One connection in Redis' CLIENT LIST."""

    id: str
    host: str
    cmd: str
    flags: str
    idle: int

    @property
    def blocked(self) -> bool:
        return "b" in self.flags


@dataclass(frozen=True)
class WorkerState:
    """What the worker says about itself over Celery control messages."""

    prefetch_count: int
    active: int
    reserved: int
    queues: tuple[str, ...]

    @property
    def free(self) -> int:
        return self.prefetch_count - self.active - self.reserved


@dataclass(frozen=True)
class Verdict:
    healthy: bool
    reason: str
    # Whether restarting the worker can cure it (not when the broker itself is unreachable).
    restart_helps: bool = False


def host_of(addr: str) -> str:
    """The host part of Redis' `addr` field: `172.18.0.5:43122` or `[fd00::5]:43122` / `fd00::5:43122`."""
    host = addr.rpartition(":")[0]
    return host.strip("[]")


def client_from_fields(fields: Mapping[str, Any]) -> RedisClient:
    return RedisClient(
        id=str(fields.get("id", "")),
        host=host_of(str(fields.get("addr", ""))),
        cmd=str(fields.get("cmd", "")).lower(),
        flags=str(fields.get("flags", "")),
        idle=int(fields.get("idle", 0) or 0),
    )


def parse_client_list(text: str) -> list[RedisClient]:
    """Parse the raw reply of CLIENT LIST: one line per connection of `key=value` pairs."""
    clients = []
    for line in text.splitlines():
        fields = dict(pair.split("=", 1) for pair in line.split() if "=" in pair)
        if fields:
            clients.append(client_from_fields(fields))
    return clients


def decide(
    node: str,
    pinged: bool,
    clients: Iterable[RedisClient],
    own: RedisClient,
    max_idle: int,
    worker_state: Callable[[], WorkerState | None],
) -> Verdict:
    """The verdict from the ping, Redis' connection list and, only when needed, the worker's own state.

    `own` is our own connection's entry: its host is this container's address as Redis sees it.
    """
    if not pinged:
        return Verdict(False, f"{node} did not answer a ping over the broker", restart_helps=True)
    polling = [c for c in clients if c.host == own.host and c.id != own.id and c.cmd == "brpop"]
    live = [c for c in polling if c.blocked or c.idle <= max_idle]
    if live:
        return Verdict(True, f"{node} answers and waits on its queue (BRPOP from {own.host})")
    state = worker_state()
    if state is None:
        return Verdict(
            False,
            f"{node} answered a ping but not a request for its state (stats/active)",
            restart_helps=True,
        )
    last = f"last BRPOP {min(c.idle for c in polling)} s ago" if polling else "no BRPOP connection"
    if not state.queues:
        return Verdict(
            False, f"{node} consumes no queue at all ({last}); upstream #63580", restart_helps=True
        )
    if state.free <= 0:
        return Verdict(
            True,
            f"{node} is busy: {state.active} running + {state.reserved} reserved of "
            f"{state.prefetch_count} slots ({last}; kombu polls again when a slot frees)",
        )
    return Verdict(
        False,
        f"{node} answers but does not consume {','.join(state.queues)}: {last} from {own.host} while "
        f"{state.free} of {state.prefetch_count} slots are free; upstream #63580",
        restart_helps=True,
    )


# --- restart bookkeeping ------------------------------------------------------------------------------
def load_state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"failures": 0, "terminated": False}
    return state if isinstance(state, dict) else {"failures": 0, "terminated": False}


def process_start(pid: int) -> str:
    """When the process started (field 22 of /proc/PID/stat): a restarted container has a new PID 1."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rpartition(")")[2].split()[19]


def next_state(state: Mapping[str, Any], verdict: Verdict, restart_after: int) -> tuple[dict[str, Any], bool]:
    """The state to store after this verdict, and whether to stop the worker now (once only)."""
    if verdict.healthy:
        return {"failures": 0, "terminated": False}, False
    failures = int(state.get("failures", 0)) + (1 if verdict.restart_helps else 0)
    terminated = bool(state.get("terminated", False))
    stop = bool(restart_after) and verdict.restart_helps and failures >= restart_after and not terminated
    return {"failures": failures, "terminated": terminated or stop}, stop


def stop_worker(pid: int, reason: str) -> None:
    message = f"worker_health: stopping the worker (SIGTERM to pid {pid}, warm shutdown): {reason}\n"
    # Also into the container's own log, where `docker compose logs` shows it.
    with contextlib.suppress(OSError), open(f"/proc/{pid}/fd/2", "a") as log:
        log.write(message)
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError as error:
        print(f"could not stop pid {pid}: {error}")


# --- talking to Redis and to the worker ------------------------------------------------------------------
def redis_view(broker_url: str, timeout: float) -> tuple[list[RedisClient], RedisClient]:
    import redis

    client = redis.Redis.from_url(broker_url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        own_id = str(client.client_id())
        clients = [client_from_fields(fields) for fields in client.client_list()]
    finally:
        client.close()
    own = next((c for c in clients if c.id == own_id), None)
    if own is None:
        raise RuntimeError(f"own connection (id {own_id}) missing from CLIENT LIST")
    return clients, own


class Control:
    """Celery control messages to one node, with kombu alone (the same pidbox `celery inspect` uses)."""

    def __init__(self, broker_url: str, node: str, timeout: float) -> None:
        from kombu import Connection
        from kombu.pidbox import Mailbox

        self.node = node
        self.timeout = timeout
        self.connection = Connection(broker_url, connect_timeout=timeout)
        self.mailbox = Mailbox(
            CONTROL_EXCHANGE,
            type="fanout",
            accept=["json"],
            serializer="json",
            queue_exclusive=False,
            reply_queue_ttl=CONTROL_QUEUE_TTL,
            reply_queue_expires=CONTROL_QUEUE_EXPIRES,
        )(self.connection)

    def call(self, command: str) -> Any:
        replies = self.mailbox._broadcast(
            command, {}, destination=[self.node], reply=True, timeout=self.timeout
        )
        for reply in replies or []:
            if self.node in reply:
                return reply[self.node]
        return None

    def ping(self) -> bool:
        return self.call("ping") == {"ok": "pong"}

    def state(self) -> WorkerState | None:
        replies = []
        for command in ("stats", "active", "reserved", "active_queues"):
            replies.append(self.call(command))
            if replies[-1] is None:  # one missing answer is enough; don't wait out every timeout
                return None
        stats, active, reserved, queues = replies
        return WorkerState(
            prefetch_count=int(stats.get("prefetch_count") or 0),
            active=len(active),
            reserved=len(reserved),
            queues=tuple(q["name"] for q in queues),
        )

    def close(self) -> None:
        self.connection.release()


def check(broker_url: str, node: str, max_idle: int, timeout: float) -> Verdict:
    try:
        # CLIENT LIST first: our own control calls below open a BRPOP of their own for the replies.
        clients, own = redis_view(broker_url, timeout)
        control = Control(broker_url, node, timeout)
    except Exception as error:  # any failure to reach Redis is the same verdict
        return Verdict(False, f"cannot reach the broker: {type(error).__name__}: {error}")
    try:
        return decide(node, control.ping(), clients, own, max_idle, control.state)
    except Exception as error:
        return Verdict(False, f"broker error while checking {node}: {type(error).__name__}: {error}")
    finally:
        control.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--node", default=f"celery@{socket.gethostname()}", help="default: celery@$HOSTNAME")
    parser.add_argument(
        "--max-idle", type=int, default=10, help="seconds a BRPOP connection may stay idle (default 10)"
    )
    parser.add_argument("--timeout", type=float, default=5, help="per broker call, seconds (default 5)")
    parser.add_argument(
        "--restart-after",
        type=int,
        default=0,
        help="stop the worker after this many consecutive curable failures (default 0: never)",
    )
    parser.add_argument("--pid", type=int, default=1, help="process to SIGTERM (default 1: dumb-init)")
    parser.add_argument("--state-file", type=Path, default=Path("/tmp/airflow-worker-health.json"))
    args = parser.parse_args(argv)

    broker_url = os.environ.get(BROKER_ENV, "")
    if not broker_url:
        print(f"unhealthy: {BROKER_ENV} is not set")
        return 1
    verdict = check(broker_url, args.node, args.max_idle, args.timeout)
    previous, started = load_state(args.state_file), process_start(args.pid)
    if previous.get("process") != started:  # the state file survives a container restart; the count must not
        previous = {"failures": 0, "terminated": False}
    state, stop = next_state(previous, verdict, args.restart_after)
    state["process"] = started
    with contextlib.suppress(OSError):
        args.state_file.write_text(json.dumps(state))
    print(("healthy: " if verdict.healthy else "unhealthy: ") + verdict.reason)
    if stop:
        stop_worker(args.pid, verdict.reason)
    return 0 if verdict.healthy else 1


if __name__ == "__main__":
    sys.exit(main())
