"""Task capacity that follows the live Celery workers: the `worker-capacity` service of the stack.

Run by docker-compose.yml as a long-running service in the Airflow image:
`python /opt/airflow/scripts/worker_capacity.py`. Every --interval seconds it asks Celery which workers
are alive, with their pool size (`stats`: pool.max-concurrency) and the queues they consume
(`active_queues`), and sizes one Airflow pool per queue to the summed slots of the workers consuming it:
`default_pool` for the default queue ([operators] default_queue), `<queue>_workers` for any other
(tasks sent to that queue use it with pool="<queue>_workers"). The pool is then the binding cap on tasks
queued or running, so no more tasks are sent to the broker than live workers can start, and none waits
there long enough to reach [scheduler] task_queued_timeout.

- A worker that joins raises the pool at once; one that stops answering lowers it only after
  --confirm seconds without an answer (a busy worker can miss one reply).
- When the broker cannot be reached, nothing changes: the last sizes stay.
- WORKER_SLOTS_CEILING (optional, from .env) caps every pool it sets.
- Every change is logged with its reason (`worker celery@abc joined: default_pool 16 -> 32`).
- Prometheus metrics on --metrics-port: airflow_capacity_target_slots{queue,pool},
  airflow_capacity_live_workers{queue}, airflow_capacity_pool_slots{pool}, airflow_capacity_broker_up, and
  airflow_ui_info{url} = 1: the UI's address ([api] base_url, from AIRFLOW_PUBLIC_URL in .env), which the
  Grafana dashboards read to link to DAG pages (dashboard JSON cannot read the environment).

Change the interval and confirmation delay with the options below (see --help), the ceiling in .env.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

BROKER_ENV = "AIRFLOW__CELERY__BROKER_URL"
CEILING_ENV = "WORKER_SLOTS_CEILING"
DEFAULT_POOL = "default_pool"

log = logging.getLogger("worker-capacity")


@dataclass(frozen=True)
class Worker:
    """One live worker as Celery remote control describes it."""

    name: str
    slots: int
    queues: frozenset[str]


def pool_for(queue: str, default_queue: str) -> str:
    return DEFAULT_POOL if queue == default_queue else f"{queue}_workers"


def workers_from_replies(stats: Mapping[str, dict], queues: Mapping[str, list[dict]]) -> dict[str, Worker]:
    """Workers that answered both questions; the pool size of a prefork/thread pool is max-concurrency."""
    found = {}
    for name, reply in stats.items():
        slots = reply.get("pool", {}).get("max-concurrency")
        if not isinstance(slots, int) or name not in queues:
            continue
        found[name] = Worker(name, slots, frozenset(q["name"] for q in queues[name]))
    return found


@dataclass
class Capacity:
    """Which (worker, queue) pairs count. A new pair, or more slots, counts at once; a pair that stopped
    answering (the worker gone, or it stopped consuming that queue) only after `confirm_seconds`."""

    confirm_seconds: float
    known: dict[tuple[str, str], int] = field(default_factory=dict)  # (worker, queue) -> slots
    last_seen: dict[tuple[str, str], float] = field(default_factory=dict)

    def observe(self, answered: Mapping[str, Worker], now: float) -> tuple[list[str], list[str]]:
        """Record one round of answers; return what joined and what is confirmed gone, as log phrases."""
        joined, gone = [], []
        for worker in answered.values():
            for queue in worker.queues:
                key = (worker.name, queue)
                before = self.known.get(key)
                if before is None or worker.slots > before:
                    joined.append(f"worker {worker.name} joined queue {queue} ({worker.slots} slots)")
                    self.known[key] = worker.slots
                self.last_seen[key] = now
        for key, seen in list(self.last_seen.items()):
            if now - seen > self.confirm_seconds:
                gone.append(f"worker {key[0]} left queue {key[1]} ({self.known[key]} slots)")
                del self.known[key], self.last_seen[key]
        return joined, gone

    def slots_by_queue(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for (_, queue), slots in self.known.items():
            total[queue] = total.get(queue, 0) + slots
        return total

    def workers_by_queue(self) -> dict[str, int]:
        count: dict[str, int] = {}
        for _, queue in self.known:
            count[queue] = count.get(queue, 0) + 1
        return count


def targets(slots_by_queue: Mapping[str, int], queues: set[str], ceiling: int | None) -> dict[str, int]:
    """Slots per queue, every queue ever seen included (0 once its workers are gone), under the ceiling."""
    return {
        q: min(slots_by_queue.get(q, 0), ceiling) if ceiling else slots_by_queue.get(q, 0) for q in queues
    }


def parse_ceiling(raw: str | None) -> int | None:
    if raw is None or raw.strip() == "":
        return None
    if not raw.strip().isdigit() or int(raw) < 1:
        raise SystemExit(
            f"worker-capacity: {CEILING_ENV}={raw!r} must be a whole number of slots >= 1, or empty"
        )
    return int(raw)


def reason(joined: list[str], gone: list[str]) -> str:
    return "; ".join(joined + gone) or "first sizing"


class Controller:
    """The loop: ask Celery, compute, write the pools that differ. Airflow and Celery are imported here."""

    def __init__(self, args: argparse.Namespace) -> None:
        from airflow.configuration import conf
        from celery import Celery
        from prometheus_client import Gauge

        self.args = args
        self.ceiling = parse_ceiling(os.environ.get(CEILING_ENV))
        self.default_queue = conf.get("operators", "default_queue")
        self.app = Celery("worker-capacity", broker=os.environ[BROKER_ENV])
        self.capacity = Capacity(confirm_seconds=args.confirm)
        self.queues_seen: set[str] = {self.default_queue}
        self.target = Gauge(
            "airflow_capacity_target_slots", "Summed slots of live workers", ["queue", "pool"]
        )
        self.live = Gauge("airflow_capacity_live_workers", "Live Celery workers consuming a queue", ["queue"])
        self.pool_slots = Gauge("airflow_capacity_pool_slots", "Slots the pool was last set to", ["pool"])
        self.broker_up = Gauge(
            "airflow_capacity_broker_up", "1 when the last Celery inspect reached the broker"
        )
        export_ui_url(conf.get("api", "base_url", fallback=None))

    def ask_workers(self) -> dict[str, Worker]:
        inspect = self.app.control.inspect(timeout=self.args.reply_timeout)
        return workers_from_replies(inspect.stats() or {}, inspect.active_queues() or {})

    def pool_sizes(self) -> dict[str, int]:
        from airflow.models.pool import Pool
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            return {p.pool: p.slots for p in session.scalars(select(Pool))}

    def set_pool(self, name: str, slots: int, why: str, before: int | None) -> None:
        from airflow.models.pool import Pool
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            pool = session.scalar(select(Pool).where(Pool.pool == name))
            if pool is None:
                description = f"Slots of the live Celery workers on queue {name.removesuffix('_workers')}"
                session.add(Pool(pool=name, slots=slots, description=description, include_deferred=False))
            else:
                pool.slots = slots
        log.info("%s: %s %s -> %d", why, name, "new" if before is None else before, slots)

    def round(self) -> None:
        try:
            answered = self.ask_workers()
        except Exception as error:  # the broker (kombu/redis) or the connection: change nothing
            self.broker_up.set(0)
            log.warning("cannot reach the broker (%s): pools left as they are", error)
            return
        self.broker_up.set(1)
        joined, gone = self.capacity.observe(answered, time.monotonic())
        self.queues_seen |= {queue for _, queue in self.capacity.known}
        wanted = targets(self.capacity.slots_by_queue(), self.queues_seen, self.ceiling)
        current = self.pool_sizes()
        why = reason(joined, gone)
        for queue, slots in sorted(wanted.items()):
            pool = pool_for(queue, self.default_queue)
            self.target.labels(queue=queue, pool=pool).set(slots)
            if current.get(pool) != slots:
                self.set_pool(pool, slots, why, current.get(pool))
            self.pool_slots.labels(pool=pool).set(slots)
        for queue in self.queues_seen:
            self.live.labels(queue=queue).set(self.capacity.workers_by_queue().get(queue, 0))


def ui_url(base_url: str | None) -> str:
    """The UI's address as links use it: [api] base_url without its trailing slash, or Airflow's own
    fallback for links (models/taskinstance.py) when it is unset."""
    return (base_url or "http://localhost:8080").rstrip("/")


def export_ui_url(base_url: str | None, registry: Any = None) -> None:
    """airflow_ui_info{url="..."} 1, the info-metric convention (a constant 1 carrying a label)."""
    from prometheus_client import REGISTRY, Gauge

    info = Gauge(
        "airflow_ui_info",
        "Always 1; url is the Airflow UI's address ([api] base_url)",
        ["url"],
        registry=registry or REGISTRY,
    )
    info.labels(url=ui_url(base_url)).set(1)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--interval", type=float, default=10, help="seconds between rounds (default 10)")
    parser.add_argument(
        "--confirm", type=float, default=30, help="seconds without an answer before a worker counts as gone"
    )
    # A broadcast waits out its whole timeout (it cannot know how many workers will answer), twice a round.
    # A worker answers within milliseconds, and one reply missed is forgiven for --confirm seconds.
    parser.add_argument("--reply-timeout", type=float, default=2, help="seconds to wait for workers' replies")
    parser.add_argument("--metrics-port", type=int, default=9108)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    from prometheus_client import start_http_server

    controller = Controller(args)
    start_http_server(args.metrics_port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    log.info(
        "sizing pools from the live workers every %.0f s (loss confirmed after %.0f s, ceiling %s)",
        args.interval,
        args.confirm,
        controller.ceiling or "none",
    )
    while not stop.is_set():
        started = time.monotonic()
        try:
            controller.round()
        except Exception:  # the metadata DB may be restarting: log it and try again next round
            log.exception("round failed; pools left as they are")
        stop.wait(max(0.0, args.interval - (time.monotonic() - started)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
