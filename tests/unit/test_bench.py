"""The benchmark's code keeps working without a stack: statistics on known numbers, SQL and parsing on
synthetic rows, CPU deltas minus idle, the workloads driven against a fake stack (a tiny simulator of
slots for the waves), whole sessions against it, the plan and its time budget, the configuration table,
the report from a synthetic result set (goals met and not met, with by how much), the results record's
JSON round trip, and the compose overrides resolved by `docker compose config` (the CLI only, no
engine): each configuration really has the topology the table says, the official one really removes
the tuning, the direct and compose ones really bypass PgBouncer, the overload one touches only the
scheduler, and the benchmark's DAG folder replaces the user's."""

from __future__ import annotations

import configparser
import json
import os
import re
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench import bench_stack, configs, limits, measure, plan, record, report, session, stats, workloads
from bench.__main__ import parse_args
from bench.errors import BenchError
from bench.measure import CpuSample, RunRow, TaskRow
from bench.record import (
    Connections,
    CpuCost,
    FailoverFigures,
    FailoverRun,
    Idle,
    IdleCpu,
    MemorySnapshot,
    NoopRun,
    Results,
    RunFigures,
    SessionRecord,
    StuckInQueued,
    WaveFigures,
    WaveRun,
)
from stackkit import compose, envfile, images
from stackkit.errors import StackError
from tests.unit.compose import REPO, SECRETS
from tests.unit.test_airflow_cfg import ENV_ONLY

GIB = 1024**3


# --- statistics ---------------------------------------------------------------------------------------
def test_percentiles_interpolate_like_numpy() -> None:
    values = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert stats.percentile(values, 50) == pytest.approx(5.5)
    assert stats.percentile(values, 95) == pytest.approx(9.55)
    assert stats.percentile(values, 0) == 1
    assert stats.percentile(values, 100) == 10
    assert stats.percentile([4.0], 95) == 4.0
    assert stats.percentile([], 50) is None
    assert stats.percentile([None, 3.0, None], 50) == 3.0
    with pytest.raises(ValueError, match="outside"):
        stats.percentile(values, 101)


def test_p95_of_queue_waits() -> None:
    # 20 waits of 0..19 s: rank 0.95 x 19 = 18.05, between 18 and 19.
    assert stats.percentile(range(20), 95) == pytest.approx(18.05)
    assert stats.percentile([1.0, 100.0], 95) == pytest.approx(95.05)


def test_median_spread_and_ratio() -> None:
    assert stats.median([3.0, 1.0, 2.0]) == 2.0
    assert stats.median([4.0, 1.0, 3.0, 2.0]) == 2.5
    spread = stats.spread([2.0, None, 6.0, 4.0])
    assert spread == stats.Spread(n=3, median=4.0, min=2.0, max=6.0)
    assert stats.spread([None]) is None
    assert stats.ratio(3.0, 2.0) == 1.5
    assert stats.ratio(3.0, 0.0) is None
    assert stats.ratio(None, 2.0) is None


def test_scaling_efficiency() -> None:
    assert stats.scaling_efficiency(1.6, 0.4, 4) == pytest.approx(1.0)
    assert stats.scaling_efficiency(1.2, 0.4, 4) == pytest.approx(0.75)
    assert stats.scaling_efficiency(0.4, 0.4, 1) == 1.0
    assert stats.scaling_efficiency(None, 0.4, 4) is None
    assert stats.scaling_efficiency(1.0, None, 4) is None
    assert stats.scaling_efficiency(1.0, 0.0, 4) is None


def test_peak_overlap() -> None:
    assert stats.peak_overlap([]) == 0
    assert stats.peak_overlap([(0, 10), (1, 2), (3, 4), (3.5, 5)]) == 3
    # A slot freed and taken at the same instant is not two at once.
    assert stats.peak_overlap([(0, 1), (1, 2), (2, 3)]) == 1


# --- SQL and parsing ----------------------------------------------------------------------------------
def test_benchmark_sql_quotes_its_values() -> None:
    sql = measure.task_rows_sql("bench_noop", "run'; DROP TABLE job; --")
    assert "'run''; DROP TABLE job; --'" in sql
    assert "IN ('a', 'b''c')" in measure.runs_sql("d", ["a", "b'c"])
    with pytest.raises(ValueError, match="empty"):
        measure.runs_sql("d", [])


@pytest.fixture(scope="module")
def airflow_columns() -> dict[str, set[str]]:
    from airflow.jobs.job import Job
    from airflow.models.dagrun import DagRun
    from airflow.models.log import Log
    from airflow.models.pool import Pool
    from airflow.models.taskinstance import TaskInstance

    return {
        table.__tablename__: {c.name for c in table.__table__.columns}
        for table in (TaskInstance, DagRun, Job, Log, Pool)
    }


def test_sql_uses_columns_that_airflow_has(airflow_columns: dict[str, set[str]]) -> None:
    used = {
        "task_instance": [
            "task_id",
            "map_index",
            "state",
            "queued_dttm",
            "start_date",
            "end_date",
            "queued_by_job_id",
            "dag_id",
            "run_id",
        ],
        "dag_run": ["state", "queued_at", "start_date", "end_date", "dag_id", "run_id"],
        "job": ["id", "hostname", "job_type"],
        "log": ["event", "dag_id", "run_id", "task_id", "map_index"],
        "slot_pool": ["pool", "slots"],
    }
    for table, columns in used.items():
        assert set(columns) <= airflow_columns[table], f"{table}: {set(columns) - airflow_columns[table]}"
    texts = " ".join(
        [
            measure.run_sql("d", "r"),
            measure.task_rows_sql("d", "r"),
            measure.progress_sql("d", "r", "t"),
            measure.busiest_scheduler_sql("d", "r"),
            measure.scheduler_jobs_sql("h"),
            measure.started_after_sql("d", "r", "t", 1.5),
            measure.runs_sql("d", ["r"]),
            measure.runs_progress_sql("d", ["r"], "t"),
            measure.wave_tasks_sql("d", ["r"]),
            measure.stuck_in_queued_sql("d", ["r"]),
            measure.pool_slots_sql(),
        ]
    )
    for table, columns in used.items():
        assert re.search(rf"\b{table}\b", texts), table
        for column in columns:
            assert re.search(rf"\b{column}\b", texts), column
    assert "to_timestamp(1.500000)" in measure.started_after_sql("d", "r", "t", 1.5)
    assert "backend_type = 'client backend'" in measure.CONNECTIONS_SQL
    assert "pg_backend_pid()" in measure.CONNECTIONS_SQL


def test_stuck_in_queued_events_are_the_schedulers() -> None:
    from airflow.jobs.scheduler_job_runner import TASK_STUCK_IN_QUEUED_RESCHEDULE_EVENT

    from tests.integration.faults import STUCK_IN_QUEUED

    assert measure.STUCK_IN_QUEUED_EVENT == TASK_STUCK_IN_QUEUED_RESCHEDULE_EVENT == STUCK_IN_QUEUED
    source = Path(__import__("airflow.jobs.scheduler_job_runner").jobs.scheduler_job_runner.__file__)
    assert f'event="{measure.STUCK_TRIES_EXCEEDED_EVENT}"' in source.read_text()
    sql = measure.stuck_in_queued_sql("bench_sleep", ["r1", "r2"])
    assert "event = 'stuck in queued reschedule'" in sql
    assert "run_id IN ('r1', 'r2')" in sql


def test_rows_parse_with_nulls() -> None:
    run = measure.parse_run([["success", "100.5", "101", ""]])
    assert run == RunRow("success", 100.5, 101.0, None)
    tasks = measure.parse_tasks(
        [["noop", "3", "queued", "10.25", "", "", "7"], ["plan", "-1", "success", "", "", "", ""]]
    )
    assert tasks[0] == TaskRow("noop", 3, "queued", 10.25, None, None, 7)
    assert tasks[1].queued_by_job_id is None
    assert measure.parse_progress([]) is None
    assert measure.parse_progress([["running", "4", "2", "10"]]) == measure.Progress("running", 4, 2, 10)
    assert measure.single_int([["12"]]) == 12
    with pytest.raises(ValueError, match="one value"):
        measure.single_int([["1"], ["2"]])
    with pytest.raises(ValueError, match="one dag_run"):
        measure.parse_run([])


def test_wave_rows_parse() -> None:
    # psql -tA output of runs_sql, runs_progress_sql and stuck_in_queued_sql on Postgres 15.
    runs = measure.parse_runs(
        [["r1", "success", "100.000000", "101.000000", "200.000000"], ["r3", "running", "100.7", "102", ""]]
    )
    assert runs["r3"] == RunRow("running", 100.7, 102.0, None)
    progress = measure.parse_runs_progress(
        [["r1", "success", "2", "2", "2"], ["r3", "running", "0", "0", "1"]]
    )
    assert progress["r3"] == measure.Progress("running", 0, 0, 1)
    assert measure.parse_stuck([["3", "2", "1"]]) == StuckInQueued(
        events=3, task_instances=2, tries_exceeded=1
    )
    with pytest.raises(ValueError, match="three counts"):
        measure.parse_stuck([])


def synthetic_tasks() -> list[TaskRow]:
    """plan at 1-2 s; four mapped tasks, two at a time, queued 1 s before each starts (0.5 s for the last)."""
    plan_task = TaskRow("plan", -1, "success", 0.5, 1.0, 2.0, 1)
    mapped = [
        TaskRow("noop", 0, "success", 2.0, 3.0, 5.0, 1),
        TaskRow("noop", 1, "success", 2.0, 3.0, 5.0, 2),
        TaskRow("noop", 2, "success", 4.0, 5.0, 7.0, 1),
        TaskRow("noop", 3, "success", 6.5, 7.0, 9.0, 2),
    ]
    return [plan_task, *mapped]


def test_run_figures_on_synthetic_rows() -> None:
    figures = measure.run_figures(RunRow("success", 0.0, 0.5, 10.5), synthetic_tasks(), "noop")
    assert figures.tasks == 4
    assert figures.succeeded == 4
    assert figures.run_seconds == 10.0
    assert figures.throughput == pytest.approx(0.4)
    assert figures.task_span_seconds == 6.0
    assert figures.task_throughput == pytest.approx(4 / 6)
    assert figures.latency_p50 == pytest.approx(1.0)
    assert figures.latency_p95 == pytest.approx(1.0)
    assert figures.latency_max == 1.0
    assert figures.trigger_to_first_start == 1.0  # queued_at 0 -> plan starts at 1
    assert figures.peak_concurrency == 2


def test_run_figures_of_an_unfinished_run_are_missing_not_zero() -> None:
    figures = measure.run_figures(RunRow("running", 0.0, 0.5, None), synthetic_tasks()[:2], "noop")
    assert figures.run_seconds is None
    assert figures.throughput is None


def test_wave_figures_span_every_run_and_count_the_peak_across_them() -> None:
    runs = [RunRow("success", 0.0, 1.0, 50.0), RunRow("failed", 0.5, 2.0, 61.0)]
    tasks = [
        TaskRow("plan", -1, "success", 0.9, 1.0, 2.0, 1),
        TaskRow("sleep", 0, "success", 3.0, 4.0, 40.0, 1),  # run 1
        TaskRow("sleep", 1, "success", 3.0, 4.0, 30.0, 1),
        TaskRow("sleep", 0, "success", 3.0, 5.0, 45.0, 2),  # run 2: three at once from 5 to 30
        TaskRow("sleep", 1, "failed", 3.0, 33.0, 60.0, 2),  # waited 30 s in the queue
        TaskRow("sleep", 2, "queued", 3.0, None, None, 2),
    ]
    figures = measure.wave_figures(runs, tasks, "sleep")
    assert (figures.runs, figures.tasks, figures.succeeded, figures.failed, figures.unfinished) == (
        2,
        5,
        3,
        1,
        1,
    )
    assert figures.wave_seconds == 60.0  # first run start 1.0 -> last run end 61.0
    assert figures.throughput == pytest.approx(5 / 60)
    assert figures.peak_concurrency == 3
    assert figures.queue_wait_max == 30.0
    assert figures.queue_wait_p50 == pytest.approx(1.5)  # waits 1, 1, 2, 30
    assert figures.queue_wait_p95 == pytest.approx(2 + (30 - 2) * 0.85)
    assert figures.task_seconds_total == pytest.approx(36 + 26 + 40 + 27)
    assert figures.trigger_to_first_start == 1.0  # earliest queued_at 0.0 -> plan starts at 1.0
    still_running = measure.wave_figures([runs[0], RunRow("running", 0.5, 2.0, None)], tasks, "sleep")
    assert still_running.wave_seconds is None
    assert still_running.throughput is None


def test_failover_figures() -> None:
    tasks = synthetic_tasks()
    # Kill at 4.5: job 1 dies. Next start after it: 5.0 (task 2, queued by the dead one before the kill).
    # First queued after the kill by another job: task 3 at 6.5 by job 2.
    figures = measure.failover_figures(4.5, tasks, "noop", killed_job_ids=[1])
    assert figures.next_start_seconds == pytest.approx(0.5)
    assert figures.survivor_queued_seconds == pytest.approx(2.0)
    assert figures.started_before_kill == 2
    assert figures.queued_before_kill == 3
    nothing_after = measure.failover_figures(100.0, tasks, "noop", killed_job_ids=[1])
    assert nothing_after.next_start_seconds is None
    assert nothing_after.survivor_queued_seconds is None


def test_memory_as_docker_stats_shows_it() -> None:
    v2 = {"memory_stats": {"usage": 1000, "stats": {"inactive_file": 300, "file": 500}}}
    v1 = {"memory_stats": {"usage": 1000, "stats": {"total_inactive_file": 100, "inactive_file": 300}}}
    assert measure.memory_used(v2) == 700
    assert measure.memory_used(v1) == 900
    assert measure.memory_used({"memory_stats": {"usage": 50, "stats": {"inactive_file": 80}}}) == 50
    assert measure.memory_used({"memory_stats": {}}) == 0
    snapshot = measure.memory_snapshot(
        [("redis", GIB // 4), ("airflow-worker", GIB), ("airflow-worker", GIB // 2)]
    )
    assert snapshot.services == {"airflow-worker": GIB + GIB // 2, "redis": GIB // 4}
    assert list(snapshot.services) == ["airflow-worker", "redis"]
    assert snapshot.containers == {"airflow-worker": 2, "redis": 1}
    assert snapshot.total_gib == pytest.approx(1.75)


def test_connection_sampler_keeps_the_maximum_and_counts_errors() -> None:
    values: Iterator[int | Exception] = iter([3, RuntimeError("exec failed"), 7, 5])

    def query() -> int:
        value = next(values, 4)
        if isinstance(value, Exception):
            raise value
        return value

    sampler = measure.Sampler(query, interval=0.001).start()
    deadline = 200
    while len(sampler.samples) < 4 and deadline:
        deadline -= 1
        sampler._stop.wait(0.01)
    sampler.stop()
    summary = sampler.summary()
    assert summary.max == 7
    assert summary.errors == 1
    assert "exec failed" in str(summary.first_error)


# --- CPU ------------------------------------------------------------------------------------------------
def test_cpu_usage_comes_from_docker_stats_on_both_cgroup_versions() -> None:
    # The Docker API reports cpu_stats.cpu_usage.total_usage in ns on cgroup v1 and v2 alike.
    assert measure.cpu_usage_ns({"cpu_stats": {"cpu_usage": {"total_usage": 1_500_000_000}}}) == 1_500_000_000
    assert measure.cpu_usage_ns({"cpu_stats": {}}) is None
    assert measure.cpu_usage_ns({}) is None


NS = 1_000_000_000


def cpu_samples(at: float, usage: dict[str, tuple[str, float]]) -> list[CpuSample]:
    """usage: container -> (service, CPU-seconds so far)."""
    return [CpuSample(c, service, int(seconds * NS), at) for c, (service, seconds) in usage.items()]


def test_idle_rates_per_container_and_service() -> None:
    before = cpu_samples(100.0, {"s1": ("airflow-scheduler", 10.0), "s2": ("airflow-scheduler", 20.0)})
    before += cpu_samples(100.0, {"w1": ("airflow-worker", 5.0), "gone": ("redis", 1.0)})
    after = cpu_samples(130.0, {"s1": ("airflow-scheduler", 11.5), "s2": ("airflow-scheduler", 21.5)})
    after += cpu_samples(130.0, {"w1": ("airflow-worker", 5.3), "new": ("redis", 0.1)})
    idle = measure.idle_rates(before, after)
    assert idle.window_seconds == pytest.approx(30.0)
    assert idle.by_service() == {
        "airflow-scheduler": pytest.approx(0.1),
        "airflow-worker": pytest.approx(0.01),
    }
    assert idle.rate_of("s1", "airflow-scheduler") == pytest.approx(0.05)
    # A worker added later has no rate of its own: its service's mean.
    assert idle.rate_of("w2", "airflow-worker") == pytest.approx(0.01)
    assert idle.rate_of("x", "flower") == 0.0
    idle_record = idle.record()
    assert idle_record.total_cores == pytest.approx(0.11)
    assert idle_record.containers == {"airflow-scheduler": 2, "airflow-worker": 1}


def test_cpu_cost_subtracts_the_idle_rate_and_sums_per_service() -> None:
    idle = measure.IdleRates(
        30.0,
        {
            "s1": ("airflow-scheduler", 0.05),
            "s2": ("airflow-scheduler", 0.05),
            "w1": ("airflow-worker", 0.01),
        },
    )
    before = cpu_samples(1000.0, {"s1": ("airflow-scheduler", 10.0), "s2": ("airflow-scheduler", 20.0)})
    before += cpu_samples(1000.0, {"w1": ("airflow-worker", 5.0), "p": ("postgres", 3.0)})
    after = cpu_samples(1020.0, {"s1": ("airflow-scheduler", 12.0), "s2": ("airflow-scheduler", 23.0)})
    after += cpu_samples(1020.0, {"w1": ("airflow-worker", 15.2), "p": ("postgres", 4.0)})
    cost = measure.cpu_cost(before, after, idle, tasks=100)
    assert cost.window_seconds == pytest.approx(20.0)
    assert cost.gross == {"airflow-scheduler": 5.0, "airflow-worker": 10.2, "postgres": 1.0}
    # 2 schedulers x 0.05 cores x 20 s; the worker 0.01 x 20; postgres was not measured idle: 0.
    assert cost.idle == {"airflow-scheduler": 2.0, "airflow-worker": 0.2, "postgres": 0.0}
    assert cost.net == {"airflow-scheduler": 3.0, "airflow-worker": 10.0, "postgres": 1.0}
    assert cost.per_task == {"airflow-scheduler": 0.03, "airflow-worker": 0.1, "postgres": 0.01}
    assert cost.per_task_total == pytest.approx(0.14)
    assert cost.biggest == "airflow-worker"
    assert cost.problems == []


def test_cpu_cost_names_containers_that_came_went_or_restarted() -> None:
    idle = measure.IdleRates(30.0, {"w1": ("airflow-worker", 0.02)})
    before = cpu_samples(0.0, {"w1": ("airflow-worker", 5.0), "r": ("redis", 2.0), "x": ("flower", 9.0)})
    after = cpu_samples(
        10.0, {"w1": ("airflow-worker", 6.0), "w2": ("airflow-worker", 0.5), "r": ("redis", 0.25)}
    )
    cost = measure.cpu_cost(before, after, idle, tasks=10)
    # w2 started during the run: all its 0.5 s, minus the worker's mean idle rate over the window.
    assert cost.gross == {"airflow-worker": 1.5, "redis": 0.25}
    assert cost.idle == {"airflow-worker": pytest.approx(0.4), "redis": 0.0}
    assert len(cost.problems) == 3
    assert any("w2" in p and "started during the run" in p for p in cost.problems)
    assert any(p.startswith("redis") and "restarted" in p for p in cost.problems)
    assert any(p.startswith("flower") and "not counted" in p for p in cost.problems)
    without_idle = measure.cpu_cost(before[:1], after[:1], None, tasks=0)
    assert without_idle.idle == {"airflow-worker": 0.0}
    assert without_idle.per_task == {}
    assert without_idle.per_task_total is None


# --- workloads against a fake stack -------------------------------------------------------------------
class FakeContainer:
    def __init__(self, hostname: str) -> None:
        self.attrs = {"Config": {"Hostname": hostname}}


class FakeApi:
    def __init__(self) -> None:
        self.triggered: list[tuple[str, str, dict[str, Any]]] = []

    def trigger_run(self, dag_id: str, run_id: str, conf: dict[str, object]) -> str:
        self.triggered.append((dag_id, run_id, conf))
        return run_id


def run_ids_in(query: str) -> list[str]:
    return re.findall(r"'(bench__[^']+)'", query)


class FakeStack:
    """A stack whose metadata database plays back a tiny no-op run of four mapped tasks, and runs of
    bench_sleep simulated on `slots` slots: every task queued at 1.0 and started, in trigger order, as
    soon as a slot is free (so a wave takes as long as its sleeps allow)."""

    def __init__(self, api: FakeApi | None = None, end_state: str = "success", workers: int = 1) -> None:
        self.api = api or FakeApi()
        self.end_state = end_state
        self.workers = workers
        self.slots: int | None = None  # None: 16 per worker
        self.polls = 0
        self.run_id = ""
        self.wave_polls: dict[str, int] = {}
        self.killed: list[FakeContainer] = []
        self.queries: list[str] = []
        self.schedulers = [FakeContainer("aaa111"), FakeContainer("bbb222")]
        self.memory_samples = 0
        self.cpu_reads = 0
        self.stuck = ["0", "0", "0"]
        self.sleep_state = "success"

    @property
    def pool(self) -> int:
        return 16 * self.workers

    def simulate(self, run_ids: Sequence[str]) -> tuple[dict[str, list[str]], list[list[str]]]:
        """dag_run rows and task rows of the given runs of bench_sleep."""
        slots = [1.0] * (self.slots or 16 * self.workers)  # when each slot is free
        runs: dict[str, list[str]] = {}
        tasks: list[list[str]] = []
        for _, run_id, conf in (t for t in self.api.triggered if t[0] == "bench_sleep"):
            ends = []
            for index, seconds in enumerate(conf["seconds"]):
                slot = min(range(len(slots)), key=lambda i: slots[i])
                start = slots[slot]
                slots[slot] = start + seconds
                ends.append(start + seconds)
                if run_id in run_ids:
                    state = self.sleep_state
                    tasks.append(["sleep", str(index), state, "1.0", str(start), str(start + seconds), "1"])
            if run_id in run_ids:
                state = "failed" if self.sleep_state == "failed" else "success"
                runs[run_id] = [run_id, state, "0.0", "0.5", str(max(ends) + 0.5)]
        return runs, tasks

    def sql(self, query: str) -> list[list[str]]:
        self.queries.append(query)
        if "pg_stat_activity" in query:
            return [["9"]]
        if "FROM slot_pool" in query:
            return [[str(self.pool)]]
        if "FROM log" in query:
            return [list(self.stuck)]
        if query.startswith("SELECT r.run_id"):  # wave progress: running once, then ended
            rows = []
            runs, _ = self.simulate(run_ids_in(query))
            for run_id in run_ids_in(query):
                self.wave_polls[run_id] = self.wave_polls.get(run_id, 0) + 1
                state = "running" if self.wave_polls[run_id] < 2 else runs[run_id][1]
                rows.append([run_id, state, "1", "0", "1"])
            return rows
        if query.startswith("SELECT run_id, state"):
            runs, _ = self.simulate(run_ids_in(query))
            return list(runs.values())
        if query.startswith("SELECT task_id, map_index") and "run_id IN" in query:
            return self.simulate(run_ids_in(query))[1]
        if "FROM dag_run r" in query:  # progress: each new run goes running, running, then ends
            found = re.findall(r"run_id = '([^']+)'", query)
            run_id = found[-1] if found else ""
            if run_id == "bench__idle":
                return []
            if run_id != self.run_id:
                self.run_id, self.polls = run_id, 0
            self.polls += 1
            if self.polls < 3:
                return [["running", str(self.polls * 2), str(self.polls), "4"]]
            return [[self.end_state, "4", "4", "4"]]
        if query.startswith("SELECT state,"):
            return [[self.end_state, "0", "0.5", "10.5"]]
        if query.startswith("SELECT task_id, map_index"):
            return [
                [
                    t.task_id,
                    str(t.map_index),
                    t.state,
                    str(t.queued),
                    str(t.start),
                    str(t.end),
                    str(t.queued_by_job_id),
                ]
                for t in synthetic_tasks()
            ]
        if "JOIN job j" in query:
            return [["2", "bbb222.airflow-bench_default", "3"]]
        if "FROM job WHERE job_type" in query:
            return [["2"]]
        if "to_timestamp" in query:
            return [["1"]]
        raise AssertionError(f"unexpected query {query}")

    def memory(self) -> MemorySnapshot:
        self.memory_samples += 1
        return measure.memory_snapshot([("airflow-worker", GIB)])

    def cpu(self) -> list[CpuSample]:
        """Every reading 10 s after the last; between two readings the worker uses 2 s of CPU, a
        scheduler 0.5 s."""
        self.cpu_reads += 1
        n = self.cpu_reads
        at = 1000.0 + 10 * n
        worker = 2.0 * n
        return [
            CpuSample("w1", "airflow-worker", int(worker * NS), at),
            CpuSample("s1", "airflow-scheduler", int(0.5 * n * NS), at),
        ]

    def containers(self, service: str | None = None) -> list[FakeContainer]:
        assert service == "airflow-scheduler"
        return self.schedulers

    def kill(self, container: FakeContainer) -> None:
        self.killed.append(container)


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workloads.time, "sleep", lambda _: None)


def test_noop_run_on_a_tiny_workload() -> None:
    fake = FakeStack()
    # Idle rates: the scheduler's whole use, half the worker's.
    idle = measure.IdleRates(10.0, {"w1": ("airflow-worker", 0.1), "s1": ("airflow-scheduler", 0.05)})
    result = workloads.noop_run(
        fake,
        fake.api,
        label="tuned-w1",
        workers=1,
        count=4,
        timeout=30,
        idle=idle,
        poll=0,
        sample_interval=0.01,
    )
    (dag_id, run_id, conf), *_ = fake.api.triggered
    assert dag_id == "bench_noop"
    assert conf == {"count": 4}
    assert run_id.startswith("bench__tuned-w1__")
    assert result.state == "success"
    assert result.problems == []
    assert result.figures.throughput == pytest.approx(0.4)
    assert result.connections.max == 9
    assert result.memory_load is not None
    assert result.memory_load.total_gib == 1.0
    assert fake.memory_samples == 1
    assert result.pool_slots == 16
    # Two CPU readings 10 s apart: the worker used 2 s (1 of it at the idle rate), the scheduler 0.5 s (all).
    assert result.cpu is not None
    assert result.cpu.net == {"airflow-scheduler": 0.0, "airflow-worker": 1.0}
    assert result.cpu.per_task_total == pytest.approx(0.25)
    assert result.cpu.biggest == "airflow-worker"
    without_idle = workloads.noop_run(
        FakeStack(), FakeApi(), label="x", workers=1, count=4, timeout=30, poll=0
    )
    assert without_idle.cpu is None


def test_a_failed_run_stops_the_benchmark_unless_allowed() -> None:
    with pytest.raises(BenchError, match="run ended failed"):
        workloads.noop_run(
            FakeStack(end_state="failed"), FakeApi(), label="x", workers=1, count=4, timeout=30, poll=0
        )
    result = workloads.noop_run(
        FakeStack(end_state="failed"),
        FakeApi(),
        label="x",
        workers=1,
        count=4,
        timeout=30,
        poll=0,
        allow_failed=True,
    )
    assert result.problems == ["run ended failed"]


def test_a_run_that_never_ends_times_out() -> None:
    class Stuck(FakeStack):
        def sql(self, query: str) -> list[list[str]]:
            if "FROM dag_run r" in query:
                return [["running", "0", "0", "4"]]
            return super().sql(query)

    with pytest.raises(BenchError, match="not finished"):
        workloads.noop_run(Stuck(), FakeApi(), label="x", workers=1, count=4, timeout=0, poll=0)


def test_sleep_durations_spread_evenly_and_deal_into_runs() -> None:
    seconds = workloads.sleep_durations(128, 20, 60)
    assert seconds == workloads.sleep_durations(128, 20, 60)  # the same wave for every configuration
    assert min(seconds) == 20
    assert max(seconds) == 60
    assert sum(seconds) / len(seconds) == pytest.approx(40, abs=1)
    for part in (seconds[:32], seconds[:64]):  # the 1- and 2-worker waves have the same spread
        assert sum(part) / len(part) == pytest.approx(40, abs=2)
        assert min(part) <= 22
        assert max(part) >= 58
    runs = workloads.split_runs(seconds[:32], 3)
    assert [len(run) for run in runs] == [11, 11, 10]
    assert sorted(x for run in runs for x in run) == sorted(seconds[:32])
    assert all(sum(run) / len(run) == pytest.approx(40, abs=5) for run in runs)
    assert workloads.split_runs([1, 2], 3) == [[1], [2]]


def test_fanout_wave_keeps_every_slot_busy(no_sleep: None) -> None:
    fake = FakeStack(workers=2)
    seconds = [40] * 64
    wave = workloads.fanout_wave(
        fake, fake.api, label="tuned-fanout-w2", workers=2, seconds=seconds, runs=3, timeout=60, poll=0
    )
    assert [conf["seconds"] for _, _, conf in fake.api.triggered] == workloads.split_runs(seconds, 3)
    assert all(dag_id == "bench_sleep" for dag_id, _, _ in fake.api.triggered)
    assert wave.kind == "fanout"
    assert len(wave.run_ids) == 3
    assert wave.finished
    assert wave.problems == []
    assert wave.pool_slots == 32
    assert wave.task_seconds_total == 64 * 40
    figures = wave.figures
    assert figures.tasks == 64
    assert figures.peak_concurrency == 32
    assert figures.wave_seconds == pytest.approx(81.0)  # runs from 0.5; two waves of 40 s from 1.0; end +0.5
    assert figures.throughput == pytest.approx(64 / 81.0)
    assert figures.queue_wait_p95 == figures.queue_wait_max == 40.0  # the second wave waited for a slot
    json.dumps(record.encode(wave))


def test_a_fanout_wave_with_failures_stops_the_benchmark_unless_allowed(no_sleep: None) -> None:
    fake = FakeStack()
    fake.sleep_state = "failed"
    with pytest.raises(BenchError, match="4 of 4 tasks failed"):
        workloads.fanout_wave(
            fake, fake.api, label="x", workers=1, seconds=[5] * 4, runs=2, timeout=60, poll=0
        )
    fake = FakeStack()
    fake.sleep_state = "failed"
    wave = workloads.fanout_wave(
        fake, fake.api, label="x", workers=1, seconds=[5] * 4, runs=2, timeout=60, poll=0, allow_failed=True
    )
    assert wave.figures.failed == 4


def test_overload_wave_counts_failures_and_requeues_without_failing(no_sleep: None) -> None:
    fake = FakeStack()
    fake.sleep_state = "failed"
    fake.stuck = ["9", "8", "1"]
    wave = workloads.overload_wave(
        fake,
        fake.api,
        label="compose-overload",
        count=24,
        runs=3,
        task_seconds=75,
        queued_timeout=60.0,
        timeout=60,
        poll=0,
    )
    assert [len(conf["seconds"]) for _, _, conf in fake.api.triggered] == [8, 8, 8]
    assert {s for _, _, conf in fake.api.triggered for s in conf["seconds"]} == {75}
    assert wave.kind == "overload"
    assert wave.workers == 1
    assert wave.figures.failed == 24
    assert wave.stuck == StuckInQueued(events=9, task_instances=8, tries_exceeded=1)
    assert wave.task_queued_timeout == 60.0
    assert any("failed" in problem for problem in wave.problems)
    log_query = next(q for q in fake.queries if "FROM log" in q)
    assert all(run_id in log_query for run_id in wave.run_ids)


def test_a_wave_that_does_not_end_in_time() -> None:
    class Never(FakeStack):
        def sql(self, query: str) -> list[list[str]]:
            if query.startswith("SELECT r.run_id"):
                return [[run_id, "running", "1", "0", "1"] for run_id in run_ids_in(query)]
            return super().sql(query)

    fake = Never()
    wave = workloads.overload_wave(
        fake, fake.api, label="x", count=3, runs=3, task_seconds=5, queued_timeout=60.0, timeout=0, poll=0
    )
    assert not wave.finished
    assert "not finished after 0 s (runs running)" in wave.problems[0]
    with pytest.raises(BenchError, match="not finished"):
        workloads.fanout_wave(
            Never(), FakeApi(), label="x", workers=1, seconds=[5], runs=1, timeout=0, poll=0
        )


def test_wait_for_pool(no_sleep: None) -> None:
    fake = FakeStack(workers=2)
    assert workloads.wait_for_pool(fake, 32, timeout=10, poll=0)[0] == 32
    seen, _ = workloads.wait_for_pool(fake, 64, timeout=0, poll=0)  # not fatal: what it saw
    assert seen == 32


def test_idle_window_samples_like_a_run(no_sleep: None) -> None:
    fake = FakeStack()
    idle = workloads.idle_window(fake, seconds=0, interval=0.001)
    assert fake.cpu_reads == 2
    assert idle.by_service() == {
        "airflow-scheduler": pytest.approx(0.05),
        "airflow-worker": pytest.approx(0.2),
    }


def test_failover_kills_the_busiest_scheduler() -> None:
    fake, api = FakeStack(), FakeApi()
    result = workloads.failover_run(
        fake,
        api,
        label="tuned-failover",
        workers=2,
        count=4,
        timeout=30,
        next_start_timeout=30,
        finish_timeout=30,
        poll=0,
    )
    assert fake.killed == [fake.schedulers[1]]
    assert result.killed_hostname == "bbb222"
    assert result.killed_was_busiest is True
    assert result.killed_job_ids == [2]
    assert result.state == "success"
    assert result.figures is not None
    assert result.figures.started_before_kill == 4  # the fake's tasks all started before the (real) kill
    json.dumps(record.encode(result))


def test_failover_needs_two_schedulers() -> None:
    fake = FakeStack()
    fake.schedulers = fake.schedulers[:1]
    with pytest.raises(BenchError, match="two running schedulers"):
        workloads.failover_run(
            fake, FakeApi(), label="x", workers=2, count=4, timeout=1, next_start_timeout=1, finish_timeout=1
        )


def test_hostnames_compare_by_first_label() -> None:
    assert workloads.hostname_matches("abc123.net_default", "abc123")
    assert not workloads.hostname_matches("abc123", "")
    assert not workloads.hostname_matches("abc124", "abc123")


# --- a whole session against a fake stack ----------------------------------------------------------
class FakeSessionStack(FakeStack):
    def __init__(self, fail_up: bool = False) -> None:
        super().__init__()
        self.env = {"AIRFLOW_ADMIN_USER": "admin", "AIRFLOW_ADMIN_PASSWORD": "secret"}
        self.fail_up = fail_up
        self.calls: list[str] = []
        self.extra_files: tuple[str, ...] = ()

    def up(self, timeout: float) -> float:
        self.calls.append("up")
        if self.fail_up:
            raise BenchError("docker compose up failed (exit 1):\nairflow-init exited 1")
        return 71.5

    def down(self) -> None:
        self.calls.append("down")

    def scale_workers(self, count: int, timeout: float) -> float:
        self.calls.append(f"scale {count}")
        self.workers = count
        return 40.0

    def reconfigure(self, workers: int, extra_files: Sequence[str], timeout: float) -> float:
        self.calls.append(f"reconfigure {workers} {' '.join(extra_files)}")
        self.workers, self.extra_files = workers, tuple(extra_files)
        return 45.0

    def url(self, port_key: str) -> str:
        return "http://127.0.0.1:28080"

    def diagnostics(self) -> str:
        return "ps and logs"


def run_fake_session(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, spec: plan.SessionSpec, fake: FakeSessionStack
) -> tuple[SessionRecord, list[str]]:
    class FakeAirflowApi:
        def __init__(self, base_url: str, username: str, password: str, token_retry_for: float) -> None:
            assert (username, password) == ("admin", "secret")
            self.unpaused: list[str] = []

        def wait_for_dag(self, dag_id: str, timeout: float, every: float) -> float:
            return 3.0

        def unpause(self, dag_id: str) -> None:
            self.unpaused.append(dag_id)

        def trigger_run(self, dag_id: str, run_id: str, conf: dict[str, object]) -> str:
            return fake.api.trigger_run(dag_id, run_id, conf)

    monkeypatch.setattr(session, "new_stack", lambda *args, **kwargs: fake)
    monkeypatch.setattr(session, "AirflowApi", FakeAirflowApi)
    monkeypatch.setattr(workloads.time, "sleep", lambda _: None)
    monkeypatch.setattr(session.time, "sleep", lambda _: None)
    settings = plan.Settings(tasks=4, settle_seconds=0, idle_seconds=0)
    prepared = session.Prepared(with_grafana=False, images={})
    rec = session.new_record(spec, settings, prepared)
    lines: list[str] = []
    try:
        session.run_session(
            spec,
            settings,
            prepared,
            tmp_path / "bench.env",
            tmp_path / "diag.log",
            rec,
            lambda: None,
            lines.append,
        )
    finally:
        lines.append("(end)")
    return rec, lines


def test_a_full_session_runs_every_step_and_always_tears_down(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spec = plan.session_spec("tuned", 1, plan.Settings())
    assert spec is not None
    fake = FakeSessionStack()
    rec, lines = run_fake_session(monkeypatch, tmp_path, spec, fake)
    assert fake.calls == [
        "down",
        "up",
        "scale 2",
        "scale 4",
        "scale 2",
        "reconfigure 1 bench/overload.override.yml",
        "down",
    ]
    assert rec.error is None
    assert rec.up_seconds == 71.5
    assert rec.dag_ready_seconds == 6.0  # two DAGs
    assert rec.scale_seconds == {"1->2": 40.0, "2->4": 40.0, "4->2": 40.0}
    assert rec.reconfigure_seconds == 45.0
    assert [run.workers for run in rec.noop] == [1, 2, 4]
    assert all(run.cpu is not None for run in rec.noop)
    assert [wave.workers for wave in rec.fanout] == [1, 2, 4]
    assert [wave.figures.tasks for wave in rec.fanout] == [32, 64, 128]
    assert [wave.figures.peak_concurrency for wave in rec.fanout] == [16, 32, 64]
    assert rec.idle is not None
    assert rec.idle.memory.total_gib == 1.0
    assert rec.idle.cpu is not None
    assert rec.failover is not None
    assert rec.failover.killed_hostname == "bbb222"
    assert rec.overload is not None
    assert rec.overload.figures.tasks == 24
    assert rec.overload.pool_slots == 16
    assert rec.overload.task_queued_timeout == limits.overload_queued_timeout()
    assert {(c.workers, c.runs) for c in rec.ceilings} == {(1, 1), (2, 1), (4, 1), (1, 3), (2, 3), (4, 3)}
    assert any("tearing down" in line for line in lines)
    # The record is what the report reads: sessions of tuned and compose render, with ratios.
    compose = replace(rec, config="compose")
    results = Results(started_at="t", settings=plan.Settings(tasks=4), plan=[spec], sessions=[rec, compose])
    summary = report.summarise(results)
    assert summary.figures["fanout_throughput_w4"].ratio_compose == pytest.approx(1.0)
    assert summary.figures["fanout_efficiency_w4"].by_config["tuned"] is not None
    assert "| Throughput over the wave, 4 workers |" in report.markdown(results)
    assert record.loads(record.dumps(results)) == results


def test_a_short_session_has_no_waves(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    spec = plan.session_spec("official", 2, plan.Settings())
    assert spec is not None
    fake = FakeSessionStack()
    rec, _ = run_fake_session(monkeypatch, tmp_path, spec, fake)
    assert fake.calls == ["down", "up", "scale 2", "down"]
    assert [run.workers for run in rec.noop] == [1, 2]
    assert rec.fanout == []
    assert rec.overload is None
    assert rec.failover is not None


def test_a_failed_session_keeps_its_error_and_logs_and_tears_down(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spec = plan.session_spec("official", 2, plan.Settings())
    assert spec is not None
    with pytest.raises(BenchError, match="airflow-init exited 1"):
        run_fake_session(monkeypatch, tmp_path, spec, fake := FakeSessionStack(fail_up=True))
    assert fake.calls == ["down", "up", "down"]
    assert (tmp_path / "diag.log").read_text() == "ps and logs"


def test_main_keeps_typed_results_when_a_session_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import bench.__main__ as cli

    monkeypatch.setattr(cli.signal, "signal", lambda *args: None)  # leave pytest's handlers alone
    monkeypatch.setattr(cli, "host_facts", lambda: record.Host(cpus=2, platform="test", memory_gib=1.0))
    monkeypatch.setattr(
        cli, "prepare", lambda *args: session.Prepared(with_grafana=False, images={"i": "sha"})
    )
    started: list[str] = []

    def fake_session(spec: plan.SessionSpec, *args: Any) -> None:
        rec, save = args[4], args[5]
        started.append(spec.short)
        rec.up_seconds = 70.0
        save()
        if spec.config == "compose":
            rec.error = "boom"
            raise BenchError("boom")

    monkeypatch.setattr(cli, "run_session", fake_session)
    assert cli.main(["--quick", "--results-dir", str(tmp_path)]) == 1
    assert started == ["A1", "C1"]
    (json_path,) = tmp_path.glob("*.json")
    results = record.read(json_path)
    assert (results.status, results.error) == ("failed", "boom")
    assert [(s.config, s.up_seconds, s.error) for s in results.sessions] == [
        ("tuned", 70.0, None),
        ("compose", 70.0, "boom"),
    ]
    assert results.host is not None
    assert results.host.platform == "test"
    assert results.images == {"i": "sha"}
    assert results.finished_at is not None
    assert "**Status: failed**: boom" in json_path.with_suffix(".md").read_text()


# --- plan and settings --------------------------------------------------------------------------------
def test_default_plan_interleaves_and_fits_the_budget() -> None:
    settings = plan.Settings()
    sessions = plan.build_plan(settings)
    assert [s.short for s in sessions] == ["A1", "B1", "C1", "D1", "A2", "B2", "A3", "B3"]
    full = {s.config: s for s in sessions if s.repetition == 1}
    assert full["tuned"].noop_workers == (1, 2, 4)  # 4 workers: the connection figure
    assert full["official"].noop_workers == full["compose"].noop_workers == (1, 2)
    assert all(full[c].fanout_workers == (1, 2, 4) for c in ("tuned", "official", "compose"))
    assert all(full[c].overload for c in ("tuned", "official", "compose"))
    assert not full["compose"].failover  # one scheduler
    assert full["direct"] == plan.SessionSpec("direct", 1, (1, 2, 4), (), False, False, False)
    for spec in sessions[4:]:  # the repetitions: short figures only
        assert (spec.noop_workers, spec.fanout_workers, spec.overload, spec.failover) == (
            (1, 2),
            (),
            False,
            True,
        )
    minutes = plan.estimate_seconds(sessions, settings) / 60
    assert 60 < minutes <= 80, minutes


def test_quick_plan_is_tuned_and_compose_once() -> None:
    settings = plan.Settings.quick_pass()
    sessions = plan.build_plan(settings)
    assert (settings.repetitions, settings.tasks) == (1, 20)
    assert [s.short for s in sessions] == ["A1", "C1"]
    assert all(4 not in s.noop_workers and s.fanout_workers == (1, 2) and not s.overload for s in sessions)
    assert plan.estimate_seconds(sessions, settings) / 60 <= 15


def test_steps_of_a_full_session() -> None:
    spec = plan.session_spec("tuned", 1, plan.Settings())
    assert spec is not None
    assert [(s.action, s.workers) for s in plan.steps(spec)] == [
        ("noop", 1),
        ("fanout", 1),
        ("scale", 2),
        ("noop", 2),
        ("fanout", 2),
        ("scale", 4),
        ("noop", 4),
        ("fanout", 4),
        ("scale", 2),
        ("failover", 2),
        ("overload-config", 1),
        ("overload", 1),
    ]


def test_fanout_sizes_saturate_every_worker_count() -> None:
    settings = plan.Settings()
    for workers in settings.fanout_workers:
        # Two tasks per slot; the tuned configuration's ceiling is every slot.
        assert settings.fanout_tasks(workers) == 16 * workers * 2
        assert limits.ceilings("tuned", [workers], settings.fanout_runs)[0].ceiling == 16 * workers
    assert settings.overload_task_seconds == limits.overload_queued_timeout() + 15
    with pytest.raises(ValueError, match="1024"):
        plan.Settings(fanout_workers=(64,), fanout_runs=1)


def test_tuning_pass_runs_one_configuration_only() -> None:
    settings = parse_args(["--quick", "--only", "tuned"])
    assert [s.config for s in plan.build_plan(settings)] == ["tuned"]
    full = plan.build_plan(plan.Settings(only="official"))
    assert [s.short for s in full] == ["B1", "B2", "B3"]
    assert [s.short for s in plan.build_plan(plan.Settings(only="compose"))] == ["C1"]
    with pytest.raises(SystemExit):
        parse_args(["--only", "fast"])


def test_command_line() -> None:
    assert parse_args([]) == plan.Settings(offline=os.environ.get("OFFLINE") == "1")
    quick = parse_args(["--quick", "--offline"])
    assert quick.quick
    assert quick.offline
    assert quick.tasks == 20
    assert not quick.overload
    assert parse_args(["--repetitions", "5", "--tasks", "50"]).repetitions == 5
    assert not parse_args(["--no-overload"]).overload
    assert parse_args(["--full-repetitions", "0"]).full_repetitions == 0
    with pytest.raises(SystemExit):
        parse_args(["--tasks", "5000"])


# --- the configuration table --------------------------------------------------------------------------
def test_configuration_table() -> None:
    assert configs.NAMES == ("tuned", "official", "compose", "direct")
    assert len({c.letter for c in configs.CONFIGURATIONS}) == len(configs.CONFIGURATIONS)
    for conf in configs.CONFIGURATIONS:
        assert conf.files[0] == "docker-compose.yml"
        for name in conf.files:
            assert (REPO / name).is_file(), name
        assert conf.cfg_path.is_file()
        assert conf.failover == (conf.schedulers == 2)
    compose = configs.get("compose")
    assert (compose.schedulers, compose.pgbouncer, compose.pool_follows_workers) == (1, False, False)
    assert compose.airflow_cfg == configs.get("official").airflow_cfg
    with pytest.raises(ValueError, match="unknown configuration"):
        configs.get("fast")


# --- the stack's pure parts ---------------------------------------------------------------------------
def test_env_file_has_fresh_secrets_own_ports_and_profiles() -> None:
    example = (REPO / ".env.example").read_text()
    first = envfile.parse(bench_stack.env_file_text(example, with_grafana=False))
    second = envfile.parse(bench_stack.env_file_text(example, with_grafana=True))
    for secret in SECRETS:
        assert first[secret], f"{secret} empty"
        assert first[secret] != second[secret], f"{secret} not fresh"
    assert first["AIRFLOW_API_PORT"] == "28080"
    assert first["FLOWER_PORT"] == "25555"
    assert first["COMPOSE_PROFILES"] == ""
    assert second["COMPOSE_PROFILES"] == "grafana"
    assert first["AIRFLOW_WORKER_STOP_GRACE_PERIOD"] == "30s"


def test_env_file_is_private(tmp_path: Path) -> None:
    path = envfile.write_private(tmp_path / "bench.env", "A=1\n")
    assert path.stat().st_mode & 0o777 == 0o600


def test_compose_environment_keeps_images_and_drops_what_the_env_file_sets() -> None:
    caller = {
        "PATH": "/bin",
        "COMPOSE_PROJECT_NAME": "airflow",
        "COMPOSE_PROFILES": "grafana",
        "POSTGRES_PASSWORD": "from-the-shell",
        "POSTGRES_IMAGE": "mirror/postgres:17",
    }
    offline = envfile.read(REPO / "offline" / "images.env")
    environment = compose.environment(caller, {"POSTGRES_PASSWORD": "x", "COMPOSE_PROFILES": ""}, offline)
    assert "COMPOSE_PROJECT_NAME" not in environment
    assert "COMPOSE_PROFILES" not in environment
    assert "POSTGRES_PASSWORD" not in environment
    assert environment["POSTGRES_IMAGE"] == "mirror/postgres:17"  # what the caller exported wins
    assert environment["REDIS_IMAGE"] == offline["REDIS_IMAGE"]  # the rest of the offline kit
    assert images.offline_images({"OFFLINE": "1"}, offline=False) == offline
    assert images.offline_images({}, offline=False) == {}


def test_compose_command_names_the_project_and_the_overrides_in_order(tmp_path: Path) -> None:
    command = bench_stack.compose_command("official", tmp_path / "bench.env", "up", "--wait")
    assert command[:5] == ["docker", "compose", "--project-name", "airflow-bench", "--project-directory"]
    files = [command[i + 1] for i, arg in enumerate(command) if arg == "--file"]
    assert files == [
        str(REPO / "docker-compose.yml"),
        str(REPO / "bench" / "bench.override.yml"),
        str(REPO / "bench" / "official-defaults.override.yml"),
    ]
    assert command[-2:] == ["up", "--wait"]
    with pytest.raises(ValueError, match="unknown configuration"):
        bench_stack.compose_files("fast")
    overload = bench_stack.compose_command(
        "compose", tmp_path / "bench.env", "up", extra_files=(configs.OVERLOAD,)
    )
    files = [overload[i + 1] for i, arg in enumerate(overload) if arg == "--file"]
    assert files == [str(REPO / name) for name in (*configs.get("compose").files, configs.OVERLOAD)]


# --- the compose overrides ----------------------------------------------------------------------------
OVERRIDE_FILES = sorted((REPO / "bench").glob("*.override.yml"))
# The settings docker-compose.yml sets from .env (test_airflow_cfg.py keeps the one list of them).
AIRFLOW_ENV_ONLY = {f"AIRFLOW__{section.upper()}__{key.upper()}" for section, key in ENV_ONLY}


@pytest.mark.parametrize("path", OVERRIDE_FILES, ids=[p.name for p in OVERRIDE_FILES])
def test_override_parses_as_yaml_and_keeps_secrets_without_defaults(path: Path) -> None:
    document = yaml.safe_load(path.read_text())  # an alias to docker-compose.yml's anchors would fail here
    assert set(document) <= {"services"} | {key for key in document if key.startswith("x-")}
    assert document["services"]
    for secret in SECRETS:
        assert not re.search(rf"\${{{secret}:?-", path.read_text()), f"{secret} has a default in {path.name}"


def test_every_override_is_used_by_the_configuration_table() -> None:
    used = {name for conf in configs.CONFIGURATIONS for name in conf.overrides} | {configs.OVERLOAD}
    assert used == {f"bench/{p.name}" for p in OVERRIDE_FILES}


@pytest.fixture(scope="module")
def bench_env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    text = bench_stack.env_file_text((REPO / ".env.example").read_text(), with_grafana=True)
    return envfile.write_private(tmp_path_factory.mktemp("bench") / "bench.env", text)


def resolve(files: list[str], env_file: Path) -> dict[str, Any]:
    command = ["docker", "compose", "--project-directory", str(REPO)]
    for name in files:
        command += ["--file", str(REPO / name)]
    command += ["--env-file", str(env_file), "--profile", "grafana", "config", "--format", "json"]
    env = {key: os.environ[key] for key in ("PATH", "HOME") if key in os.environ}
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def new_bench_stack(config: str, env_file: Path, extra_files: Sequence[str] = ()) -> bench_stack.BenchStack:
    """The benchmark's own stack object: its command line and environment (only `config` is run)."""
    environment = compose.environment(
        {key: os.environ[key] for key in ("PATH", "HOME") if key in os.environ},
        envfile.read(env_file),
        {},
    )
    return bench_stack.BenchStack.of(config, env_file, environment, lambda _: None, extra_files)


@pytest.fixture(scope="module")
def resolved(bench_env_file: Path) -> dict[str, dict[str, Any]]:
    """Each configuration resolved through the benchmark's own compose command, alone and with the
    overload's override (`<config>+overload`), and the base file alone."""
    found = {}
    for config in configs.NAMES:
        for extra in ((), (configs.OVERLOAD,)):
            command = new_bench_stack(config, bench_env_file, extra)
            name = config + ("+overload" if extra else "")
            found[name] = json.loads(command.compose("--profile", "grafana", "config", "--format", "json"))
    found["base"] = resolve(["docker-compose.yml"], bench_env_file)
    return found


def test_benchmark_compose_names_its_own_project(resolved: dict[str, dict[str, Any]]) -> None:
    for config in configs.NAMES:
        assert resolved[config]["name"] == "airflow-bench"


def test_a_compose_failure_is_a_clear_benchmark_error(bench_env_file: Path, tmp_path: Path) -> None:
    lines = [
        line for line in bench_env_file.read_text().splitlines() if not line.startswith("REDIS_PASSWORD=")
    ]
    broken = envfile.write_private(tmp_path / "broken.env", "\n".join(lines) + "\nREDIS_PASSWORD=\n")
    with pytest.raises(StackError, match=r"docker compose config failed \(exit \d+\):\n.*REDIS_PASSWORD"):
        new_bench_stack("tuned", broken).compose("config")


def test_service_images_of_the_resolved_file(resolved: dict[str, dict[str, Any]]) -> None:
    by_service = {i.service: i for i in images.service_images(resolved["official"])}
    assert by_service["airflow-worker"].built
    assert not by_service["postgres"].built
    assert by_service["airflow-worker"].image == by_service["airflow-scheduler"].image


@pytest.mark.parametrize("override", [p.name for p in OVERRIDE_FILES])
def test_each_override_alone_validates_on_the_base_file(override: str, bench_env_file: Path) -> None:
    assert resolve(["docker-compose.yml", f"bench/{override}"], bench_env_file)["services"]


def airflow_services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in config["services"].items()
        if "AIRFLOW_CONFIG" in service.get("environment", {})
    }


def mounts(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {volume["target"]: volume for volume in service.get("volumes", [])}


def test_benchmark_dags_replace_the_user_dags(resolved: dict[str, dict[str, Any]]) -> None:
    base_users = {n for n, s in resolved["base"]["services"].items() if "/opt/airflow/dags" in mounts(s)}
    assert base_users, "no service mounts the DAG folder in docker-compose.yml"
    for config in configs.NAMES:
        services = resolved[config]["services"]
        users = {n for n, s in services.items() if "/opt/airflow/dags" in mounts(s)}
        assert users == base_users, config
        for name in users:
            dags = mounts(services[name])["/opt/airflow/dags"]
            assert dags["source"] == str(REPO / "bench" / "dags"), f"{config}/{name}: {dags['source']}"
            assert dags.get("read_only") is True, f"{config}/{name}"
            targets = [v["target"] for v in services[name]["volumes"]]
            assert len(targets) == len(set(targets)), f"{config}/{name}: a mount appears twice"
            assert mounts(services[name]).keys() >= mounts(resolved["base"]["services"][name]).keys()


def test_official_override_swaps_airflow_cfg_and_nothing_else(resolved: dict[str, dict[str, Any]]) -> None:
    base, official = resolved["base"], resolved["official"]
    assert airflow_services(official).keys() == airflow_services(base).keys()
    cfg = str(REPO / "bench" / "official-airflow.cfg")
    for name, service in airflow_services(official).items():
        environment = service["environment"]
        assert environment["AIRFLOW_CONFIG"] == "/opt/airflow/bench/official-airflow.cfg", name
        mount = mounts(service)["/opt/airflow/bench/official-airflow.cfg"]
        assert mount["source"] == cfg, name
        assert mount.get("read_only") is True, name
        # Merged key by key: every other variable of the base file is still there, unchanged.
        base_environment = base["services"][name]["environment"]
        assert {k: v for k, v in environment.items() if k != "AIRFLOW_CONFIG"} == {
            k: v for k, v in base_environment.items() if k != "AIRFLOW_CONFIG"
        }, name
        tuning = {k for k in environment if k.startswith("AIRFLOW__")} - AIRFLOW_ENV_ONLY
        assert not tuning, f"{name} sets tuning through the environment: {tuning}"
    # Same topology and images: two schedulers, PgBouncer, the same services.
    assert official["services"].keys() == base["services"].keys()
    assert official["services"]["airflow-scheduler"]["deploy"]["replicas"] == 2
    assert {n: s.get("image") for n, s in official["services"].items()} == {
        n: s.get("image") for n, s in base["services"].items()
    }


def replicas(service: dict[str, Any]) -> int:
    return int((service.get("deploy") or {}).get("replicas", 1))


@pytest.mark.parametrize("config", configs.NAMES)
def test_each_configuration_has_the_topology_of_the_table(
    config: str, resolved: dict[str, dict[str, Any]]
) -> None:
    conf, services = configs.get(config), resolved[config]["services"]
    assert services.keys() == resolved["base"]["services"].keys()  # the same services (PgBouncer runs idle)
    assert replicas(services["airflow-scheduler"]) == conf.schedulers
    assert replicas(services["worker-capacity"]) == (1 if conf.pool_follows_workers else 0)
    database = "pgbouncer:6432" if conf.pgbouncer else "postgres:5432"
    for name, service in airflow_services(resolved[config]).items():
        environment = service["environment"]
        assert environment["AIRFLOW_CONFIG"] == conf.container_cfg, name
        assert host_of(environment["AIRFLOW__CELERY__RESULT_BACKEND"]) == database, name
        if name != "airflow-init":  # migrations always go straight to Postgres
            assert host_of(environment["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]) == database, name
    mounted = {v["source"] for s in airflow_services(resolved[config]).values() for v in s.get("volumes", [])}
    assert str(conf.cfg_path) in mounted or str(conf.cfg_path.parent) in mounted


def test_compose_configuration_is_the_official_compose_as_run(resolved: dict[str, dict[str, Any]]) -> None:
    official, compose = resolved["official"]["services"], resolved["compose"]["services"]
    for name, service in airflow_services(resolved["compose"]).items():
        # Airflow's defaults, as in official; only the database URLs differ.
        differs = {
            key
            for key in service["environment"].keys() | official[name]["environment"].keys()
            if service["environment"].get(key) != official[name]["environment"].get(key)
        }
        assert differs <= {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND"}, name
    assert replicas(compose["airflow-scheduler"]) == 1
    assert replicas(official["airflow-scheduler"]) == 2


@pytest.mark.parametrize("config", configs.NAMES)
def test_overload_override_changes_only_the_schedulers_timeout(
    config: str, resolved: dict[str, dict[str, Any]]
) -> None:
    plain, overload = resolved[config]["services"], resolved[f"{config}+overload"]["services"]
    assert plain.keys() == overload.keys()
    changed = {name for name in plain if plain[name] != overload[name]}
    assert changed == {"airflow-scheduler"}
    before, after = plain["airflow-scheduler"]["environment"], overload["airflow-scheduler"]["environment"]
    assert {k: v for k, v in after.items() if k not in before} == {
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "60"
    }
    assert float(after["AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT"]) == limits.overload_queued_timeout()


def test_the_scheduler_alone_reads_task_queued_timeout() -> None:
    """Why the overload override recreates only the scheduler: in Airflow 3.3.2 the option is read by the
    scheduler's stuck-in-queued check and by the workload token it creates (the celery provider's
    mention is a comment)."""
    import airflow

    root = Path(airflow.__file__).parent
    reads = re.compile(r'conf\.get\w*\(\s*"scheduler",\s*"task_queued_timeout"')
    readers = set()
    for path in root.rglob("*.py"):
        text = path.read_text(errors="replace")
        if "task_queued_timeout" in text and reads.search(text):
            readers.add(str(path.relative_to(root)))
    assert readers == {"jobs/scheduler_job_runner.py", "executors/workloads/base.py"}


def host_of(url: str) -> str:
    return url.split("@", 1)[1].split("/", 1)[0]


def test_direct_override_bypasses_pgbouncer_everywhere(resolved: dict[str, dict[str, Any]]) -> None:
    tuned, direct = resolved["tuned"], resolved["direct"]
    assert all(
        host_of(s["environment"]["AIRFLOW__CELERY__RESULT_BACKEND"]) == "postgres:5432"
        for s in airflow_services(resolved["compose"]).values()
    )
    assert {
        n: host_of(s["environment"]["AIRFLOW__CELERY__RESULT_BACKEND"])
        for n, s in airflow_services(tuned).items()
    } == {n: "pgbouncer:6432" for n in airflow_services(tuned)}
    for name, service in airflow_services(direct).items():
        environment = service["environment"]
        assert host_of(environment["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]) == "postgres:5432", name
        assert host_of(environment["AIRFLOW__CELERY__RESULT_BACKEND"]) == "postgres:5432", name
        assert environment["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://"), name
        # The rest of the environment is the base file's: merged, not replaced.
        assert (
            environment["AIRFLOW__CELERY__BROKER_URL"]
            == tuned["services"][name]["environment"]["AIRFLOW__CELERY__BROKER_URL"]
        )
        assert len(environment) == len(tuned["services"][name]["environment"]), name


# --- the official configuration file ------------------------------------------------------------------
OFFICIAL_CFG = REPO / "bench" / "official-airflow.cfg"
# What the official docker-compose.yaml sets (or the measurement needs), and why it may stay.
OFFICIAL_KEYS = {
    ("core", "executor"): "official compose: CeleryExecutor",
    ("core", "auth_manager"): "official compose: the FAB auth manager",
    ("core", "load_examples"): "official compose says true; off in both for fairness",
    ("scheduler", "enable_health_check"): "official compose; the scheduler healthcheck curls :8974",
    ("metrics", "statsd_on"): "measurement: both stacks feed the same statsd_exporter",
    ("metrics", "statsd_port"): "measurement",
    ("metrics", "statsd_prefix"): "measurement",
    ("metrics", "statsd_influxdb_enabled"): "measurement",
    ("metrics", "legacy_names_on"): "measurement",
}


def cfg_entries(path: Path) -> dict[tuple[str, str], str]:
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.read_string(path.read_text(), source=str(path))
    return {(section, key): value for section in parser.sections() for key, value in parser.items(section)}


def test_official_cfg_sets_no_tuned_key() -> None:
    official = cfg_entries(OFFICIAL_CFG)
    tuned = cfg_entries(REPO / "config" / "airflow.cfg")
    extra = set(official) - set(OFFICIAL_KEYS)
    assert not extra, f"bench/official-airflow.cfg sets keys the official compose does not: {sorted(extra)}"
    tuned_keys = set(tuned) - set(OFFICIAL_KEYS)
    assert tuned_keys, "config/airflow.cfg has no tuning left to compare against"
    assert not tuned_keys & set(official)
    # the comparison is meaningful only while the global task cap is tuned
    assert ("core", "default_pool_task_slot_count") in tuned_keys
    # The shared keys hold the same values: both stacks run and report the same way.
    for key in official:
        assert official[key] == tuned[key], f"[{key[0]}] {key[1]}: {official[key]} vs {tuned[key]}"


def test_official_cfg_documents_each_line() -> None:
    previous = ""
    for number, line in enumerate(OFFICIAL_CFG.read_text().splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", ";", "[")):
            assert previous.startswith("#"), f"line {number}: {stripped} has no comment above it"
        previous = stripped


@pytest.fixture(scope="module")
def airflow_defaults() -> dict[tuple[str, str], Any]:
    from airflow.configuration import AirflowConfigParser

    description = AirflowConfigParser().configuration_description
    return {
        (section, key): info.get("default")
        for section, content in description.items()
        for key, info in (content.get("options") or {}).items()
    }


def test_official_cfg_keys_exist_in_airflow(airflow_defaults: dict[tuple[str, str], Any]) -> None:
    for key in cfg_entries(OFFICIAL_CFG):
        assert key in airflow_defaults, f"[{key[0]}] {key[1]} is not an Airflow 3.3 option"


def test_limits_know_airflow_defaults(airflow_defaults: dict[tuple[str, str], Any]) -> None:
    for key, default in limits.DEFAULTS.items():
        assert int(airflow_defaults[key]) == default, key
    for key, value in limits.FLOAT_DEFAULTS.items():
        assert float(airflow_defaults[key]) == value, key


def test_concurrency_ceilings() -> None:
    settings = {
        ("core", "parallelism"): 4,
        ("core", "max_active_tasks_per_dag"): 6,
        ("celery", "worker_concurrency"): 8,
        ("core", "default_pool_task_slot_count"): 128,
    }
    one = limits.ceiling(settings, workers=1)
    assert (one.parallelism_total, one.worker_slots, one.ceiling) == (8, 8, 6)
    assert one.limited_by == "[core] max_active_tasks_per_dag"
    three = limits.ceiling(settings, workers=1, schedulers=1, runs=3)
    assert (three.parallelism_total, three.per_dag_total, three.ceiling) == (4, 18, 4)
    assert three.limited_by == "[core] parallelism x 1 scheduler(s)"
    official = limits.ceilings("official", [1, 2])
    assert [c.ceiling for c in official] == [16, 16]  # Airflow's defaults: 16 per DAG run, 16 per worker
    # Three concurrent runs on 4 workers: official stops at 3 x 16 per run, compose at one scheduler's 32.
    assert [c.ceiling for c in limits.ceilings("official", [1, 2, 4], runs=3)] == [16, 32, 48]
    assert [c.ceiling for c in limits.ceilings("compose", [1, 2, 4], runs=3)] == [16, 32, 32]
    assert limits.ceilings("compose", [4], runs=3)[0].limited_by == "[core] parallelism x 1 scheduler(s)"
    # The tuned configuration: every live slot (worker-capacity sizes default_pool to them).
    assert [c.ceiling for c in limits.ceilings("tuned", [1, 2, 4], runs=3)] == [16, 32, 64]
    assert limits.worker_concurrency() == 16


def test_overload_timeout_is_shorter_than_every_configurations() -> None:
    timeout = limits.overload_queued_timeout()
    assert timeout == 60.0
    for config in configs.NAMES:
        assert timeout < limits.read_float(config, "scheduler", "task_queued_timeout")
    assert limits.read_float("tuned", "scheduler", "task_queued_timeout_check_interval") == 60.0
    assert limits.read_float("compose", "scheduler", "task_queued_timeout_check_interval") == 120.0
    # Enough for two re-queues by a 120 s stuck check and the tasks' own run.
    assert session.overload_timeout("compose", plan.Settings()) == 3 * 75 + 2 * 120 + 120


# --- the DAGs -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bench_dags() -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "bench" / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags


@pytest.mark.parametrize("dag_id", workloads.DAGS)
def test_benchmark_dags_leave_the_configuration_alone(dag_id: str, bench_dags: dict[str, Any]) -> None:
    dag = bench_dags[dag_id]
    assert all(t.retries == 0 for t in dag.tasks)
    assert dag.schedule is None or str(dag.timetable.summary) == "None"
    source = Path(dag.fileloc).read_text()
    for override in ("max_active_tasks=", "pool=", "max_active_tis_per_dag", "executor="):
        assert override not in source, f"{dag_id} overrides {override}: the configuration must decide"


def test_noop_dag_maps_noop_tasks_from_conf(bench_dags: dict[str, Any]) -> None:
    dag = bench_dags[workloads.NOOP_DAG]
    assert {t.task_id for t in dag.tasks} == {"plan", workloads.NOOP_TASK}
    assert type(dag.get_task(workloads.NOOP_TASK)).__name__.endswith("MappedOperator")
    assert dag.params["count"] == 100


def test_sleep_dag_maps_one_sleep_per_entry_of_conf(bench_dags: dict[str, Any]) -> None:
    from airflow.sdk.definitions.param import ParamValidationError

    dag = bench_dags[workloads.SLEEP_DAG]
    assert {t.task_id for t in dag.tasks} == {"plan", workloads.SLEEP_TASK}
    assert type(dag.get_task(workloads.SLEEP_TASK)).__name__.endswith("MappedOperator")
    param = dag.params.get_param("seconds")
    assert param.resolve([20, 60]) == [20, 60]
    for bad in ([], [-1], ["x"], [1] * 1025):
        with pytest.raises(ParamValidationError):
            param.resolve(bad)


# --- the report ---------------------------------------------------------------------------------------
def noop_record(
    workers: int, throughput: float, connections: int, load_gib: float, cpu: float | None
) -> NoopRun:
    figures = RunFigures(
        tasks=100,
        succeeded=100,
        run_seconds=100 / throughput,
        throughput=throughput,
        task_span_seconds=90 / throughput,
        task_throughput=throughput * 1.1,
        latency_p50=1.0 / throughput,
        latency_p95=3.0 / throughput,
        latency_max=4.0 / throughput,
        trigger_to_first_start=2.5,
        peak_concurrency=6 if throughput < 2 else 16,
    )
    memory = measure.memory_snapshot(
        [("airflow-worker", int(load_gib * GIB * 0.6)), ("postgres", int(load_gib * GIB * 0.4))]
    )
    # 100 tasks cost `cpu` core-seconds each: 60% worker, 30% api-server, 10% postgres, above idle.
    cost = None
    if cpu is not None and workers == 1:
        gross = {
            "airflow-apiserver": 30 * cpu + 0.5,
            "airflow-worker": 60 * cpu + 1.0,
            "postgres": 10 * cpu + 0.5,
        }
        idle = {"airflow-apiserver": 0.5, "airflow-worker": 1.0, "postgres": 0.5}
        cost = CpuCost(window_seconds=30.0, tasks=100, gross=gross, idle=idle)
    return NoopRun(
        label=f"x-w{workers}",
        workers=workers,
        tasks_requested=100,
        run_id=f"bench__x-w{workers}__0",
        state="success",
        wall_seconds=100 / throughput,
        figures=figures,
        connections=Connections(max=connections, samples=60, min=3, errors=0, first_error=None),
        memory_load=memory,
        cpu=cost,
        pool_slots=16 * workers,
    )


def wave_record(
    workers: int, throughput: float, *, kind: str = "fanout", failed: int = 0, requeued: int | None = None
) -> WaveRun:
    tasks = 24 if kind == "overload" else 32 * workers
    wait = 2.0 if throughput > 0.4 * workers * 0.9 else 30.0
    figures = WaveFigures(
        runs=3,
        tasks=tasks,
        succeeded=tasks - failed,
        failed=failed,
        unfinished=0,
        wave_seconds=tasks / throughput,
        throughput=throughput,
        task_seconds_total=tasks * 40.0,
        queue_wait_p50=0.5,
        queue_wait_p95=wait,
        queue_wait_max=wait + 1,
        peak_concurrency=min(16 * workers, round(throughput * 40)),
        trigger_to_first_start=1.0,
    )
    return WaveRun(
        kind=kind,
        label=f"x-{kind}-w{workers}",
        workers=workers,
        run_ids=[f"bench__x-{kind}-r{i}__0" for i in (1, 2, 3)],
        tasks_requested=tasks,
        task_seconds_min=20,
        task_seconds_max=60,
        task_seconds_total=tasks * 40,
        wall_seconds=tasks / throughput + 5,
        finished=True,
        run_states={"r1": "success"},
        figures=figures,
        pool_slots=16 * workers,
        stuck=None if requeued is None else StuckInQueued(requeued, requeued, 0),
        task_queued_timeout=None if requeued is None else 60.0,
    )


def session_record(
    config: str,
    repetition: int,
    *,
    throughput: float,
    idle_gib: float,
    idle_cores: float,
    cpu: float | None,
    connections: tuple[int, ...],
    failover: float | None,
    workers: tuple[int, ...] = (1, 2),
    fanout: dict[int, float] | None = None,
    overload: tuple[int, int] | None = None,
) -> SessionRecord:
    idle = measure.memory_snapshot(
        [
            ("airflow-scheduler", int(idle_gib * GIB * 0.4)),
            ("airflow-worker", int(idle_gib * GIB * 0.35)),
            ("prometheus", int(idle_gib * GIB * 0.25)),
        ]
    )
    spec = plan.SessionSpec(
        config, repetition, workers, tuple(fanout or ()), failover is not None, overload is not None, True
    )
    rec = SessionRecord(
        config=config,
        repetition=repetition,
        spec=spec,
        compose_files=bench_stack.compose_files(config),
        with_grafana=True,
        started_at="2026-01-01T00:00:00+00:00",
        ceilings=limits.ceilings(config, [1, 2, 4]) + limits.ceilings(config, [1, 2, 4], 3),
        up_seconds=70.0 + repetition,
        idle=Idle(
            memory=idle,
            cpu=IdleCpu(
                window_seconds=30.0,
                cores={
                    "airflow-scheduler": idle_cores * 0.5,
                    "airflow-worker": idle_cores * 0.3,
                    "prometheus": idle_cores * 0.2,
                },
                containers={"airflow-scheduler": 2, "airflow-worker": 1, "prometheus": 1},
            ),
        )
        if config != "direct"
        else None,
        noop=[
            noop_record(n, throughput * (1 + 0.1 * i), connections[i], idle_gib + 0.5, cpu)
            for i, n in enumerate(workers)
        ],
        fanout=[wave_record(n, value) for n, value in (fanout or {}).items()],
    )
    if failover is not None:
        rec.failover = FailoverRun(
            label="x-failover",
            workers=2,
            tasks_requested=50,
            run_id="bench__x-failover__0",
            kill_after_started=5,
            state="success",
            figures=FailoverFigures(failover, failover + 1, 5, 8),
        )
    if overload is not None:
        rec.overload = wave_record(1, 0.1, kind="overload", failed=overload[0], requeued=overload[1])
    return rec


def waves(values: dict[int, float], quick: bool) -> dict[int, float]:
    return {n: value for n, value in values.items() if not quick or n < 4}


def synthetic_results(*, good: bool, quick: bool = False) -> Results:
    settings = plan.Settings.quick_pass() if quick else plan.Settings()
    sessions = []
    for rep in range(1, 2 if quick else 4):
        full = rep == 1
        sessions.append(
            session_record(
                "tuned",
                rep,
                throughput=(3.0 if good else 2.4) + 0.1 * rep,
                idle_gib=1.6 if good else 2.31,
                idle_cores=0.15 if good else 0.41,
                cpu=0.2 if good else 0.33,
                connections=(12, 13, 13) if good else (12, 15, 18),
                failover=(4.0 if good else 14.2) + 0.1 * (rep - 2),
                workers=(1, 2, 4) if full and not quick else (1, 2),
                fanout=waves({1: 0.36, 2: 0.70, 4: 1.35} if good else {1: 0.33, 2: 0.62, 4: 1.10}, quick)
                if full
                else None,
                overload=((0, 0) if good else (2, 3)) if full and not quick else None,
            )
        )
        if not quick:
            sessions.append(
                session_record(
                    "official",
                    rep,
                    throughput=1.9 + 0.1 * rep,
                    idle_gib=2.4,
                    idle_cores=0.3,
                    cpu=0.3,
                    connections=(20, 24),
                    failover=6.0,
                    fanout={1: 0.35, 2: 0.66, 4: 0.95} if full else None,
                    overload=(8, 0) if full else None,
                )
            )
        if full:
            sessions.append(
                session_record(
                    "compose",
                    rep,
                    throughput=2.0,
                    idle_gib=1.4,
                    idle_cores=0.25,
                    cpu=0.3,
                    connections=(25, 40),
                    failover=None,
                    fanout=waves({1: 0.35, 2: 0.66, 4: 0.70}, quick),
                    overload=None if quick else (8, 0),
                )
            )
        if full and not quick:
            sessions.append(
                session_record(
                    "direct",
                    rep,
                    throughput=2.0,
                    idle_gib=1.5,
                    idle_cores=0.2,
                    cpu=None,  # no idle window: no CPU figures
                    connections=(20, 31, 52) if good else (20, 21, 21),
                    failover=None,
                    workers=(1, 2, 4),
                )
            )
    host = record.Host(
        cpus=2, platform="Linux", memory_gib=23.4, docker="28.2.2", compose="Docker Compose 2.26.1"
    )
    return Results(
        started_at="2026-01-01T00:00:00+00:00",
        settings=settings,
        plan=plan.build_plan(settings),
        status="complete",
        host=host,
        sessions=sessions,
    )


def goals_by_key(results: Results) -> dict[str, record.Goal]:
    return {goal.key: goal for goal in report.summarise(results).goals}


def test_summary_medians_spread_and_ratios() -> None:
    figures = report.summarise(synthetic_results(good=True)).figures
    throughput = figures["throughput_w1"]
    assert throughput.by_config["tuned"] == stats.Spread(
        n=3, median=pytest.approx(3.2), min=pytest.approx(3.1), max=pytest.approx(3.3)
    )
    assert throughput.by_config["official"].median == pytest.approx(2.1)
    assert throughput.ratio_official == pytest.approx(3.2 / 2.1)
    assert throughput.ratio_compose == pytest.approx(3.2 / 2.0)
    assert figures["connections_w4"].by_config["tuned"].n == 1
    assert figures["connections_w4"].by_config["direct"].median == 52
    assert figures["connections_w4"].by_config["official"] is None
    assert figures["connections_w4"].ratio_official is None
    assert figures["up_seconds"].by_config["tuned"].median == 72.0
    assert figures["idle_memory"].by_config["tuned"].median == pytest.approx(1.6, abs=1e-3)
    assert figures["idle_cpu"].by_config["tuned"].median == pytest.approx(0.15)
    assert figures["cpu_per_task_w1"].by_config["tuned"].median == pytest.approx(0.2)
    assert figures["failover_next_start"].by_config["tuned"].median == pytest.approx(4.0)
    assert figures["fanout_efficiency_w4"].by_config["tuned"].median == pytest.approx(1.35 / (4 * 0.36))
    assert figures["fanout_efficiency_w2"].by_config["compose"].median == pytest.approx(0.66 / (2 * 0.35))
    assert figures["fanout_throughput_w4"].ratio_compose == pytest.approx(1.35 / 0.70)
    assert figures["overload_failed"].by_config["compose"].median == 8


def test_per_service_tables() -> None:
    summary = report.summarise(synthetic_results(good=False))
    cpu = summary.cpu_per_task_by_service
    assert cpu["airflow-worker"]["tuned"] == pytest.approx(0.6 * 0.33)
    assert cpu["airflow-apiserver"]["compose"] == pytest.approx(0.3 * 0.3)
    assert sum(values["tuned"] or 0 for values in cpu.values()) == pytest.approx(0.33)
    idle = summary.idle_cores_by_service
    assert idle["airflow-scheduler"]["tuned"] == pytest.approx(0.205)
    assert sum(values["tuned"] or 0 for values in idle.values()) == pytest.approx(0.41)
    memory = summary.memory_by_service_gib
    assert memory["airflow-scheduler"]["tuned_idle"] == pytest.approx(2.31 * 0.4, abs=1e-6)
    assert memory["postgres"]["compose_load_w1"] == pytest.approx(1.9 * 0.4, abs=1e-6)


def test_goals_met() -> None:
    goals = goals_by_key(synthetic_results(good=True))
    assert {key: goal.met for key, goal in goals.items()} == {
        "fanout_efficiency_w4": True,
        "fanout_vs_compose_w1": True,
        "fanout_vs_compose_w2": True,
        "fanout_vs_compose_w4": True,
        "overload": True,
        "cpu_per_task": True,
        "idle_cpu": True,
        "idle_memory": True,
        "throughput_w1": True,
        "throughput_w2": True,
        "connections": True,
        "failover": True,
    }
    assert {goal.issue for goal in goals.values()} == {6, 13}
    assert goals["connections"].measured == "PgBouncer 12 → 13 → 13; direct 20 → 31 → 52"
    assert goals["fanout_vs_compose_w4"].measured == "1.93x (1.350 vs 0.700 tasks/s)"
    # The overload goal names compose's count beside tuned's, and the timeout override.
    assert (
        goals["overload"].measured
        == "tuned 0 failed, 0 re-queued; compose 8 failed, 0 re-queued; official 8 failed, 0 re-queued"
    )
    assert "task_queued_timeout 60 s in every configuration" in goals["overload"].detail
    assert goals["cpu_per_task"].measured == "0.200 core-s (biggest: airflow-worker 0.120)"


def test_goals_not_met_say_by_how_much() -> None:
    goals = goals_by_key(synthetic_results(good=False))
    assert not any(goal.met for goal in goals.values())
    # I/O fan-out: 1.10 / (4 x 0.33) = 0.83.
    assert goals["fanout_efficiency_w4"].measured.startswith("0.83 ")
    assert "short by 0.07: 4 workers would need 1.188 tasks/s" in goals["fanout_efficiency_w4"].detail
    assert "peak" in goals["fanout_efficiency_w4"].detail
    assert "short by 0.23x: tuned would need 1.260 tasks/s" in goals["fanout_vs_compose_w4"].detail
    assert "[core] parallelism x 1 scheduler(s)" in goals["fanout_vs_compose_w4"].detail
    assert goals["fanout_vs_compose_w1"].measured == "0.94x (0.330 vs 0.350 tasks/s)"
    assert goals["overload"].measured.startswith("tuned 2 failed, 3 re-queued; compose 8 failed")
    assert goals["cpu_per_task"].detail.startswith(
        "over by 0.080 core-s (32%); largest: airflow-worker 0.198"
    )
    assert "compose 0.300 core-s" in goals["cpu_per_task"].detail
    assert goals["idle_cpu"].detail.startswith("over by 0.210 cores; largest: airflow-scheduler 0.205")
    # No-op: 2.6 vs 2.1 tasks/s = 1.24x: 0.26x short; 3.15 tasks/s needed.
    assert "short by 0.26x" in goals["throughput_w1"].detail
    assert "3.15 tasks/s" in goals["throughput_w1"].detail
    assert "max_active_tasks_per_dag" in goals["throughput_w1"].detail
    assert goals["idle_memory"].detail.startswith("over by 0.31 GiB (16%)")
    assert "airflow-scheduler" in goals["idle_memory"].detail
    assert "rose by 6 (allowed +2, over by 4)" in goals["connections"].detail
    assert "without PgBouncer rose only by 1" in goals["connections"].detail
    assert goals["failover"].measured == "14.2 s"
    assert goals["failover"].detail.startswith("over by 4.2 s")


def test_quick_results_leave_unmeasured_goals_unmeasured() -> None:
    goals = goals_by_key(synthetic_results(good=True, quick=True))
    assert goals["connections"].met is None
    assert "--quick" in goals["connections"].detail
    assert goals["overload"].met is None
    assert "--quick" in goals["overload"].detail
    assert goals["fanout_efficiency_w4"].met is None
    assert goals["fanout_vs_compose_w4"].met is None
    assert goals["throughput_w1"].met is None  # no official session in a quick pass
    assert goals["fanout_vs_compose_w1"].met is True
    assert goals["cpu_per_task"].met is True


def table_rows(markdown: str, heading: str) -> list[str]:
    section = markdown.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("|")]


def test_json_and_markdown_are_written_together(tmp_path: Path) -> None:
    results = synthetic_results(good=False)
    json_path = tmp_path / "results" / "2026-01-01T00-00-00Z.json"
    markdown_path = report.write(results, json_path)
    assert markdown_path == json_path.with_suffix(".md")
    assert not list(json_path.parent.glob("*.tmp"))
    document = json.loads(json_path.read_text())
    assert document["schema"] == record.SCHEMA == "airflow-stack-bench/2"
    assert {"started_at", "status", "settings", "host", "plan", "sessions", "summary"} <= set(document)
    for key, figure in document["summary"]["figures"].items():
        assert {"label", "unit", "better", "by_config", "ratio_official", "ratio_compose"} == set(figure), key
        assert set(figure["by_config"]) == set(configs.NAMES)
    for goal in document["summary"]["goals"]:
        assert set(goal) == {"key", "issue", "title", "target", "measured", "met", "detail"}
    markdown = markdown_path.read_text()
    assert markdown.startswith("# Benchmark: this stack against Airflow's defaults and the official compose")
    assert "task_queued_timeout overridden to 60 s in every configuration" in markdown
    for heading in (
        "Goals",
        "I/O fan-out",
        "Overload",
        "No-op workload",
        "Stack",
        "CPU per no-op task by service",
        "Idle CPU by service",
        "Postgres server connections",
        "Memory by service",
        "Sessions",
    ):
        rows = table_rows(markdown, heading)
        assert len(rows) >= 3, heading
        if heading != "Overload":  # two tables: the figures and the sessions' counts
            widths = {row.count("|") for row in rows}
            assert len(widths) == 1, f"{heading}: rows of different widths {widths}"
    assert markdown.count("**no**") == 12
    assert (
        "| Throughput, 1 worker | tasks/s | higher | 2.60 (2.50-2.70) | 2.10 (2.00-2.20) | 2.00 | 2.00 "
        "| 1.24x | 1.30x |" in markdown
    )
    assert (
        "| Throughput over the wave, 4 workers | tasks/s | higher | 1.10 | 0.950 | 0.700 | 1.16x | 1.57x |"
        in markdown
    )
    assert "| compose #1 | 24 | 16 | 8 | 0 | 0 (0) | 0 | 240.0 | 16 | 120 |" in markdown
    assert "| tuned #1 | 24 | 22 | 2 | 0 | 3 (3) | 0 | 240.0 | 16 | 60 |" in markdown
    assert "| **all services** | **0.330** | **0.300** | **0.300** |" in markdown
    assert "| 4 | 18 | n/a | n/a | 21 |" in markdown


def test_partial_results_render_with_the_error() -> None:
    results = synthetic_results(good=True)
    results.sessions = results.sessions[:1]
    results.sessions[0].error = "docker compose up failed (exit 1):\nairflow-init exited | 1"
    results.status, results.error = "failed", "docker compose up failed"
    markdown = report.markdown(results)
    assert "**Status: failed**: docker compose up failed" in markdown
    assert "airflow-init exited / 1" in markdown
    assert goals_by_key(results)["throughput_w1"].met is None  # no official session to compare with
    empty = Results(started_at="t", settings=plan.Settings(), plan=[])
    assert "Not measured in this run." in report.markdown(empty)


# --- the results record -------------------------------------------------------------------------------
def test_results_round_trip_through_json(tmp_path: Path) -> None:
    results = synthetic_results(good=False)
    path = tmp_path / "r.json"
    report.write(results, path)  # fills results.summary
    assert results.summary is not None
    again = record.read(path)
    assert again == results
    assert isinstance(again.sessions[0].spec.noop_workers, tuple)
    assert isinstance(again.summary.figures["throughput_w1"].by_config["tuned"], stats.Spread)
    assert record.dumps(again) == path.read_text()


def test_results_json_is_readable() -> None:
    results = synthetic_results(good=True)
    document = json.loads(record.dumps(results))
    settings = document["settings"]
    assert settings["results_dir"] == "bench/results"  # no machine paths
    assert settings["failover_tasks"] == 50
    assert settings["overload_task_seconds"] == 75
    assert settings["fanout_workers"] == [1, 2, 4]
    tuned = document["sessions"][0]
    assert tuned["idle"]["memory"]["total_gib"] == pytest.approx(1.6, abs=1e-3)
    assert tuned["idle"]["cpu"]["total_cores"] == pytest.approx(0.15)
    assert tuned["noop"][0]["cpu"]["per_task_total"] == pytest.approx(0.2)
    assert tuned["noop"][0]["cpu"]["biggest"] == "airflow-worker"
    assert tuned["ceilings"][0]["limited_by"]
    assert tuned["overload"]["stuck"] == {"events": 0, "task_instances": 0, "tries_exceeded": 0}


def test_reading_checks_the_schema_and_says_where_a_value_is_wrong(tmp_path: Path) -> None:
    old = REPO / "bench" / "results" / "2026-11-21T16-46-24Z.json"
    with pytest.raises(ValueError, match="airflow-stack-bench/1"):
        record.read(old)
    document = json.loads(record.dumps(synthetic_results(good=True)))
    document["sessions"][0]["repetition"] = "one"
    with pytest.raises(ValueError, match=r"\$\.sessions\[0\]\.repetition: expected an integer"):
        record.loads(json.dumps(document))
    document["sessions"][0]["repetition"] = 1
    del document["sessions"][0]["noop"][0]["figures"]["throughput"]
    with pytest.raises(ValueError, match=r"RunFigures needs 'throughput'"):
        record.loads(json.dumps(document))


def test_reading_ignores_derived_and_unknown_keys_and_fills_defaults() -> None:
    document = json.loads(record.dumps(Results(started_at="t", settings=plan.Settings(tasks=7), plan=[])))
    document["a_later_key"] = {"anything": 1}
    del document["images"]
    results = record.loads(json.dumps(document))
    assert results.settings.tasks == 7
    assert results.images == {}
    assert results.settings.results_dir == REPO / "bench" / "results"
