"""stackkit's pure parts: env files as Compose reads them, private env files, SQL literals, and the
compose command lines and environment. Nothing here needs Docker."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackkit import REPO, compose, envfile, sql
from stackkit.prometheus import Prometheus, wget_command
from stackkit.stack import Stack


def test_env_files_are_read_as_compose_reads_them() -> None:
    text = "# comment\n\n A = 1 \nB='two words'\nC=\"x\"\n#D=4\nE=a=b\nnot an assignment\nF=\n"
    assert envfile.parse(text) == {"A": "1", "B": "two words", "C": "x", "E": "a=b", "F": ""}


def test_values_are_set_in_place_or_appended() -> None:
    text = "# head\nA=1\n#B=2\nC=3\n"
    assert envfile.with_values(text, {"A": "9", "B": "8"}) == "# head\nA=9\n#B=2\nC=3\nB=8\n"
    assert envfile.parse(envfile.render({"A": "1", "B": ""})) == {"A": "1", "B": ""}


def test_env_files_are_private_from_the_start(tmp_path: Path) -> None:
    path = envfile.write_private(tmp_path / "new" / "stack.env", "A=1\n")
    assert path.stat().st_mode & 0o777 == 0o600
    assert envfile.read(path) == {"A": "1"}


def test_sql_literals_escape_quotes() -> None:
    assert sql.literal("bench__x") == "'bench__x'"
    assert sql.literal("it's") == "'it''s'"
    assert sql.literal(-1) == "-1"
    with pytest.raises(ValueError, match="NUL"):
        sql.literal("a\x00b")
    with pytest.raises(TypeError):
        sql.literal(True)
    query = sql.bind("WHERE run_id = {run} AND map_index = {index}", run="x'; DROP TABLE job; --", index=3)
    assert query == "WHERE run_id = 'x''; DROP TABLE job; --' AND map_index = 3"


def test_psql_rows_keep_empty_fields() -> None:
    assert sql.rows("a\t\tc\n\nd\te\n") == [["a", "", "c"], ["d", "e"]]


def test_compose_command_names_project_files_and_env_file(tmp_path: Path) -> None:
    files = [REPO / "docker-compose.yml", REPO / "tests" / "integration" / "compose.test.yml"]
    line = compose.command("p", files, tmp_path / "x.env", "ps")
    assert line == [
        "docker", "compose", "--project-name", "p", "--project-directory", str(REPO),
        "--file", str(files[0]), "--file", str(files[1]), "--env-file", str(tmp_path / "x.env"), "ps",
    ]  # fmt: skip


def test_compose_environment_leaves_out_compose_variables_and_what_the_env_file_sets() -> None:
    caller = {"PATH": "/bin", "COMPOSE_FILE": "x.yml", "REDIS_PASSWORD": "shell", "REDIS_IMAGE": "mine"}
    found = compose.environment(caller, {"REDIS_PASSWORD": "file"}, {"REDIS_IMAGE": "kit", "PG_IMAGE": "kit"})
    assert found == {"PATH": "/bin", "REDIS_IMAGE": "mine", "PG_IMAGE": "kit"}


def test_prometheus_answers_are_unwrapped_and_the_query_is_encoded() -> None:
    asked: list[str] = []

    def fetch(path_and_query: str) -> str:
        asked.append(path_and_query)
        return '{"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, "2"]}]}}'

    assert Prometheus(fetch).query('up{job="x"}') == [{"value": [1, "2"]}]
    assert asked == ["/api/v1/query?query=up%7Bjob%3D%22x%22%7D"]
    assert wget_command(asked[0]) == [
        "wget", "-q", "-O", "-", "http://127.0.0.1:9090/api/v1/query?query=up%7Bjob%3D%22x%22%7D"
    ]  # fmt: skip


def test_a_stack_reads_its_env_file_and_names_its_urls(tmp_path: Path) -> None:
    env_file = envfile.write_private(tmp_path / "s.env", "AIRFLOW_API_PORT=18080\n")
    stack = Stack("p", [REPO / "docker-compose.yml"], env_file)
    assert stack.env == {"AIRFLOW_API_PORT": "18080"}
    assert stack.url("AIRFLOW_API_PORT") == "http://127.0.0.1:18080"
