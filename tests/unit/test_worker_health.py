"""The worker health check's decisions (scripts/worker_health.py), on Redis CLIENT LIST lines in the
format Redis 7 and 8 print and on synthetic worker states: no broker, no Docker. Against a live worker
and a restarted Redis it belongs to the integration tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts import worker_health
from scripts.worker_health import (
    RedisClient,
    Verdict,
    WorkerState,
    decide,
    host_of,
    next_state,
    parse_client_list,
)

NODE = "celery@worker1"
WORKER_IP = "172.18.0.9"
# Every field Redis 7.0 prints for a worker's consuming connection (Redis 8 prints a few more).
FULL_LINE = (
    "id=4 addr=172.18.0.9:51842 laddr=172.18.0.3:6379 fd=8 name= age=15 idle=0 flags=b db=0 sub=0 psub=0 "
    "ssub=0 multi=-1 qbuf=0 qbuf-free=20474 argv-mem=43 multi-mem=0 rbs=1024 rbp=0 obl=0 oll=0 omem=0 "
    "tot-mem=22363 events=r cmd=brpop user=default redir=-1 resp=3"
)
# CLIENT LIST with one worker with free slots (172.18.0.9: BRPOP, pub/sub, publish), another worker
# (172.18.0.10) and our own probe connection (id 40); fields other than the ones read are left out.
CLIENT_LIST = "\n".join(
    [
        FULL_LINE,
        "id=9 addr=172.18.0.9:51888 fd=14 name= age=4 idle=4 flags=P db=0 psub=1 cmd=psubscribe user=default",
        "id=11 addr=172.18.0.9:51918 fd=16 name= age=4 idle=0 flags=N db=0 cmd=publish user=default",
        "id=21 addr=172.18.0.10:40110 fd=20 name= age=90 idle=0 flags=b db=0 cmd=brpop user=default",
        "id=40 addr=172.18.0.9:49058 fd=19 name= age=0 idle=0 flags=N db=0 cmd=client|list user=default",
    ]
)
FREE = WorkerState(prefetch_count=16, active=3, reserved=0, queues=("default",))
FULL = WorkerState(prefetch_count=16, active=16, reserved=0, queues=("default",))


def clients_with(line_for_worker: str) -> tuple[list[RedisClient], RedisClient]:
    """CLIENT LIST with the worker's BRPOP connection (id 4) replaced by the given line."""
    lines = [line for line in CLIENT_LIST.splitlines() if not line.startswith("id=4 ")]
    clients = parse_client_list("\n".join([line_for_worker, *lines]))
    (own,) = [c for c in clients if c.id == "40"]
    return clients, own


def never_called() -> WorkerState:
    raise AssertionError("the worker's state must not be asked for when its BRPOP shows it consuming")


def test_client_list_lines_are_parsed() -> None:
    clients = parse_client_list(CLIENT_LIST)
    assert [c.id for c in clients] == ["4", "9", "11", "21", "40"]
    assert clients[0] == RedisClient(id="4", host=WORKER_IP, cmd="brpop", flags="b", idle=0)
    assert clients[0].blocked
    assert clients[-1].cmd == "client|list"
    assert not clients[1].blocked


@pytest.mark.parametrize(
    ("addr", "host"),
    [("172.18.0.9:51842", "172.18.0.9"), ("[fd00::9]:51842", "fd00::9"), ("fd00::9:51842", "fd00::9")],
)
def test_host_of_ipv4_and_ipv6_addresses(addr: str, host: str) -> None:
    assert host_of(addr) == host


def test_redis_py_client_list_dicts_are_accepted() -> None:
    fields = {"id": "4", "addr": "172.18.0.9:51842", "cmd": "BRPOP", "flags": "b", "idle": "0"}
    assert worker_health.client_from_fields(fields) == RedisClient("4", WORKER_IP, "brpop", "b", 0)


def test_no_ping_answer_is_unhealthy_and_curable() -> None:
    clients, own = clients_with(FULL_LINE)
    verdict = decide(NODE, False, clients, own, 10, never_called)
    assert verdict == Verdict(False, f"{NODE} did not answer a ping over the broker", restart_helps=True)


def test_blocked_brpop_from_this_container_is_healthy_without_asking_the_worker() -> None:
    clients, own = clients_with(FULL_LINE)
    verdict = decide(NODE, True, clients, own, 10, never_called)
    assert verdict.healthy, verdict
    assert "BRPOP" in verdict.reason


def test_brpop_between_two_polls_is_healthy() -> None:
    """The BRPOP's 1 s server timeout has just expired and kombu is about to send the next one."""
    clients, own = clients_with(
        f"id=4 addr={WORKER_IP}:51842 fd=8 name= age=15 idle=1 flags=N db=0 cmd=brpop user=default"
    )
    assert decide(NODE, True, clients, own, 10, never_called).healthy


def test_another_workers_brpop_does_not_count() -> None:
    clients, own = clients_with(f"id=4 addr={WORKER_IP}:51842 fd=8 idle=0 flags=N db=0 cmd=publish")
    verdict = decide(NODE, True, clients, own, 10, lambda: FREE)
    assert not verdict.healthy
    assert "no BRPOP connection" in verdict.reason


def test_our_own_connection_never_counts_as_the_workers() -> None:
    own = RedisClient("40", WORKER_IP, "brpop", "b", 0)
    verdict = decide(NODE, True, [own], own, 10, lambda: FREE)
    assert not verdict.healthy


def test_busy_worker_with_paused_brpop_is_healthy() -> None:
    """kombu stops polling while every slot is taken (no prefetch credit): busy, not stuck."""
    clients, own = clients_with(f"id=4 addr={WORKER_IP}:51842 fd=8 idle=600 flags=N db=0 cmd=brpop")
    verdict = decide(NODE, True, clients, own, 10, lambda: FULL)
    assert verdict.healthy, verdict
    assert "busy: 16 running + 0 reserved of 16 slots" in verdict.reason
    assert "last BRPOP 600 s ago" in verdict.reason


def test_reserved_tasks_take_slots_too() -> None:
    clients, own = clients_with(f"id=4 addr={WORKER_IP}:51842 fd=8 idle=60 flags=N db=0 cmd=brpop")
    state = WorkerState(prefetch_count=16, active=12, reserved=4, queues=("default",))
    assert decide(NODE, True, clients, own, 10, lambda: state).healthy


def test_free_slots_and_no_recent_brpop_is_the_catatonic_worker() -> None:
    """Upstream #63580 / kombu#2629: answers pings, queues registered, nothing polled for minutes."""
    clients, own = clients_with(f"id=4 addr={WORKER_IP}:51842 fd=8 idle=300 flags=N db=0 cmd=brpop")
    verdict = decide(NODE, True, clients, own, 10, lambda: FREE)
    assert not verdict.healthy
    assert verdict.restart_helps
    assert "does not consume default: last BRPOP 300 s ago" in verdict.reason
    assert "13 of 16 slots are free" in verdict.reason


def test_idle_threshold_is_respected() -> None:
    clients, own = clients_with(f"id=4 addr={WORKER_IP}:51842 fd=8 idle=11 flags=N db=0 cmd=brpop")
    assert not decide(NODE, True, clients, own, 10, lambda: FREE).healthy
    assert decide(NODE, True, clients, own, 11, lambda: FREE).healthy


def test_worker_without_queues_is_unhealthy_even_when_busy() -> None:
    """After a reconnect the consumer lost its queues: it will never take a task again."""
    clients, own = clients_with(f"id=4 addr={WORKER_IP}:51842 fd=8 idle=40 flags=N db=0 cmd=brpop")
    state = WorkerState(prefetch_count=16, active=16, reserved=0, queues=())
    verdict = decide(NODE, True, clients, own, 10, lambda: state)
    assert not verdict.healthy
    assert "consumes no queue at all" in verdict.reason


def test_no_answer_about_its_state_is_unhealthy() -> None:
    clients, own = clients_with(f"id=4 addr={WORKER_IP}:51842 fd=8 idle=40 flags=N db=0 cmd=brpop")
    verdict = decide(NODE, True, clients, own, 10, lambda: None)
    assert not verdict.healthy
    assert verdict.restart_helps


# --- restart bookkeeping -----------------------------------------------------------------------------
STUCK = Verdict(False, "not consuming", restart_helps=True)
NO_BROKER = Verdict(False, "cannot reach the broker")
HEALTHY = Verdict(True, "fine")


def test_failures_are_counted_and_the_worker_is_stopped_once() -> None:
    state: dict = {"failures": 0, "terminated": False}
    stops = []
    for _ in range(7):
        state, stop = next_state(state, STUCK, restart_after=5)
        stops.append(stop)
    assert stops == [False, False, False, False, True, False, False]
    assert state == {"failures": 7, "terminated": True}


def test_healthy_resets_the_count() -> None:
    state, _ = next_state({"failures": 4, "terminated": False}, STUCK, restart_after=5)
    state, stop = next_state(state, HEALTHY, restart_after=5)
    assert (state, stop) == ({"failures": 0, "terminated": False}, False)
    state, stop = next_state(state, STUCK, restart_after=5)
    assert (state["failures"], stop) == (1, False)


def test_an_unreachable_broker_is_never_a_reason_to_stop_the_worker() -> None:
    state: dict = {"failures": 3, "terminated": False}
    for _ in range(10):
        state, stop = next_state(state, NO_BROKER, restart_after=5)
        assert not stop
    assert state["failures"] == 3


def test_restart_after_zero_never_stops() -> None:
    state: dict = {"failures": 100, "terminated": False}
    state, stop = next_state(state, STUCK, restart_after=0)
    assert not stop


def test_unreadable_state_file_starts_from_zero(tmp_path: Path) -> None:
    broken = tmp_path / "state.json"
    broken.write_text("{not json")
    assert worker_health.load_state(broken) == {"failures": 0, "terminated": False}
    assert worker_health.load_state(tmp_path / "missing.json") == {"failures": 0, "terminated": False}


# --- main: exit code, one line of output, state, and the stop -------------------------------------------
def run_main(
    monkeypatch, tmp_path: Path, verdicts: list[Verdict], restart_after: int, starts: list[str] | None = None
) -> tuple[list, list]:
    """main() once per verdict; `starts` are PID 1's start times seen by each run (a new one: restarted)."""
    monkeypatch.setenv(worker_health.BROKER_ENV, "redis://:secret@redis:6379/0")
    queue = iter(verdicts)
    monkeypatch.setattr(worker_health, "check", lambda *_args: next(queue))
    start_times = iter(starts or ["100"] * len(verdicts))
    monkeypatch.setattr(worker_health, "process_start", lambda _pid: next(start_times))
    stopped: list[tuple[int, str]] = []
    monkeypatch.setattr(worker_health, "stop_worker", lambda pid, reason: stopped.append((pid, reason)))
    args = ["--restart-after", str(restart_after), "--pid", "7", "--state-file", str(tmp_path / "s.json")]
    return [worker_health.main(args) for _ in verdicts], stopped


def test_main_exit_codes_and_one_line_reason(monkeypatch, tmp_path: Path, capsys) -> None:
    codes, stopped = run_main(monkeypatch, tmp_path, [HEALTHY, STUCK], restart_after=0)
    assert codes == [0, 1]
    assert capsys.readouterr().out.splitlines() == ["healthy: fine", "unhealthy: not consuming"]
    assert stopped == []


def test_main_stops_the_worker_after_consecutive_failures(monkeypatch, tmp_path: Path) -> None:
    codes, stopped = run_main(monkeypatch, tmp_path, [STUCK, STUCK, STUCK], restart_after=3)
    assert codes == [1, 1, 1]
    assert stopped == [(7, "not consuming")]
    assert json.loads((tmp_path / "s.json").read_text()) == {
        "failures": 3,
        "terminated": True,
        "process": "100",
    }


def test_a_restarted_worker_starts_counting_from_zero(monkeypatch, tmp_path: Path) -> None:
    """The state file outlives a container restart; a new PID 1 means a new worker with a clean slate."""
    verdicts = [STUCK, STUCK, STUCK, STUCK, STUCK]
    codes, stopped = run_main(monkeypatch, tmp_path, verdicts, 3, starts=["100", "100", "100", "250", "250"])
    assert codes == [1] * 5
    assert stopped == [(7, "not consuming")]
    assert json.loads((tmp_path / "s.json").read_text()) == {
        "failures": 2,
        "terminated": False,
        "process": "250",
    }


def test_main_without_broker_url_is_unhealthy(monkeypatch, capsys) -> None:
    monkeypatch.delenv(worker_health.BROKER_ENV, raising=False)
    assert worker_health.main([]) == 1
    assert "AIRFLOW__CELERY__BROKER_URL is not set" in capsys.readouterr().out
