"""The integration tests' own stack: docker-compose.yml plus the tests' override, under its own
project name and env file, with its own random secrets, host ports, DAG folder and backup folder, so
it never touches a user's `.env`, the checkout's dags/ and backups/, or a stack started with
`make up`. Everything that drives it comes from stackkit; this module holds what is the tests' own.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from scripts.generate_env import render
from stackkit import REPO, envfile, sql
from stackkit.durations import DURATION, seconds
from stackkit.stack import Stack

PROJECT = "airflow-stack-test"
# The stack's own file, then the tests' override (short timeouts that tests wait out).
COMPOSE_FILES = [REPO / "docker-compose.yml", REPO / "tests" / "integration" / "compose.test.yml"]
TEST_PORTS = {"AIRFLOW_API_PORT": "18080", "FLOWER_PORT": "15555", "GRAFANA_PORT": "13000"}
# The example DAGs' alerts go to the stack's local webhook receiver in the tests.
RECEIVER_URL = "http://webhook-receiver:8080/alerts"
# The test stack's Prometheus scrapes and evaluates every 5 s (production: 15 s), and its Alertmanager
# sends a group's first notification after 5 s and its updates (a resolution) after 10 s (production:
# 10 s to 1 m, then 1 to 5 m): an alert fires and arrives in the `for:` of its rule plus seconds.
# The rules are production's, except that the alerts test_09 drives into firing wait a sixth of
# their `for:` and their range windows (AirflowSchedulerHeartbeatMissing: rate over 20 s, 10 s). What
# the tests prove of them is the path: a real fault, the metric, the rule, Alertmanager, the receiver.
# The production windows are proven by promtool's rule tests (tests/unit/test_prometheus_rules.py), and
# tests/unit checks the production intervals.
TEST_SCRAPE_INTERVAL = "5s"
TEST_GROUP_WAIT, TEST_GROUP_INTERVAL = "5s", "10s"
FAST_ALERTS = frozenset(
    {"AirflowSchedulerHeartbeatMissing", "AirflowSchedulerHADegraded", "AirflowDagImportErrors"}
)
FAST_ALERT_SCALE = 6
RANGE = re.compile(rf"\[({DURATION.pattern})\]")


@dataclass(frozen=True)
class GuestDirs:
    """What the test stack mounts from the host instead of the checkout's own files."""

    dags: Path
    backups: Path
    prometheus: Path
    alertmanager_config: Path


def guest_dirs(root: Path) -> GuestDirs:
    """Under ROOT, readable by the containers' users (uid 50000, 999 and 65534): a copy of the
    checkout's dags/, an empty backup folder, and copies of the Prometheus and Alertmanager
    configuration with the test intervals, so the tests never write into the checkout."""
    root.chmod(0o755)
    dirs = GuestDirs(
        root / "dags", root / "backups", root / "prometheus", root / "alertmanager" / "alertmanager.yml"
    )
    shutil.copytree(REPO / "dags", dirs.dags, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "prometheus", dirs.prometheus, ignore=shutil.ignore_patterns("tests"))
    prometheus_config = dirs.prometheus / "prometheus.yml"
    prometheus_config.write_text(
        yaml.safe_dump(with_test_intervals(yaml.safe_load(prometheus_config.read_text())))
    )
    for rules_file in (dirs.prometheus / "rules").glob("*.yml"):
        rules = yaml.safe_load(rules_file.read_text())
        if fast_alerts(rules):
            rules_file.write_text(yaml.safe_dump(with_fast_alerts(rules), sort_keys=False))
    dirs.alertmanager_config.parent.mkdir()
    alertmanager = yaml.safe_load((REPO / "alertmanager" / "alertmanager.yml").read_text())
    dirs.alertmanager_config.write_text(yaml.safe_dump(with_test_grouping(alertmanager)))
    for tree in (dirs.dags, dirs.prometheus, dirs.alertmanager_config.parent):
        for path in [tree, *tree.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
    dirs.backups.mkdir(mode=0o700)
    return dirs


def with_test_intervals(prometheus: dict) -> dict:
    prometheus["global"].update(
        scrape_interval=TEST_SCRAPE_INTERVAL, evaluation_interval=TEST_SCRAPE_INTERVAL
    )
    return prometheus


def scaled(duration: str) -> str:
    return f"{max(1, round(seconds(duration) / FAST_ALERT_SCALE))}s"


def fast_alerts(rules: dict) -> list[dict]:
    return [rule for group in rules["groups"] for rule in group["rules"] if rule.get("alert") in FAST_ALERTS]


def with_fast_alerts(rules: dict) -> dict:
    """FAST_ALERTS' `for:` and the range windows of their expressions divided by FAST_ALERT_SCALE."""
    for rule in fast_alerts(rules):
        if "for" in rule:
            rule["for"] = scaled(rule["for"])
        rule["expr"] = RANGE.sub(lambda found: f"[{scaled(found.group(1))}]", rule["expr"])
    return rules


def with_test_grouping(alertmanager: dict) -> dict:
    """Every route that sets its grouping times, the root one included, gets the test's."""
    routes = [alertmanager["route"]]
    while routes:
        route = routes.pop()
        for key, value in (("group_wait", TEST_GROUP_WAIT), ("group_interval", TEST_GROUP_INTERVAL)):
            if key in route:
                route[key] = value
        routes += route.get("routes", [])
    return alertmanager


def write_env_file(path: Path, with_grafana: bool, dirs: GuestDirs) -> Path:
    """The test stack's own env file (mode 600): .env.example with fresh secrets, its own ports,
    project name, DAG folder, backup folder and monitoring configuration, alerts to the local receiver."""
    values = {
        **TEST_PORTS,
        "COMPOSE_PROFILES": "grafana" if with_grafana else "",
        "COMPOSE_PROJECT_NAME": PROJECT,
        "ALERT_WEBHOOK_URL": RECEIVER_URL,
        "DAGS_DIR": str(dirs.dags),
        "BACKUP_DIR": str(dirs.backups),
        # Read by tests/integration/compose.test.yml only.
        "TEST_PROMETHEUS_DIR": str(dirs.prometheus),
        "TEST_ALERTMANAGER_CONFIG": str(dirs.alertmanager_config),
    }
    return envfile.write_private(
        path, envfile.with_values(render((REPO / ".env.example").read_text()), values)
    )


@dataclass
class IntegrationStack(Stack):
    """The session's stack: built and started once, torn down with its volumes at the end."""

    grafana_image: str = ""
    with_grafana: bool = False

    @classmethod
    def of(cls, env_file: Path, grafana_image: str, with_grafana: bool) -> IntegrationStack:
        return cls(PROJECT, COMPOSE_FILES, env_file, grafana_image=grafana_image, with_grafana=with_grafana)

    @property
    def dags_dir(self) -> Path:
        """The test stack's DAG folder: a copy of the checkout's dags/, safe to write into."""
        return Path(self.env["DAGS_DIR"])

    @property
    def backup_dir(self) -> Path:
        return Path(self.env["BACKUP_DIR"])

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Build and start everything, waiting until healthy; on failure print `ps` and the logs."""
        try:
            self.compose("up", "--build", "--wait", timeout=None)
        except Exception:
            print(self.compose("ps", "--all", check=False))
            print(self.compose("logs", "--no-color", "--tail=60", check=False))
            raise

    def stop(self) -> None:
        self.compose("down", "--volumes", timeout=None)

    def scale_workers(self, count: int) -> None:
        """Only the workers: a plain `up` would also start the exited airflow-init again (a migration
        check, users, pools: about a minute of CPU) and wait on every other service."""
        self.compose(
            "up", "--detach", "--wait", "--no-recreate", "--no-deps",
            "--scale", f"airflow-worker={count}", "airflow-worker",
        )  # fmt: skip

    # --- what the tests read ---------------------------------------------------------------------
    def sql_demo(self, query: str) -> list[list[str]]:
        """Run SQL in the example DAGs' demo database, as its owner."""
        return self.sql(query, database="demo", role="demo")

    def pgbouncer_show(self, what: str) -> list[dict[str, str]]:
        out = self.exec(
            "pgbouncer",
            [
                "psql", "--host=127.0.0.1", "--port=6432", "--username=airflow", "--dbname=pgbouncer",
                "--no-psqlrc", "-A", "-F", "\t", "-c", f"SHOW {what}",
            ],
        )  # fmt: skip
        lines = [line for line in out.splitlines() if line and not line.startswith("(")]
        header = lines[0].split("\t")
        return [dict(zip(header, line.split("\t"), strict=False)) for line in lines[1:]]

    def received_alerts(self) -> list[dict]:
        """What the local webhook receiver has been sent so far (it is not published on the host)."""
        out = self.exec("webhook-receiver", ["curl", "--fail", "--silent", "http://127.0.0.1:8080/received"])
        return json.loads(out)

    def pool_slots(self, pool: str = "default_pool") -> int:
        (row,) = self.sql(sql.bind("SELECT slots FROM slot_pool WHERE pool = {pool}", pool=pool))
        return int(row[0])
