"""The offline kit (offline/images.env) and the official pins (docker-compose.yml defaults) name the
same software: the same major everywhere, and the same minor where files or configs written by one
may not be read by another minor. And one Airflow version in every place that pins it, as requirements.in
pins it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGE_DEFAULT = re.compile(r"\$\{(?P<key>[A-Z_]+_IMAGE):-(?P<image>[^}]+)\}")

# How many leading version components must agree between the kit and the official image, and why.
AGREE = {
    "POSTGRES_IMAGE": (1, "the data directory's format is per major: a volume moves within one major"),
    "REDIS_IMAGE": (1, "RDB and AOF files are read by any later release of the same major"),
    "PGBOUNCER_IMAGE": (1, "pgbouncer.ini keys are kept within 1.x"),
    "PROMETHEUS_IMAGE": (2, "the TSDB and rule files: new minors add syntax older ones reject"),
    "ALERTMANAGER_IMAGE": (2, "the config and silences file: new minors add fields"),
    "STATSD_EXPORTER_IMAGE": (2, "the mapping file: 0.x minors change its schema"),
    # 0.x and 1.x exporters: scrape only, no file written; the kit trails where the module proxy refuses.
    "POSTGRES_EXPORTER_IMAGE": (1, "scrape only; custom query file format stable within the major"),
    "REDIS_EXPORTER_IMAGE": (1, "scrape only"),
    "PGBOUNCER_EXPORTER_IMAGE": (1, "scrape only"),
    # Flags and metric names change between minors of both; the kit builds the very same versions.
    "NODE_EXPORTER_IMAGE": (3, "the same release in both modes: collector flags change between minors"),
    "CADVISOR_IMAGE": (3, "the same release in both modes: 0.x minors rename flags and metrics"),
}


def version(image: str) -> tuple[int, ...]:
    tag = image.rsplit(":", 1)[1]
    match = re.match(r"v?(\d+(?:\.\d+)*)", tag)
    assert match, f"no version in the tag of {image}"
    return tuple(int(part) for part in match[1].split("."))


def official() -> dict[str, str]:
    text = (REPO / "docker-compose.yml").read_text()
    return {m["key"]: m["image"] for m in IMAGE_DEFAULT.finditer(text)}


def offline() -> dict[str, str]:
    lines = (REPO / "offline" / "images.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


@pytest.mark.parametrize("key", sorted(AGREE))
def test_offline_kit_and_official_image_are_the_same_series(key: str) -> None:
    parts, reason = AGREE[key]
    kit, upstream = version(offline()[key]), version(official()[key])
    assert kit[:parts] == upstream[:parts], (
        f"{key}: offline {offline()[key]} and official {official()[key]} differ in their first {parts} "
        f"version part(s) ({reason})"
    )


def test_every_image_with_an_offline_stand_in_is_compared() -> None:
    assert set(offline()) - {"AIRFLOW_BASE_IMAGE"} == set(AGREE)
    assert set(AGREE) <= set(official())


def test_debian_package_images_pin_a_series_not_a_point_release() -> None:
    """Debian's mirror keeps only the newest point release: an exact pin breaks every quarter."""
    kit = offline()
    assert len(version(kit["POSTGRES_IMAGE"])) == 1
    assert len(version(kit["REDIS_IMAGE"])) <= 2
    assert len(version(kit["PGBOUNCER_IMAGE"])) <= 2


# Every way the Airflow version is pinned: requirements (the package, the REST client), image tags
# (apache/airflow:, airflow-stack/airflow:, airflow-stack-offline/airflow:) and AIRFLOW_VERSION constants.
AIRFLOW_PIN = re.compile(
    r"(?:apache-airflow(?:\[[^\]]*\])?==|apache-airflow-client==|/airflow:|AIRFLOW_VERSION\s*=\s*\"?)(\d+\.\d+\.\d+)"
)
# The one place to change it: `make lock` compiles requirements.lock from it; every other pin follows.
AIRFLOW_SOURCE = "requirements.in"
# Where pins are known to stand: the scan below must keep finding them (a renamed tag would hide one).
KNOWN_PINS = {
    "Dockerfile",
    "docker-compose.yml",
    "docker-compose.worker.yml",
    "requirements.in",
    "requirements-test.txt",
    "requirements.lock",
    "offline/images.env",
    "offline/airflow/Dockerfile",
    "README.md",
}


def tracked_files() -> list[str]:
    result = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"not a git checkout: {result.stderr.strip()}")
    # Benchmark results record the images of their day: history, not pins.
    return [path for path in result.stdout.splitlines() if not path.startswith("bench/results/")]


def test_one_airflow_version_everywhere() -> None:
    """Every pin of Airflow in the tree (code, compose files, requirements, the offline kit, docs) names
    the version requirements.in pins; moving Airflow means changing them together, and this test lists
    each one left behind."""
    (want,) = AIRFLOW_PIN.findall((REPO / AIRFLOW_SOURCE).read_text())
    found: dict[str, set[str]] = {}
    for path in tracked_files():
        file = REPO / path
        if not file.is_file():
            continue
        try:
            text = file.read_text()
        except UnicodeDecodeError:
            continue
        versions = set(AIRFLOW_PIN.findall(text))
        if versions:
            found[path] = versions
    assert set(found) >= KNOWN_PINS, f"no Airflow pin found any more in {sorted(KNOWN_PINS - set(found))}"
    wrong = {path: sorted(versions) for path, versions in found.items() if versions != {want}}
    assert not wrong, f"{AIRFLOW_SOURCE} pins Airflow {want}, these files pin another: {wrong}"


def test_the_kit_table_has_a_row_for_every_pin_and_folder() -> None:
    """offline/kit.table says how each stand-in is built; images.env pins its version (offline/lib.sh
    refuses a pin without a row, too)."""
    rows = [
        line.split()
        for line in (REPO / "offline" / "kit.table").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert all(len(row) == 9 for row in rows), [row for row in rows if len(row) != 9]
    assert sorted(row[1] for row in rows) == sorted(offline())
    folders = {path.parent.name for path in (REPO / "offline").glob("*/Dockerfile")}
    assert {row[0] for row in rows} == folders
