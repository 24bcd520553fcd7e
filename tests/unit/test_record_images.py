"""`make up OFFLINE=1` records its images in .env so plain `docker compose` uses them too, and a later
`make up` without OFFLINE=1 takes them back, leaving every other line (and a user's own image) alone."""

from __future__ import annotations

from scripts.record_images import (
    OFFLINE_IMAGES,
    offline_prefix,
    set_values,
    unset_offline,
    without_profile,
)
from stackkit.envfile import parse, read

ENV = """# a comment
POSTGRES_PASSWORD=secret
COMPOSE_PROFILES=grafana
#POSTGRES_IMAGE=
#REDIS_IMAGE=
GRAFANA_IMAGE=mirror.example/grafana:13
"""


def test_offline_images_replace_their_commented_lines_and_the_rest_is_appended() -> None:
    images = read(OFFLINE_IMAGES)
    text = set_values(ENV, images)
    values = parse(text)
    assert {key: values[key] for key in images} == images
    assert values["POSTGRES_PASSWORD"] == "secret"
    assert values["GRAFANA_IMAGE"] == "mirror.example/grafana:13"
    lines = text.splitlines()
    assert lines.index(f"POSTGRES_IMAGE={images['POSTGRES_IMAGE']}") == 3  # in place, not appended
    assert sum(line.startswith("POSTGRES_IMAGE=") for line in lines) == 1


def test_online_comments_out_only_the_offline_kits_lines() -> None:
    images = read(OFFLINE_IMAGES)
    text = unset_offline(set_values(ENV, images), offline_prefix(images))
    values = parse(text)
    assert not set(images) & set(values)
    assert values["GRAFANA_IMAGE"] == "mirror.example/grafana:13"
    assert "#POSTGRES_IMAGE=" in text.splitlines()


def test_recording_twice_changes_nothing() -> None:
    images = read(OFFLINE_IMAGES)
    once = set_values(ENV, images)
    assert set_values(once, images) == once


def test_grafana_profile_left_out() -> None:
    assert without_profile("grafana", "grafana") == ""
    assert without_profile("grafana,extra", "grafana") == "extra"
    assert without_profile("extra", "grafana") == "extra"
