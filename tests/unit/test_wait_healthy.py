"""`scripts/wait_healthy.py` (run by `make up` and `make scale`): its decisions on constructed container
records (a crash loop fails within about a minute instead of waiting out the timeout; one-shot
airflow-init exited 0 is ready; unhealthy too long gives up), and a Docker error is one line on stderr
and exit 1, never a traceback (a fake `docker` on PATH: no engine needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from scripts import wait_healthy
from scripts.wait_healthy import (
    PROGRESS_EVERY,
    RESTARTING_GRACE,
    UNHEALTHY_GRACE,
    Container,
    Outcome,
    Verdict,
    Watch,
    due,
    first_line,
    parse_ps,
    progress,
    step,
)
from tests.unit.compose import REPO

TIMEOUT = 900.0
ENGINE_DOWN = (
    "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"
)


def container(
    service: str = "airflow-scheduler",
    state: str = "running",
    health: str = "healthy",
    exit_code: int = 0,
    restarts: int = 0,
    replica: int = 1,
) -> Container:
    return Container(f"stack-{service}-{replica}", service, state, health, exit_code, restarts)


def run(looks: Sequence[tuple[float, Sequence[Container]]]) -> Verdict:
    """The verdict after a series of looks (time in s since the start, containers seen then)."""
    watch = Watch(start=0.0)
    verdict = Verdict(Outcome.WAITING)
    for now, found in looks:
        watch, verdict = step(watch, found, now, TIMEOUT)
    return verdict


def test_all_healthy_and_init_exited_0_is_ready() -> None:
    found = [container(), container("airflow-init", "exited", "", 0), container("redis", health="")]
    assert run([(0, found)]).outcome is Outcome.READY


def test_starting_containers_are_waited_for() -> None:
    found = [container(health="starting"), container("airflow-init", "running", "")]
    assert run([(0, found), (60, found)]).outcome is Outcome.WAITING


@pytest.mark.parametrize(("state", "exit_code"), [("exited", 1), ("exited", 0), ("dead", 137)])
def test_a_long_running_service_that_exits_fails(state: str, exit_code: int) -> None:
    verdict = run([(0, [container(), container("redis", state, "", exit_code)])])
    assert verdict.outcome is Outcome.FAILED
    assert verdict.services == ("redis",)
    assert verdict.reasons == (f"redis-1: {state} (exit {exit_code})",)


def test_init_that_exits_non_zero_fails() -> None:
    verdict = run([(0, [container("airflow-init", "exited", "", 2)])])
    assert verdict.outcome is Outcome.FAILED
    assert verdict.services == ("airflow-init",)


def test_a_crash_loop_seen_as_starting_fails_on_its_growing_restart_count() -> None:
    """Between two looks it exited and was restarted: it only ever looks "starting"."""
    looks = [(t, [container(health="starting", restarts=n)]) for t, n in [(0, 5), (3, 6)]]
    assert run(looks).outcome is Outcome.WAITING, "one restart is not yet a loop (a worker may self-heal)"
    verdict = run([*looks, (6, [container(health="starting", restarts=7)])])
    assert verdict.outcome is Outcome.FAILED
    assert verdict.services == ("airflow-scheduler",)
    assert "restarted 2 times since the wait began" in verdict.reasons[0]


def test_restarts_before_the_wait_began_do_not_count() -> None:
    """`make scale` on a stack whose containers were restarted long ago."""
    found = [container(restarts=9), container("airflow-worker", restarts=4)]
    assert run([(0, found), (3, found), (6, found)]).outcome is Outcome.READY


def test_a_container_that_appears_later_counts_restarts_from_when_first_seen() -> None:
    base = container()
    new = container("airflow-worker", health="starting", replica=3, restarts=1)
    looks = [(0, [base]), (3, [base, new]), (6, [base, new])]
    assert run(looks).outcome is Outcome.WAITING


def test_restarting_fails_after_the_grace() -> None:
    restarting = [container("airflow-worker", "restarting", "", 1, restarts=3)]
    assert run([(0, restarting), (RESTARTING_GRACE - 1, restarting)]).outcome is Outcome.WAITING
    verdict = run([(0, restarting), (RESTARTING_GRACE + 1, restarting)])
    assert verdict.outcome is Outcome.FAILED
    assert verdict.reasons == (
        f"airflow-worker-1: restarting for {RESTARTING_GRACE + 1:.0f}s (crash loop: it keeps exiting)",
    )


def test_the_restarting_clock_starts_again_when_it_runs_in_between() -> None:
    restarting = [container("airflow-worker", "restarting", "", 1, restarts=3)]
    running = [container("airflow-worker", health="starting", restarts=3)]
    looks = [(0, restarting), (20, running), (40, restarting), (60, restarting)]
    assert run(looks).outcome is Outcome.WAITING


def test_a_crash_loop_fails_within_about_a_minute_with_dockers_back_off() -> None:
    """Docker restarts after 0.1, 0.2, 0.4 ... s: looks every 3 s see the count grow at once."""
    looks = [
        (t, [container("airflow-worker", "restarting" if t % 2 else "running", "starting", 1, n)])
        for t, n in [(0, 0), (3, 1), (6, 3)]
    ]
    assert run(looks).outcome is Outcome.FAILED


def test_unhealthy_gives_up_after_its_grace_and_names_it() -> None:
    sick = [container("airflow-worker", health="unhealthy"), container()]
    assert run([(0, sick), (UNHEALTHY_GRACE - 1, sick)]).outcome is Outcome.WAITING
    verdict = run([(0, sick), (UNHEALTHY_GRACE + 1, sick)])
    assert verdict.outcome is Outcome.GAVE_UP
    assert verdict.services == ("airflow-worker",)


def test_the_timeout_gives_up_on_those_still_waiting() -> None:
    slow = [container(health="starting"), container("redis")]
    verdict = run([(0, slow), (TIMEOUT + 1, slow)])
    assert verdict.outcome is Outcome.GAVE_UP
    assert verdict.services == ("airflow-scheduler",)


def test_progress_names_the_waiting_ones_and_is_printed_on_change_or_every_interval() -> None:
    line = progress([container(health="starting"), container("redis", health="")])
    assert line == "ready 1/2; waiting for: airflow-scheduler-1 (starting)"
    assert due(line, "", 0, None)
    assert not due(line, line, 10, 0)
    assert due(line, line, PROGRESS_EVERY, 0)
    assert due("ready 2/2", line, 1, 0)


def test_compose_ps_output_as_json_lines_or_one_array() -> None:
    row = '{"Name": "stack-redis-1", "Service": "redis", "State": "running", "Health": "", "ExitCode": 0}'
    assert parse_ps(row + "\n" + row) == parse_ps(f"[{row},{row}]")


def test_the_error_line_skips_compose_warnings() -> None:
    stderr = 'WARN[0000] The "X" variable is not set. Defaulting to a blank string.\nno such service: y\n'
    assert first_line(stderr) == "no such service: y"


def fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    docker = tmp_path / "docker"
    docker.write_text(f"#!/bin/sh\n{script}\n")
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")


def test_a_docker_error_is_one_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_docker(tmp_path, monkeypatch, f'echo "{ENGINE_DOWN}" >&2\necho "second line" >&2\nexit 1')
    assert wait_healthy.main([]) == 1
    out, err = capsys.readouterr()
    assert err == f"wait_healthy: docker compose ps failed: {ENGINE_DOWN}\n"
    assert out == ""


def test_docker_not_on_path_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert wait_healthy.main([]) == 1
    assert capsys.readouterr().err == "wait_healthy: docker compose ps failed: docker not found on PATH\n"


def test_the_script_prints_no_traceback_on_a_docker_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_docker(tmp_path, monkeypatch, 'echo "yaml: line 3: did not find expected key" >&2\nexit 15')
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "wait_healthy.py"), "--timeout", "5"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 1
    assert (
        result.stderr == "wait_healthy: docker compose ps failed: yaml: line 3: did not find expected key\n"
    )


def test_a_crash_loop_reported_by_fake_docker_fails_with_the_service_and_its_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """main() end to end: `ps` says starting, `inspect` shows the restart count growing at each look."""
    counter = tmp_path / "count"
    counter.write_text("0")
    ps = '{"Name":"stack-redis-1","Service":"redis","State":"running","Health":"starting","ExitCode":0}'
    fake_docker(
        tmp_path,
        monkeypatch,
        f"""case "$1 $2" in
  "compose ps") echo '{ps}' ;;
  "compose logs") echo "redis log line" ;;
  inspect*) n=$(cat {counter}); echo $((n + 1)) > {counter}
            echo '[{{"Name":"/stack-redis-1","RestartCount":'$n'}}]' ;;
esac""",
    )
    monkeypatch.setattr(wait_healthy, "POLL_EVERY", 0.0)
    assert wait_healthy.main([]) == 1
    out, err = capfd.readouterr()
    assert "ready 0/1; waiting for: redis-1 (starting)" in out
    assert "redis log line" in out
    assert "redis-1: restarted 2 times since the wait began" in err
    assert "redis: its last log lines:" in err
    assert "Traceback" not in err
