"""The triggerer's and dag-processor's health check (scripts/job_health.py): where it reads Airflow's
threshold and how it opens the database URL. Against the installed Airflow's defaults:
test_postgres_exporter_queries; against the live job table: test_01."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts import job_health

VARIABLE = "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD"


@pytest.fixture
def config_file(tmp_path: Path) -> str:
    path = tmp_path / "airflow.cfg"
    path.write_text("[triggerer]\ntriggerer_health_check_threshold = 45\ncapacity = 200\n")
    return str(path)


def test_the_environment_wins_over_the_file(config_file: str) -> None:
    assert job_health.threshold("TriggererJob", {VARIABLE: "12.5"}, config_file) == 12.5


def test_the_file_wins_over_airflows_default(config_file: str) -> None:
    assert job_health.threshold("TriggererJob", {}, config_file) == 45


def test_airflows_default_when_neither_sets_it(config_file: str, tmp_path: Path) -> None:
    assert job_health.threshold("DagProcessorJob", {}, config_file) == job_health.AIRFLOW_DEFAULT_THRESHOLD
    assert job_health.threshold("TriggererJob", {}, str(tmp_path / "absent.cfg")) == 30


def test_a_sqlalchemy_url_with_a_quoted_password_is_opened_as_psycopg2_expects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict = {}
    monkeypatch.setattr(job_health.psycopg2, "connect", lambda **kwargs: seen.update(kwargs))
    job_health.connect("postgresql+psycopg2://airflow:p%40ss%2Fw%3Ard@pgbouncer:6432/airflow", timeout=3)
    assert seen | {"application_name": None} == {
        "host": "pgbouncer",
        "port": 6432,
        "user": "airflow",
        "password": "p@ss/w:rd",
        "dbname": "airflow",
        "connect_timeout": 3,
        "application_name": None,
    }


def test_an_unknown_job_type_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        job_health.main(["SchedulerJobs"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'SchedulerJobs'" in capsys.readouterr().err
