"""docker-compose.yml validates with the documented .env, refuses to start without a secret (naming
it), pins every image behind an override, and keeps the wiring promises users rely on."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from scripts.generate_env import render
from tests.unit.compose import REPO, SECRETS, compose_config, resolved

ONE_SHOT = {"airflow-init"}
UIS = {"airflow-apiserver": 8080, "flower": 5555, "grafana": 3000}


@pytest.fixture(scope="module")
def env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("env") / ".env"
    path.write_text(render((REPO / ".env.example").read_text()))
    return path


@pytest.fixture(scope="module")
def config(env_file: Path) -> dict:
    return resolved(env_file)


def test_validates_with_the_documented_env(config: dict) -> None:
    assert "airflow-worker" in config["services"]


def test_empty_environment_is_refused_naming_a_secret(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = compose_config(empty)
    assert result.returncode != 0
    assert any(secret in result.stderr for secret in SECRETS), result.stderr


@pytest.mark.parametrize("secret", SECRETS)
def test_each_missing_secret_is_named(secret: str, env_file: Path, tmp_path: Path) -> None:
    lines = [line for line in env_file.read_text().splitlines() if not line.startswith(f"{secret}=")]
    partial = tmp_path / "partial.env"
    partial.write_text("\n".join(lines) + f"\n{secret}=\n")
    result = compose_config(partial, "--profile", "grafana")
    assert result.returncode != 0, f"compose accepted an empty {secret}"
    assert secret in result.stderr, result.stderr


def test_no_secret_has_a_default_anywhere() -> None:
    compose_text = (REPO / "docker-compose.yml").read_text()
    for secret in SECRETS:
        assert not re.search(rf"\${{{secret}:?-", compose_text), (
            f"{secret} has a default in docker-compose.yml"
        )
        assert re.search(rf"^{secret}=$", (REPO / ".env.example").read_text(), re.M), f"{secret} not empty"


def test_every_image_is_pinned_and_overridable_from_env() -> None:
    raw = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    images = {name: svc["image"] for name, svc in raw["services"].items() if "image" in svc}
    for name, image in images.items():
        match = re.fullmatch(r"\$\{([A-Z_]+):-([^}]+)\}", image)
        assert match, f"{name}: image {image!r} cannot be overridden from .env"
        default = match.group(2)
        assert ":" in default, f"{name}: {default} has no tag"
        assert not default.endswith((":latest", ":")), f"{name}: {default} not pinned"


def test_worker_is_scalable(config: dict) -> None:
    worker = config["services"]["airflow-worker"]
    assert "container_name" not in worker
    assert not worker.get("ports")


def test_long_running_services_have_healthchecks_and_restart_policies(config: dict) -> None:
    for name, service in config["services"].items():
        if name in ONE_SHOT:
            assert service.get("restart", "no") == "no"
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert service.get("restart") in ("unless-stopped", "always"), (
            f"{name} restart={service.get('restart')}"
        )


def test_only_the_uis_are_published_on_localhost(config: dict) -> None:
    for name, service in config["services"].items():
        ports = service.get("ports", [])
        if name not in UIS:
            assert not ports, f"{name} publishes {ports}"
            continue
        assert [p["target"] for p in ports] == [UIS[name]]
        assert all(p["host_ip"] == "127.0.0.1" for p in ports), ports


def test_airflow_services_wait_for_init_and_dependencies(config: dict) -> None:
    for name, service in config["services"].items():
        if not name.startswith(("airflow-", "flower")) or name in ONE_SHOT:
            continue
        depends = service["depends_on"]
        assert depends["airflow-init"]["condition"] == "service_completed_successfully", name
        for dependency in ("pgbouncer", "redis", "statsd-exporter"):
            assert depends[dependency]["condition"] == "service_healthy", f"{name} -> {dependency}"


def test_runtime_sql_goes_through_pgbouncer_and_migrations_do_not(config: dict) -> None:
    services = config["services"]
    for name, service in services.items():
        url = service.get("environment", {}).get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
        if url is None:
            continue
        assert url.startswith("postgresql+psycopg2://"), f"{name}: {url.split('@')[0]}"
        host = url.split("@", 1)[1].split("/", 1)[0]
        assert host == ("postgres:5432" if name == "airflow-init" else "pgbouncer:6432"), f"{name} -> {host}"


def test_graceful_stop_settings(config: dict) -> None:
    worker = config["services"]["airflow-worker"]
    assert worker["entrypoint"][:2] == ["/usr/bin/dumb-init", "--single-child"]
    assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"
    assert worker["stop_grace_period"] in ("10m", "10m0s")
    triggerer = config["services"]["airflow-triggerer"]
    assert "--single-child" not in triggerer["entrypoint"], (
        "the triggerer's whole process group must get SIGTERM"
    )


def test_two_schedulers(config: dict) -> None:
    assert config["services"]["airflow-scheduler"]["deploy"]["replicas"] == 2


def api_base_url(env_file: Path, tmp_path: Path, extra: str = "") -> str:
    env = tmp_path / ".env"
    env.write_text(env_file.read_text() + extra)
    services = resolved(env)["services"]
    urls = {
        name: service["environment"]["AIRFLOW__API__BASE_URL"]
        for name, service in services.items()
        if "AIRFLOW__API__BASE_URL" in service.get("environment", {})
    }
    assert {"airflow-apiserver", "airflow-scheduler", "airflow-worker", "worker-capacity"} <= urls.keys()
    (url,) = set(urls.values())
    return url


def test_ui_base_url_defaults_to_the_published_address_without_a_path(env_file: Path, tmp_path: Path) -> None:
    """[api] base_url is the address links point at. Its path would become the api-server's root path (the
    health checks and workers use /), so the default has none, and follows the published address."""
    assert api_base_url(env_file, tmp_path) == "http://127.0.0.1:8080"
    moved = api_base_url(env_file, tmp_path, "HOST_BIND_ADDRESS=10.0.0.5\nAIRFLOW_API_PORT=18080\n")
    assert moved == "http://10.0.0.5:18080"


def test_ui_base_url_follows_airflow_public_url(env_file: Path, tmp_path: Path) -> None:
    url = api_base_url(env_file, tmp_path, "AIRFLOW_PUBLIC_URL=https://airflow.example.com\n")
    assert url == "https://airflow.example.com"


def test_grafana_home_is_the_provisioned_on_call_dashboard(config: dict) -> None:
    """GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH ([dashboards] default_home_dashboard_path) names a file
    that the dashboards mount really holds: the generated on-call dashboard."""
    grafana = config["services"]["grafana"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    mounts = [v for v in grafana["volumes"] if home.startswith(v["target"].rstrip("/") + "/")]
    mount = max(mounts, key=lambda v: len(v["target"]))  # the innermost mount holds the file
    assert mount.get("read_only"), "the provisioned dashboards are mounted read-only"
    source = Path(mount["source"]) / home.removeprefix(mount["target"].rstrip("/") + "/")
    assert source.resolve().is_relative_to(REPO / "grafana" / "dashboards"), source
    assert json.loads(source.read_text())["uid"] == "airflow-oncall"


MEMORY_LIMIT = re.compile(r"\$\{(?P<var>[A-Z][A-Z0-9_]*_MEMORY_LIMIT):-(?P<default>\d+[mg])\}")


@pytest.mark.parametrize(
    "path", ["docker-compose.yml", "docker-compose.worker.yml", "docker-compose.publish-for-workers.yml"]
)
def test_every_service_has_a_memory_limit_from_env(path: str) -> None:
    """A runaway task is killed alone, in its own container, and the limit is the operator's to set:
    `mem_limit: ${X_MEMORY_LIMIT:-default}`, X_MEMORY_LIMIT documented in .env.example."""
    raw = yaml.safe_load((REPO / path).read_text())["services"]
    documented = set(re.findall(r"^#?([A-Z][A-Z0-9_]*)=", (REPO / ".env.example").read_text(), re.M))
    for name, service in raw.items():
        if "image" not in service:
            continue  # the publish override's changes to a service of the main file
        match = MEMORY_LIMIT.fullmatch(str(service.get("mem_limit", "")))
        assert match, f"{path}: {name} has no mem_limit of the form ${{X_MEMORY_LIMIT:-512m}}"
        assert match["var"] in documented, f"{match['var']} is not documented in .env.example"
        assert "deploy" not in service or "resources" not in service["deploy"], (
            f"{name}: one place for limits (mem_limit), not deploy.resources too"
        )


def test_memory_limits_resolve_and_the_worker_does_not_swap(config: dict) -> None:
    units = {"m": 2**20, "g": 2**30}
    raw = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    for name, service in config["services"].items():
        default = MEMORY_LIMIT.fullmatch(raw[name]["mem_limit"])["default"]
        assert int(service["mem_limit"]) == int(default[:-1]) * units[default[-1]], name
    worker = config["services"]["airflow-worker"]
    assert worker["memswap_limit"] == worker["mem_limit"]
    # 16 task processes on top of the worker's own ~0.4 GiB (docs/performance.md: 1.1 GiB at 16 no-ops).
    assert int(worker["mem_limit"]) >= 2 * 2**30
