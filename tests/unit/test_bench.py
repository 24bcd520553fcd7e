"""The benchmark's code keeps working without a stack: statistics on known numbers, SQL and parsing on
synthetic rows, the workloads driven against a fake stack, the report from a synthetic result set
(goals met and not met, with by how much), and the compose overrides resolved by `docker compose
config` (the CLI only, no engine): the official one really removes the tuning, the direct one really
bypasses PgBouncer, and the benchmark's DAG folder replaces the user's."""

from __future__ import annotations

import configparser
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench import limits, measure, plan, report, session, stack, stats, workloads
from bench.__main__ import parse_args
from bench.errors import BenchError
from bench.measure import MemorySnapshot, RunFigures, RunRow, TaskRow
from tests.unit.compose import REPO, SECRETS

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


def test_median_spread_and_ratio() -> None:
    assert stats.median([3.0, 1.0, 2.0]) == 2.0
    assert stats.median([4.0, 1.0, 3.0, 2.0]) == 2.5
    spread = stats.spread([2.0, None, 6.0, 4.0])
    assert spread == stats.Spread(n=3, median=4.0, min=2.0, max=6.0)
    assert spread.as_dict() == {"n": 3, "median": 4.0, "min": 2.0, "max": 6.0}
    assert stats.spread([None]) is None
    assert stats.ratio(3.0, 2.0) == 1.5
    assert stats.ratio(3.0, 0.0) is None
    assert stats.ratio(None, 2.0) is None


def test_peak_overlap() -> None:
    assert stats.peak_overlap([]) == 0
    assert stats.peak_overlap([(0, 10), (1, 2), (3, 4), (3.5, 5)]) == 3
    # A slot freed and taken at the same instant is not two at once.
    assert stats.peak_overlap([(0, 1), (1, 2), (2, 3)]) == 1


# --- SQL and parsing ----------------------------------------------------------------------------------
def test_sql_literals_escape_quotes() -> None:
    assert measure.sql_literal("bench__x") == "'bench__x'"
    assert measure.sql_literal("it's") == "'it''s'"
    with pytest.raises(ValueError, match="NUL"):
        measure.sql_literal("a\x00b")
    sql = measure.task_rows_sql("bench_noop", "run'; DROP TABLE job; --")
    assert "'run''; DROP TABLE job; --'" in sql


@pytest.fixture(scope="module")
def airflow_columns() -> dict[str, set[str]]:
    from airflow.jobs.job import Job
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance

    return {
        "task_instance": {c.name for c in TaskInstance.__table__.columns},
        "dag_run": {c.name for c in DagRun.__table__.columns},
        "job": {c.name for c in Job.__table__.columns},
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
        ]
    )
    for columns in used.values():
        for column in columns:
            assert re.search(rf"\b{column}\b", texts), column
    assert "to_timestamp(1.500000)" in measure.started_after_sql("d", "r", "t", 1.5)
    assert "backend_type = 'client backend'" in measure.CONNECTIONS_SQL
    assert "pg_backend_pid()" in measure.CONNECTIONS_SQL


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
    assert set(figures.as_dict()) >= {"throughput", "latency_p50", "latency_p95", "trigger_to_first_start"}


def test_run_figures_of_an_unfinished_run_are_missing_not_zero() -> None:
    figures = measure.run_figures(RunRow("running", 0.0, 0.5, None), synthetic_tasks()[:2], "noop")
    assert figures.run_seconds is None
    assert figures.throughput is None


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
        [("airflow-worker", GIB), ("airflow-worker", GIB // 2), ("redis", GIB // 4)]
    )
    assert snapshot.services == {"airflow-worker": GIB + GIB // 2, "redis": GIB // 4}
    assert snapshot.containers == {"airflow-worker": 2, "redis": 1}
    assert snapshot.total_gib == pytest.approx(1.75)
    assert snapshot.as_dict()["total_gib"] == 1.75


def test_connection_sampler_keeps_the_maximum_and_counts_errors() -> None:
    values: Iterator[int | Exception] = iter([3, RuntimeError("exec failed"), 7, 5])

    def query() -> int:
        value = next(values, 4)
        if isinstance(value, Exception):
            raise value
        return value

    sampler = measure.ConnectionSampler(query, interval=0.001).start()
    deadline = 200
    while len(sampler.samples) < 4 and deadline:
        deadline -= 1
        sampler._stop.wait(0.01)
    sampler.stop()
    summary = sampler.as_dict()
    assert summary["max"] == 7
    assert summary["errors"] == 1
    assert "exec failed" in str(summary["first_error"])


# --- workloads against a fake stack -------------------------------------------------------------------
class FakeContainer:
    def __init__(self, hostname: str) -> None:
        self.attrs = {"Config": {"Hostname": hostname}}


class FakeStack:
    """A stack whose metadata database plays back a tiny run of four mapped tasks."""

    def __init__(self, end_state: str = "success") -> None:
        self.end_state = end_state
        self.polls = 0
        self.run_id = ""
        self.killed: list[FakeContainer] = []
        self.queries: list[str] = []
        self.schedulers = [FakeContainer("aaa111"), FakeContainer("bbb222")]
        self.memory_samples = 0

    def sql(self, query: str) -> list[list[str]]:
        self.queries.append(query)
        if "pg_stat_activity" in query:
            return [["9"]]
        if "FROM dag_run r" in query:  # progress: each new run goes running, running, then ends
            run_id = re.findall(r"run_id = '([^']+)'", query)[-1]
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

    def containers(self, service: str | None = None) -> list[FakeContainer]:
        assert service == "airflow-scheduler"
        return self.schedulers

    def kill(self, container: FakeContainer) -> None:
        self.killed.append(container)


class FakeApi:
    def __init__(self) -> None:
        self.triggered: list[tuple[str, str, dict[str, object]]] = []

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, object]) -> None:
        self.triggered.append((dag_id, run_id, conf))


def test_mapped_run_on_a_tiny_workload() -> None:
    fake, api = FakeStack(), FakeApi()
    result = workloads.mapped_run(
        fake, api, label="tuned-w1", workers=1, count=4, timeout=30, poll=0, sample_interval=0.01
    )
    (dag_id, run_id, conf), *_ = api.triggered
    assert dag_id == "bench_noop"
    assert conf == {"count": 4}
    assert run_id.startswith("bench__tuned-w1__")
    assert result["state"] == "success"
    assert result["problems"] == []
    assert result["figures"]["throughput"] == pytest.approx(0.4)
    assert result["connections"]["max"] == 9
    assert result["memory_load"]["total_gib"] == 1.0
    assert fake.memory_samples == 1
    json.dumps(result)  # JSON-ready


def test_a_failed_run_stops_the_benchmark_unless_allowed() -> None:
    with pytest.raises(BenchError, match="run ended failed"):
        workloads.mapped_run(
            FakeStack("failed"), FakeApi(), label="x", workers=1, count=4, timeout=30, poll=0
        )
    result = workloads.mapped_run(
        FakeStack("failed"), FakeApi(), label="x", workers=1, count=4, timeout=30, poll=0, allow_failed=True
    )
    assert result["problems"] == ["run ended failed"]


def test_a_run_that_never_ends_times_out() -> None:
    class Stuck(FakeStack):
        def sql(self, query: str) -> list[list[str]]:
            if "FROM dag_run r" in query:
                return [["running", "0", "0", "4"]]
            return super().sql(query)

    with pytest.raises(BenchError, match="not finished"):
        workloads.mapped_run(Stuck(), FakeApi(), label="x", workers=1, count=4, timeout=0, poll=0)


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
    assert result["killed_hostname"] == "bbb222"
    assert result["killed_was_busiest"] is True
    assert result["killed_job_ids"] == [2]
    assert result["state"] == "success"
    assert set(result["figures"]) >= {"next_start_seconds", "survivor_queued_seconds"}
    json.dumps(result)


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

    def up(self, timeout: float) -> float:
        self.calls.append("up")
        if self.fail_up:
            raise BenchError("docker compose up failed (exit 1):\nairflow-init exited 1")
        return 71.5

    def down(self) -> None:
        self.calls.append("down")

    def scale_workers(self, count: int, timeout: float) -> float:
        self.calls.append(f"scale {count}")
        return 40.0

    def url(self, port_key: str) -> str:
        return "http://127.0.0.1:28080"

    def diagnostics(self) -> str:
        return "ps and logs"


class FakeAirflowApi(FakeApi):
    def __init__(self, base_url: str, username: str, password: str) -> None:
        super().__init__()
        assert (username, password) == ("admin", "secret")

    def wait_for_dag(self, dag_id: str) -> float:
        return 3.0

    def unpause(self, dag_id: str) -> None:
        pass


def run_fake_session(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, spec: plan.SessionSpec, fake: FakeSessionStack
) -> tuple[dict[str, object], list[str]]:
    monkeypatch.setattr(session, "new_stack", lambda *args, **kwargs: fake)
    monkeypatch.setattr(session, "AirflowApi", FakeAirflowApi)
    monkeypatch.setattr(workloads.time, "sleep", lambda _: None)
    settings = plan.Settings(tasks=4, settle_seconds=0)
    prepared = session.Prepared(with_grafana=False, images={})
    record: dict[str, object] = {}
    lines: list[str] = []
    try:
        session.run_session(
            spec,
            settings,
            prepared,
            tmp_path / "bench.env",
            tmp_path / "diag.log",
            record,
            lambda: None,
            lines.append,
        )
    finally:
        record["log"] = lines
    return record, fake.calls


def test_a_session_runs_every_step_and_always_tears_down(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spec = plan.SessionSpec("tuned", 1, (1, 2, 4), failover=True, idle_memory=True)
    record, calls = run_fake_session(monkeypatch, tmp_path, spec, FakeSessionStack())
    assert calls == ["down", "up", "scale 2", "scale 4", "scale 2", "down"]
    assert record["error"] is None
    assert record["up_seconds"] == 71.5
    assert record["scale_seconds"] == {"1->2": 40.0, "2->4": 40.0, "4->2": 40.0}
    assert [run["workers"] for run in record["runs"]] == [1, 2, 4]
    assert record["idle_memory"]["total_gib"] == 1.0
    assert record["failover"]["state"] == "success"
    assert record["failover"]["killed_hostname"] == "bbb222"
    assert any("tearing down" in line for line in record["log"])
    # The record is what the report reads: one session of each configuration renders.
    official = {**record, "config": "official"}
    results = {
        "status": "complete",
        "settings": plan.Settings(tasks=4).as_dict(),
        "sessions": [record, official],
    }
    json.dumps(results)
    figures = report.summarise(results)["figures"]
    assert figures["throughput_w1"]["ratio_tuned_official"] == pytest.approx(1.0)
    assert "| Throughput, 1 worker |" in report.markdown(results)


def test_a_failed_session_keeps_its_error_and_logs_and_tears_down(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spec = plan.SessionSpec("official", 2, (1, 2), failover=True, idle_memory=True)
    with pytest.raises(BenchError, match="airflow-init exited 1"):
        run_fake_session(monkeypatch, tmp_path, spec, fake := FakeSessionStack(fail_up=True))
    assert fake.calls == ["down", "up", "down"]
    assert (tmp_path / "diag.log").read_text() == "ps and logs"


# --- plan and settings --------------------------------------------------------------------------------
def test_default_plan_interleaves_and_fits_the_budget() -> None:
    settings = plan.Settings()
    sessions = plan.build_plan(settings)
    assert [s.config for s in sessions] == [
        "tuned",
        "official",
        "direct",
        "tuned",
        "official",
        "tuned",
        "official",
    ]
    assert sessions[0].workers == (1, 2, 4)
    assert sessions[2].workers == (1, 2, 4)
    assert not sessions[2].failover
    assert all(s.workers == (1, 2) for s in sessions[3:])
    assert plan.estimate_seconds(sessions, settings) < 45 * 60


def test_quick_plan_is_one_pair_without_4_workers_or_direct_postgres() -> None:
    settings = plan.Settings.quick_pass()
    sessions = plan.build_plan(settings)
    assert (settings.repetitions, settings.tasks) == (1, 20)
    assert [s.config for s in sessions] == ["tuned", "official"]
    assert all(4 not in s.workers for s in sessions)
    assert plan.estimate_seconds(sessions, settings) < 12 * 60


def test_tuning_pass_runs_one_configuration_only() -> None:
    settings = parse_args(["--quick", "--only", "tuned"])
    assert [s.config for s in plan.build_plan(settings)] == ["tuned"]
    full = plan.build_plan(plan.Settings(only="official"))
    assert [s.config for s in full] == ["official"] * 3
    with pytest.raises(SystemExit):
        parse_args(["--only", "direct"])


def test_command_line() -> None:
    assert parse_args([]) == plan.Settings(offline=os.environ.get("OFFLINE") == "1")
    quick = parse_args(["--quick", "--offline"])
    assert quick.quick
    assert quick.offline
    assert quick.tasks == 20
    assert parse_args(["--repetitions", "5", "--tasks", "50"]).repetitions == 5
    with pytest.raises(SystemExit):
        parse_args(["--tasks", "5000"])


# --- the stack's pure parts ---------------------------------------------------------------------------
def test_env_file_has_fresh_secrets_own_ports_and_profiles() -> None:
    example = (REPO / ".env.example").read_text()
    first = stack.assignments(stack.env_file_text(example, with_grafana=False))
    second = stack.assignments(stack.env_file_text(example, with_grafana=True))
    for secret in SECRETS:
        assert first[secret], f"{secret} empty"
        assert first[secret] != second[secret], f"{secret} not fresh"
    assert first["AIRFLOW_API_PORT"] == "28080"
    assert first["FLOWER_PORT"] == "25555"
    assert first["COMPOSE_PROFILES"] == ""
    assert second["COMPOSE_PROFILES"] == "grafana"
    assert first["AIRFLOW_WORKER_STOP_GRACE_PERIOD"] == "30s"


def test_env_file_is_private(tmp_path: Path) -> None:
    path = stack.write_env_file(tmp_path / "bench.env", "A=1\n")
    assert path.stat().st_mode & 0o777 == 0o600


def test_compose_environment_keeps_images_and_drops_what_the_env_file_sets() -> None:
    caller = {
        "PATH": "/bin",
        "COMPOSE_PROJECT_NAME": "airflow",
        "COMPOSE_PROFILES": "grafana",
        "POSTGRES_PASSWORD": "from-the-shell",
        "POSTGRES_IMAGE": "mirror/postgres:17",
    }
    offline = stack.assignments((REPO / "offline" / "images.env").read_text())
    environment = stack.compose_environment(
        caller, {"POSTGRES_PASSWORD": "x", "COMPOSE_PROFILES": ""}, offline
    )
    assert "COMPOSE_PROJECT_NAME" not in environment
    assert "COMPOSE_PROFILES" not in environment
    assert "POSTGRES_PASSWORD" not in environment
    assert environment["POSTGRES_IMAGE"] == "mirror/postgres:17"  # what the caller exported wins
    assert environment["REDIS_IMAGE"] == offline["REDIS_IMAGE"]  # the rest of the offline kit
    assert stack.offline_images({"OFFLINE": "1"}, offline=False) == offline
    assert stack.offline_images({}, offline=False) == {}


def test_compose_command_names_the_project_and_the_overrides_in_order(tmp_path: Path) -> None:
    command = stack.compose_command("official", tmp_path / "bench.env", "up", "--wait")
    assert command[:5] == ["docker", "compose", "--project-name", "airflow-bench", "--project-directory"]
    files = [command[i + 1] for i, arg in enumerate(command) if arg == "--file"]
    assert files == [
        str(REPO / "docker-compose.yml"),
        str(REPO / "bench" / "bench.override.yml"),
        str(REPO / "bench" / "official-defaults.override.yml"),
    ]
    assert command[-2:] == ["up", "--wait"]
    with pytest.raises(ValueError, match="unknown configuration"):
        stack.compose_files("fast")


# --- the compose overrides ----------------------------------------------------------------------------
OVERRIDE_FILES = sorted((REPO / "bench").glob("*.override.yml"))
AIRFLOW_ENV_ONLY = {
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__METRICS__STATSD_HOST",
    "AIRFLOW__CELERY__FLOWER_BASIC_AUTH",
}


@pytest.mark.parametrize("path", OVERRIDE_FILES, ids=[p.name for p in OVERRIDE_FILES])
def test_override_parses_as_yaml_and_keeps_secrets_without_defaults(path: Path) -> None:
    document = yaml.safe_load(path.read_text())  # an alias to docker-compose.yml's anchors would fail here
    assert set(document) <= {"services"} | {key for key in document if key.startswith("x-")}
    assert document["services"]
    for secret in SECRETS:
        assert not re.search(rf"\${{{secret}:?-", path.read_text()), f"{secret} has a default in {path.name}"


def test_the_three_overrides_are_what_the_benchmark_uses() -> None:
    used = {name for files in stack.OVERRIDES.values() for name in files}
    assert used == {f"bench/{p.name}" for p in OVERRIDE_FILES}


@pytest.fixture(scope="module")
def bench_env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    text = stack.env_file_text((REPO / ".env.example").read_text(), with_grafana=True)
    return stack.write_env_file(tmp_path_factory.mktemp("bench") / "bench.env", text)


def resolve(files: list[str], env_file: Path) -> dict[str, Any]:
    command = ["docker", "compose", "--project-directory", str(REPO)]
    for name in files:
        command += ["--file", str(REPO / name)]
    command += ["--env-file", str(env_file), "--profile", "grafana", "config", "--format", "json"]
    env = {key: os.environ[key] for key in ("PATH", "HOME") if key in os.environ}
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def bench_stack(config: str, env_file: Path) -> stack.BenchStack:
    """The benchmark's own stack object: its command line and environment (only `config` is run)."""
    environment = stack.compose_environment(
        {key: os.environ[key] for key in ("PATH", "HOME") if key in os.environ},
        stack.assignments(env_file.read_text()),
        {},
    )
    return stack.BenchStack(config=config, env_file=env_file, environment=environment, log=lambda _: None)


@pytest.fixture(scope="module")
def resolved(bench_env_file: Path) -> dict[str, dict[str, Any]]:
    """Each configuration resolved through the benchmark's own compose command, and the base file alone."""
    configs = {
        config: json.loads(
            bench_stack(config, bench_env_file).compose("--profile", "grafana", "config", "--format", "json")
        )
        for config in stack.OVERRIDES
    }
    configs["base"] = resolve(["docker-compose.yml"], bench_env_file)
    return configs


def test_benchmark_compose_names_its_own_project(resolved: dict[str, dict[str, Any]]) -> None:
    for config in stack.OVERRIDES:
        assert resolved[config]["name"] == "airflow-bench"


def test_a_compose_failure_is_a_clear_benchmark_error(bench_env_file: Path, tmp_path: Path) -> None:
    lines = [
        line for line in bench_env_file.read_text().splitlines() if not line.startswith("REDIS_PASSWORD=")
    ]
    broken = stack.write_env_file(tmp_path / "broken.env", "\n".join(lines) + "\nREDIS_PASSWORD=\n")
    with pytest.raises(BenchError, match=r"docker compose config failed \(exit \d+\):\n.*REDIS_PASSWORD"):
        bench_stack("tuned", broken).compose("config")


def test_service_images_of_the_resolved_file(resolved: dict[str, dict[str, Any]]) -> None:
    images = {i.service: i for i in stack.service_images(resolved["official"])}
    assert images["airflow-worker"].built
    assert not images["postgres"].built
    assert images["airflow-worker"].image == images["airflow-scheduler"].image


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
    for config in stack.OVERRIDES:
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


def test_tuned_configuration_reads_config_airflow_cfg(resolved: dict[str, dict[str, Any]]) -> None:
    for config in ("tuned", "direct"):
        for name, service in airflow_services(resolved[config]).items():
            assert service["environment"]["AIRFLOW_CONFIG"] == "/opt/airflow/config/airflow.cfg", name
            assert mounts(service)["/opt/airflow/config"]["source"] == str(REPO / "config")


def host_of(url: str) -> str:
    return url.split("@", 1)[1].split("/", 1)[0]


def test_direct_override_bypasses_pgbouncer_everywhere(resolved: dict[str, dict[str, Any]]) -> None:
    tuned, direct = resolved["tuned"], resolved["direct"]
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
    official = limits.ceilings("official", [1, 2])
    assert [c.ceiling for c in official] == [16, 16]  # Airflow's defaults: 16 per DAG, 16 per worker
    tuned = limits.read_settings(REPO / "config" / "airflow.cfg")
    assert limits.ceilings("tuned", [1])[0].ceiling == min(
        tuned[("core", "parallelism")] * 2,
        tuned[("core", "max_active_tasks_per_dag")],
        tuned[("celery", "worker_concurrency")],
    )


# --- the DAG ------------------------------------------------------------------------------------------
def test_benchmark_dag_maps_noop_tasks_from_conf() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "bench" / "dags"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags[workloads.DAG_ID]
    assert {t.task_id for t in dag.tasks} == {"plan", workloads.MAPPED_TASK}
    assert type(dag.get_task(workloads.MAPPED_TASK)).__name__.endswith("MappedOperator")
    assert dag.params["count"] == 100
    assert all(t.retries == 0 for t in dag.tasks)
    source = (REPO / "bench" / "dags" / "bench_noop.py").read_text()
    for override in ("max_active_tasks=", "pool=", "max_active_tis_per_dag", "executor="):
        assert override not in source, f"the DAG overrides {override}: the configuration must decide"


# --- the report ---------------------------------------------------------------------------------------
def run_dict(
    workers: int, throughput: float, connections: int, load_gib: float | None = None
) -> dict[str, Any]:
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
    memory = None
    if load_gib is not None:
        memory = measure.memory_snapshot(
            [("airflow-worker", int(load_gib * GIB * 0.6)), ("postgres", int(load_gib * GIB * 0.4))]
        ).as_dict()
    return {
        "kind": "mapped",
        "label": f"x-w{workers}",
        "workers": workers,
        "tasks_requested": 100,
        "run_id": f"bench__x-w{workers}__0",
        "state": "success",
        "problems": [],
        "wall_seconds": 100 / throughput,
        "figures": figures.as_dict(),
        "connections": {"max": connections, "samples": 60, "min": 3, "errors": 0, "first_error": None},
        "memory_load": memory,
    }


def session_dict(
    config: str,
    repetition: int,
    *,
    throughput: float,
    idle_gib: float,
    connections: tuple[int, ...],
    failover: float | None,
    workers: tuple[int, ...] = (1, 2),
) -> dict[str, Any]:
    idle = measure.memory_snapshot(
        [
            ("airflow-scheduler", int(idle_gib * GIB * 0.4)),
            ("airflow-worker", int(idle_gib * GIB * 0.35)),
            ("prometheus", int(idle_gib * GIB * 0.25)),
        ]
    )
    session: dict[str, Any] = {
        "config": config,
        "repetition": repetition,
        "with_grafana": True,
        "started_at": "2026-01-01T00:00:00+00:00",
        "up_seconds": 70.0 + repetition,
        "ceilings": [c.as_dict() for c in limits.ceilings(config, [1, 2, 4])],
        "idle_memory": idle.as_dict() if config != "direct" else None,
        "runs": [
            run_dict(n, throughput * (1 + 0.1 * i), connections[i], idle_gib + 0.5)
            for i, n in enumerate(workers)
        ],
        "error": None,
    }
    if failover is not None:
        session["failover"] = {
            "kind": "failover",
            "state": "success",
            "problems": [],
            "figures": measure.FailoverFigures(failover, failover + 1, 5, 8).as_dict(),
        }
    return session


def synthetic_results(*, good: bool, quick: bool = False) -> dict[str, Any]:
    sessions = []
    for rep in range(1, 2 if quick else 4):
        tuned_workers = (1, 2) if quick or rep > 1 else (1, 2, 4)
        sessions.append(
            session_dict(
                "tuned",
                rep,
                throughput=(3.0 if good else 2.4) + 0.1 * rep,
                idle_gib=1.6 if good else 2.31,
                connections=(12, 13, 13) if good else (12, 15, 18),
                failover=(4.0 if good else 14.2) + 0.1 * (rep - 2),
                workers=tuned_workers,
            )
        )
        sessions.append(
            session_dict(
                "official", rep, throughput=1.9 + 0.1 * rep, idle_gib=2.4, connections=(20, 24), failover=6.0
            )
        )
        if rep == 1 and not quick:
            sessions.append(
                session_dict(
                    "direct",
                    1,
                    throughput=2.0,
                    idle_gib=1.5,
                    connections=(20, 31, 52) if good else (20, 21, 21),
                    failover=None,
                    workers=(1, 2, 4),
                )
            )
    return {
        "started_at": "2026-01-01T00:00:00+00:00",
        "status": "complete",
        "error": None,
        "settings": plan.Settings(quick=quick).as_dict(),
        "host": {
            "cpus": 2,
            "memory_gib": 23.4,
            "docker": "28.2.2",
            "compose": "Docker Compose version 2.26.1",
        },
        "sessions": sessions,
    }


def goals_by_key(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {goal["key"]: goal for goal in report.summarise(results)["goals"]}


def test_summary_medians_spread_and_ratios() -> None:
    figures = report.summarise(synthetic_results(good=True))["figures"]
    throughput = figures["throughput_w1"]
    assert throughput["tuned"] == {
        "n": 3,
        "median": pytest.approx(3.2),
        "min": pytest.approx(3.1),
        "max": pytest.approx(3.3),
    }
    assert throughput["official"]["median"] == pytest.approx(2.1)
    assert throughput["ratio_tuned_official"] == pytest.approx(3.2 / 2.1)
    assert figures["connections_w4"]["tuned"]["n"] == 1
    assert figures["connections_w4"]["direct"]["median"] == 52
    assert figures["connections_w4"]["official"] is None
    assert figures["connections_w4"]["ratio_tuned_official"] is None
    assert figures["up_seconds"]["tuned"]["median"] == 72.0
    assert figures["idle_memory"]["tuned"]["median"] == pytest.approx(1.6, abs=1e-3)
    assert figures["failover_next_start"]["tuned"]["median"] == pytest.approx(4.0)


def test_goals_met() -> None:
    goals = goals_by_key(synthetic_results(good=True))
    assert {key: goal["met"] for key, goal in goals.items()} == {
        "throughput_w1": True,
        "throughput_w2": True,
        "idle_memory": True,
        "connections": True,
        "failover": True,
    }
    assert goals["connections"]["measured"] == "PgBouncer 12 → 13 → 13; direct 20 → 31 → 52"


def test_goals_not_met_say_by_how_much() -> None:
    goals = goals_by_key(synthetic_results(good=False))
    assert not any(goal["met"] for goal in goals.values())
    # 2.6 vs 2.1 tasks/s = 1.24x: 0.26x short; 3.15 tasks/s needed.
    assert "short by 0.26x" in goals["throughput_w1"]["detail"]
    assert "3.15 tasks/s" in goals["throughput_w1"]["detail"]
    assert "max_active_tasks_per_dag" in goals["throughput_w1"]["detail"]
    assert goals["idle_memory"]["detail"].startswith("over by 0.31 GiB (16%)")
    assert "airflow-scheduler" in goals["idle_memory"]["detail"]
    assert "rose by 6 (allowed +2, over by 4)" in goals["connections"]["detail"]
    assert "without PgBouncer rose only by 1" in goals["connections"]["detail"]
    assert goals["failover"]["measured"] == "14.2 s"
    assert goals["failover"]["detail"].startswith("over by 4.2 s")


def test_quick_results_leave_the_connection_goal_unmeasured() -> None:
    goals = goals_by_key(synthetic_results(good=True, quick=True))
    assert goals["connections"]["met"] is None
    assert "--quick" in goals["connections"]["detail"]
    assert goals["throughput_w1"]["met"] is True


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
    assert document["schema"] == report.SCHEMA
    assert {"started_at", "status", "settings", "host", "sessions", "summary"} <= set(document)
    for key, figure in document["summary"]["figures"].items():
        assert {"label", "unit", "better", "tuned", "official", "direct", "ratio_tuned_official"} <= set(
            figure
        ), key
    for goal in document["summary"]["goals"]:
        assert set(goal) == {"key", "title", "target", "measured", "met", "detail"}
    markdown = markdown_path.read_text()
    assert markdown.startswith("# Benchmark: tuned configuration vs Airflow's official defaults")
    for heading in ("Goals", "Figures", "Postgres server connections", "Memory by service", "Sessions"):
        rows = table_rows(markdown, heading)
        assert len(rows) >= 3, heading
        widths = {row.count("|") for row in rows}
        assert len(widths) == 1, f"{heading}: rows of different widths {widths}"
    assert markdown.count("**no**") == 5
    assert (
        "| Throughput, 1 worker | tasks/s | higher | 2.60 (2.50-2.70) | 2.10 (2.00-2.20) | 1.24x |"
        in markdown
    )
    assert "| 4 | 18 | n/a | 21 |" in markdown


def test_partial_results_render_with_the_error(tmp_path: Path) -> None:
    results = synthetic_results(good=True)
    results["sessions"] = results["sessions"][:1]
    results["sessions"][0]["error"] = "docker compose up failed (exit 1):\nairflow-init exited | 1"
    results["status"], results["error"] = "failed", "docker compose up failed"
    markdown = report.markdown(results)
    assert "**Status: failed**: docker compose up failed" in markdown
    assert "airflow-init exited / 1" in markdown
    assert goals_by_key(results)["throughput_w1"]["met"] is None  # no official session to compare with
