"""The dashboards are generated: the committed JSON is exactly what grafana/generate.py writes, each
dashboard sits in its folder under its fixed uid, every panel says what it shows, every query uses only
the known variables and parses in promtool (Prometheus 3.15), and the count and freshness queries give
the right numbers on synthetic series (promtool test rules)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.unit.go_tools import tool

REPO = Path(__file__).resolve().parents[2]
GENERATOR = REPO / "grafana" / "generate.py"
DASHBOARDS = REPO / "grafana" / "dashboards"

EXPECTED = {  # uid -> folder (the Grafana folder, from foldersFromFilesStructure)
    "airflow-oncall": "Overview",
    "airflow-overview": "Overview",
    "airflow-scheduler": "Scheduler",
    "airflow-workers": "Workers",
    "airflow-metadata": "Metadata",
    "airflow-dag-drilldown": "DAGs",
    "airflow-resources": "Resources",
}
VARIABLES = {"dag_id", "task_id", "__rate_interval", "__range", "__interval"}
SCHEMA_VERSION = 42  # what Grafana 13's dashboard migrator ends at
# Values for parsing only, as the integration test substitutes them.
VALUES = {
    "dag_id": "smoke_mapped",
    "task_id": ".*",
    "__rate_interval": "2m",
    "__range": "1h",
    "__interval": "1m",
}
VARIABLE = re.compile(r"\$\{?(\w+)\}?")


def generate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GENERATOR), *args], capture_output=True, text=True, cwd=REPO, check=False
    )


def load(uid: str) -> dict:
    return json.loads((DASHBOARDS / EXPECTED[uid] / f"{uid}.json").read_text(encoding="utf-8"))


def all_dashboards() -> list[dict]:
    return [load(uid) for uid in EXPECTED]


def targets() -> list[tuple[str, dict, dict]]:
    """(dashboard uid, panel, target) for every query."""
    return [
        (dashboard["uid"], panel, target)
        for dashboard in all_dashboards()
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]


def substitute(expr: str, values: dict[str, str] = VALUES) -> str:
    return VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), expr)


def panel(uid: str, title: str) -> dict:
    (found,) = [p for p in load(uid)["panels"] if p["title"] == title]
    return found


def test_committed_json_is_the_generators_output() -> None:
    result = generate("--check")
    assert result.returncode == 0, result.stderr


def test_generator_writes_checks_and_deletes_stale_files(tmp_path: Path) -> None:
    stale = tmp_path / "old-folder" / "hand-written.json"
    stale.parent.mkdir()
    stale.write_text("{}")
    check = generate("--check", "--output-dir", str(tmp_path))
    assert check.returncode != 0
    assert "hand-written.json: stale" in check.stderr
    assert "airflow-overview.json: missing" in check.stderr

    assert generate("--output-dir", str(tmp_path)).returncode == 0
    assert not stale.parent.exists(), "a stale file or its emptied folder was kept"
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.json")) == sorted(
        f"{folder}/{uid}.json" for uid, folder in EXPECTED.items()
    )
    assert generate("--check", "--output-dir", str(tmp_path)).returncode == 0

    edited = tmp_path / "Workers" / "airflow-workers.json"
    edited.write_text(edited.read_text().replace('"30s"', '"5s"'))
    check = generate("--check", "--output-dir", str(tmp_path))
    assert check.returncode != 0
    assert "airflow-workers.json: differs" in check.stderr


def test_files_are_stable_json() -> None:
    for path in DASHBOARDS.rglob("*.json"):
        text = path.read_text(encoding="utf-8")
        assert text.endswith("}\n"), path
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n", path


def test_each_dashboard_has_its_uid_folder_and_settings() -> None:
    assert sorted(p.relative_to(DASHBOARDS).as_posix() for p in DASHBOARDS.rglob("*.json")) == sorted(
        f"{folder}/{uid}.json" for uid, folder in EXPECTED.items()
    )
    for dashboard in all_dashboards():
        uid = dashboard["uid"]
        assert "airflow" in dashboard["tags"], uid
        assert dashboard["refresh"] == "30s", uid
        assert dashboard["editable"] is False, uid
        assert dashboard["schemaVersion"] == SCHEMA_VERSION, uid
        assert dashboard["description"], uid
        tag_links = [link for link in dashboard["links"] if link["type"] == "dashboards"]
        assert tag_links, f"{uid}: no link list to the other dashboards"
        assert all("airflow" in link["tags"] for link in tag_links), uid


def test_every_panel_says_what_it_shows() -> None:
    for dashboard in all_dashboards():
        for p in dashboard["panels"]:
            where = f"{dashboard['uid']}: {p['title']!r}"
            assert p["title"], where
            assert len(p.get("description", "")) >= 60, f"{where}: no real description"
            defaults = p["fieldConfig"]["defaults"]
            assert defaults.get("unit"), f"{where}: no unit"
            assert defaults["thresholds"]["steps"][0]["value"] is None, f"{where}: thresholds start nowhere"
            if p["type"] == "stat":
                assert p["options"]["reduceOptions"]["calcs"], where


def test_queries_use_only_known_variables() -> None:
    for uid, p, target in targets():
        used = set(VARIABLE.findall(target["expr"]))
        assert used <= VARIABLES, f"{uid}: {p['title']!r} uses {used - VARIABLES}"
        defined = {v["name"] for v in load(uid)["templating"]["list"]}
        assert used & {"dag_id", "task_id"} <= defined, f"{uid}: {p['title']!r} uses an undefined variable"


def test_time_series_use_the_rate_interval() -> None:
    """Time series take every range from $__rate_interval (the fixed 24 h / 7 d windows, $__range and the
    freshness look-back belong to stats and tables)."""
    for uid, p, target in targets():
        if p["type"] == "timeseries":
            windows = set(re.findall(r"\[([^\]]+)\]", target["expr"]))
            assert windows <= {"$__rate_interval"}, f"{uid}: {p['title']!r} uses {windows}"


def test_window_queries_are_instant_and_time_series_are_ranges() -> None:
    for uid, p, target in targets():
        if p["type"] == "table" or "$__range" in target["expr"]:
            assert (target["instant"], target["range"]) == (True, False), f"{uid}: {p['title']!r}"
        if p["type"] == "timeseries":
            assert (target["instant"], target["range"]) == (False, True), f"{uid}: {p['title']!r}"


def test_drilldown_has_dag_and_task_variables() -> None:
    variables = {v["name"]: v for v in load("airflow-dag-drilldown")["templating"]["list"]}
    assert set(variables) == {"dag_id", "task_id"}
    for variable in variables.values():
        assert variable["type"] == "query"
        assert (variable["includeAll"], variable["multi"], variable["allValue"]) == (True, True, ".*")
        assert variable["query"].startswith("label_values(airflow_ti_finish"), variable["query"]
    assert "$dag_id" in variables["task_id"]["query"], "task_id must follow the DAG choice"


def test_overview_passes_its_dag_selection_to_the_drilldown() -> None:
    overview = load("airflow-overview")
    assert [v["name"] for v in overview["templating"]["list"]] == ["dag_id"]
    (link,) = [link for link in overview["links"] if link["type"] == "link"]
    assert link["url"] == "/d/airflow-dag-drilldown"
    assert (link["includeVars"], link["keepTime"]) == (True, True)
    table_links = json.dumps(panel("airflow-overview", "Failing DAGs · selected time range")["fieldConfig"])
    assert "/d/airflow-dag-drilldown?var-dag_id=${__value.raw}" in table_links


def test_every_expression_parses_in_promtool(tmp_path: Path) -> None:
    groups = []
    for uid, p, target in targets():
        expr = substitute(target["expr"])
        assert "$" not in expr, f"{uid}: {p['title']!r}: unsubstituted variable in {expr}"
        name = f"{uid} panel {p['id']} {target['refId']}: {p['title']}"
        groups.append({"name": name, "rules": [{"record": "dashboard:query", "expr": expr}]})
    rules = tmp_path / "dashboard_queries.yml"
    rules.write_text(yaml.safe_dump({"groups": groups}, allow_unicode=True))
    result = subprocess.run(
        [tool("promtool"), "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def promtool_test(
    tmp_path: Path, series: dict[str, str], expr: str, expected: dict[str, float], at: str = "120m"
) -> None:
    """Evaluate `expr` at `at` (minute 120) over `series` (one sample per minute) and compare the result."""
    (tmp_path / "empty.yml").write_text("groups: []\n")
    test = {
        "rule_files": ["empty.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": name, "values": values} for name, values in series.items()],
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": at,
                        "exp_samples": [
                            {"labels": labels, "value": value} for labels, value in expected.items()
                        ],
                    }
                ],
            }
        ],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test))
    result = subprocess.run(
        [tool("promtool"), "test", "rules", "test.yml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# A DAG that succeeded at minute 90 and never failed, and one whose first run ever failed at minute 101:
# statsd_exporter creates that failure counter at 1, which a plain increase() would count as 0.
SERIES = {
    'airflow_dagrun_duration_success_count{dag_id="steady", run_type="scheduled"}': "1x89 2x40",
    'airflow_dagrun_duration_failed_count{dag_id="first_failure", run_type="manual"}': "_x100 1x30",
    'airflow_ti_finish{dag_id="steady", task_id="t", state="success"}': "1x89 2x40",
    'airflow_ti_finish{dag_id="first_failure", task_id="t", state="failed"}': "_x100 1x30",
}
PARSE_ONLY = {"dag_id": ".*", "__range": "1h"}


def test_failing_dags_table_counts_a_first_failure(tmp_path: Path) -> None:
    table = panel("airflow-overview", "Failing DAGs · selected time range")
    failed_runs = substitute(table["targets"][0]["expr"], PARSE_ONLY)
    promtool_test(tmp_path, SERIES, failed_runs, {'{dag_id="first_failure"}': 1, '{dag_id="steady"}': 0})


def test_freshness_is_the_time_since_the_last_success(tmp_path: Path) -> None:
    table = panel("airflow-overview", "Freshness · time since each DAG's last successful run")
    since = substitute(table["targets"][0]["expr"], PARSE_ONLY)
    # steady: last success at minute 90, 30 min before; first_failure: never, shown as 7 days.
    promtool_test(tmp_path, SERIES, since, {'{dag_id="steady"}': 1800, '{dag_id="first_failure"}': 7 * 86400})


def test_freshness_of_a_first_success_after_the_latest_5_min_step_is_not_none(tmp_path: Path) -> None:
    """The panel's 5 min steps fall on whole multiples of 5 min: a DAG whose first success ever came at
    minute 116, seen at minute 118, has no step since (115) that saw it. It is 0 s, not "7 d or more"."""
    table = panel("airflow-overview", "Freshness · time since each DAG's last successful run")
    since = substitute(table["targets"][0]["expr"], PARSE_ONLY)
    series = {
        'airflow_dagrun_duration_success_count{dag_id="new", run_type="manual"}': "_x116 1x10",
        'airflow_ti_finish{dag_id="new", task_id="t", state="success"}': "_x116 1x10",
    }
    promtool_test(tmp_path, series, since, {'{dag_id="new"}': 0}, at="118m")


def test_on_call_links_failing_dags_to_airflow_and_the_drilldown() -> None:
    oncall = load("airflow-oncall")
    (variable,) = oncall["templating"]["list"]
    assert variable["name"] == "airflow_url"
    assert variable["query"] == "label_values(airflow_ui_info, url)"
    assert variable["hide"] == 2, "a value for links, not a choice for the viewer"
    failing = panel("airflow-oncall", "Failing DAGs · last hour")
    (override,) = [o for o in failing["fieldConfig"]["overrides"] if o["matcher"]["options"] == "dag_id"]
    urls = [link["url"] for link in override["properties"][0]["value"]]
    assert urls == [
        "/d/airflow-dag-drilldown?var-dag_id=${__value.raw}&${__url_time_range}",
        "${airflow_url}/dags/${__value.raw}",
    ]
    assert {"type": "link", "url": "${airflow_url}"}.items() <= oncall["links"][-1].items()


def test_on_call_reads_the_recording_rules_the_alerts_read() -> None:
    """Where the windows match, the on-call stats query the alerts' recording rules, not raw series."""
    recorded = {
        rule["record"]
        for path in sorted((REPO / "prometheus" / "rules").glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    for title, rule in [
        ("Scheduler lag · schedule delay p95, 1 h", "airflow:dagrun_schedule_delay_seconds:p95_1h"),
        ("Task failure ratio · 1 h", "airflow:ti_failure:ratio_1h"),
        ("DAG run success · 24 h", "airflow:dagrun_success:ratio_1d"),
    ]:
        assert rule in recorded, rule
        assert panel("airflow-oncall", title)["targets"][0]["expr"] == rule, title
    failing = json.dumps(panel("airflow-oncall", "Failing DAGs · last hour")["targets"])
    assert "dag_id:airflow_dagrun_duration_failed_count:increase1h" in failing
    assert not re.search(r"(?<![\w:])airflow_ti_finish(?![\w:])", failing), (
        "raw series where a 1 h rule exists"
    )
