"""The offline kit (offline/images.env) and the official pins (docker-compose.yml defaults) name the
same software: the same major everywhere, and the same minor where files or configs written by one
may not be read by another minor. And one Airflow version in every place that pins it."""

from __future__ import annotations

import re
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


def test_one_airflow_version_everywhere() -> None:
    found = {
        "offline/images.env": offline()["AIRFLOW_BASE_IMAGE"].rsplit(":", 1)[1].split("-")[0],
        "docker-compose.yml base": official()["AIRFLOW_BASE_IMAGE"].rsplit(":", 1)[1].split("-")[0],
        "docker-compose.yml image": official()["AIRFLOW_IMAGE"].rsplit(":", 1)[1],
    }
    for path, pattern in {
        "Dockerfile": r"ARG AIRFLOW_BASE_IMAGE=apache/airflow:([\d.]+)-",
        "docker-compose.worker.yml": r"airflow-stack/airflow:([\d.]+)\}",
        "requirements.in": r"apache-airflow\[[^\]]*\]==([\d.]+)",
        "requirements-test.txt": r"apache-airflow-client==([\d.]+)",
        "requirements.lock": r"^apache-airflow==([\d.]+)",
    }.items():
        match = re.search(pattern, (REPO / path).read_text(), re.MULTILINE)
        assert match, f"{path}: no Airflow pin found"
        found[path] = match[1]
    assert len(set(found.values())) == 1, f"Airflow versions differ: {found}"
