"""The config-driven DAG factory: one DAG per entry of config/dag_factory.yml, and a broken config
(bad YAML, a bad entry, a schedule Airflow refuses) reported as the file's import error, naming the entry."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from stack_patterns.dag_factory import DagFactoryConfigError, load_pipeline_specs, parse_entry
from stack_patterns.paths import config_file

from tests.unit.example_support import REPO, dagbag

FACTORY_FILE = "example_dag_factory.py"
CONFIG = REPO / "config" / "dag_factory.yml"
GOOD_ENTRY = {"name": "good", "description": "A good one.", "owner": "me", "tables": ["a", "b"]}


def factory_import_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> str:
    path = tmp_path / "dag_factory.yml"
    path.write_text(text)
    monkeypatch.setenv("STACK_DAG_FACTORY_CONFIG", str(path))
    bag = dagbag(FACTORY_FILE)
    assert not bag.dags, "a broken config must publish no DAG at all"
    assert len(bag.import_errors) == 1
    return next(iter(bag.import_errors.values()))


def test_one_dag_per_entry_of_the_shipped_config() -> None:
    entries = yaml.safe_load(CONFIG.read_text())["pipelines"]
    assert 2 <= len(entries) <= 3
    bag = dagbag(FACTORY_FILE)
    assert not bag.import_errors, bag.import_errors
    assert set(bag.dags) == {f"factory_{entry['name']}" for entry in entries}
    for entry in entries:
        dag = bag.dags[f"factory_{entry['name']}"]
        assert dag.description == entry["description"]
        assert dag.default_args["owner"] == entry["owner"]
        assert dag.default_args["retries"] == entry.get("retries", 1)
        assert {"example", "factory", *entry.get("tags", [])} == set(dag.tags)
        assert dag.schedule is None
        assert not dag.catchup
        loads = {f"load_{table}" for table in entry["tables"]}
        assert set(dag.task_ids) == {"check_source", "publish", *loads}
        for task_id in loads:
            assert dag.get_task(task_id).upstream_task_ids == {"check_source"}
        assert dag.get_task("publish").upstream_task_ids == loads
        assert dag.params["fail_table"] == ""


def test_config_is_found_from_the_dag_file_in_a_checkout_and_in_the_image_layout(tmp_path: Path) -> None:
    assert config_file("dag_factory.yml", anchor=REPO / "dags" / FACTORY_FILE) == CONFIG
    # /opt/airflow/{dags,config} in the containers: same sibling layout under another root.
    (tmp_path / "dags").mkdir()
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "dag_factory.yml").write_text("pipelines: []\n")
    found = config_file("dag_factory.yml", anchor=tmp_path / "dags" / FACTORY_FILE)
    assert found == tmp_path / "config" / "dag_factory.yml"
    with pytest.raises(FileNotFoundError, match="tried"):
        config_file("missing.yml", anchor=tmp_path / "dags" / FACTORY_FILE)


def test_bad_yaml_is_an_import_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    error = factory_import_error(tmp_path, monkeypatch, "pipelines: [\n  - name: x\n")
    assert "DagFactoryConfigError" in error
    assert "not valid YAML" in error


def test_bad_entries_are_named_in_the_import_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entries = [
        GOOD_ENTRY,
        {**GOOD_ENTRY, "name": "typo", "tabels": ["a"]},
        {**GOOD_ENTRY, "name": "no_owner", "owner": ""},
        {**GOOD_ENTRY, "name": "good"},
    ]
    error = factory_import_error(tmp_path, monkeypatch, yaml.safe_dump({"pipelines": entries}))
    assert "3 bad entries" in error
    assert "entry #2 ('typo'): unknown key(s): tabels" in error
    assert "entry #3 ('no_owner'): 'owner' must be a non-empty string" in error
    assert "entry #4 ('good'): duplicate name" in error


def test_a_schedule_airflow_refuses_names_the_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entries = [GOOD_ENTRY, {**GOOD_ENTRY, "name": "sched", "schedule": "every tuesday"}]
    error = factory_import_error(tmp_path, monkeypatch, yaml.safe_dump({"pipelines": entries}))
    assert "entry #2 ('sched'): AirflowTimetableInvalid" in error


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("just a string", "must be a mapping"),
        ({"name": "x"}, "missing key(s): description, owner, tables"),
        ({**GOOD_ENTRY, "name": "Bad-Name"}, "lower-case identifier"),
        ({**GOOD_ENTRY, "tables": []}, "'tables' must not be empty"),
        ({**GOOD_ENTRY, "tables": ["a", "a"]}, "duplicates"),
        ({**GOOD_ENTRY, "retries": 9}, "'retries' must be an integer from 0 to 5"),
        ({**GOOD_ENTRY, "retries": True}, "'retries' must be an integer from 0 to 5"),
        ({**GOOD_ENTRY, "sleep_seconds": "1"}, "'sleep_seconds' must be a number"),
        ({**GOOD_ENTRY, "schedule": 5}, "'schedule' must be null or a cron expression"),
    ],
)
def test_entry_validation(entry: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_entry(entry)


def test_an_empty_or_shapeless_config_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "dag_factory.yml"
    for text in ("", "pipelines: []\n", "- name: x\n"):
        path.write_text(text)
        with pytest.raises(DagFactoryConfigError, match="non-empty list under 'pipelines:'"):
            load_pipeline_specs(path)
