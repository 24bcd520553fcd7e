"""The worker-capacity service's decisions: which workers count, how many slots each queue gets, when a
loss is confirmed, and what a bad ceiling says. The live behaviour is in tests/integration/test_03."""

from __future__ import annotations

import pytest

from scripts.worker_capacity import (
    Capacity,
    Worker,
    export_ui_url,
    parse_ceiling,
    pool_for,
    reason,
    targets,
    ui_url,
    workers_from_replies,
)


def worker(name: str, slots: int = 16, *queues: str) -> Worker:
    return Worker(name, slots, frozenset(queues or ("default",)))


def test_replies_become_workers_with_their_pool_size_and_queues() -> None:
    stats = {
        "celery@a": {"pool": {"max-concurrency": 16}},
        "celery@b": {"pool": {"max-concurrency": 4}},
        "celery@half": {"pool": {"max-concurrency": 8}},  # answered stats only: not counted
    }
    queues = {"celery@a": [{"name": "default"}], "celery@b": [{"name": "gpu"}, {"name": "default"}]}
    assert workers_from_replies(stats, queues) == {
        "celery@a": worker("celery@a", 16, "default"),
        "celery@b": worker("celery@b", 4, "gpu", "default"),
    }


def test_a_joining_worker_counts_at_once() -> None:
    capacity = Capacity(confirm_seconds=30)
    capacity.observe({"a": worker("a")}, now=0)
    joined, gone = capacity.observe({"a": worker("a"), "b": worker("b")}, now=10)
    assert joined == ["worker b joined queue default (16 slots)"]
    assert not gone
    assert capacity.slots_by_queue() == {"default": 32}


def test_a_silent_worker_counts_until_its_loss_is_confirmed() -> None:
    capacity = Capacity(confirm_seconds=30)
    capacity.observe({"a": worker("a"), "b": worker("b")}, now=0)
    for now in (10, 20, 30):  # b misses three replies: still counted
        _, gone = capacity.observe({"a": worker("a")}, now=now)
        assert not gone
        assert capacity.slots_by_queue() == {"default": 32}
    _, gone = capacity.observe({"a": worker("a")}, now=31)
    assert gone == ["worker b left queue default (16 slots)"]
    assert capacity.slots_by_queue() == {"default": 16}
    assert capacity.workers_by_queue() == {"default": 1}


def test_a_worker_that_answers_again_in_time_is_not_lost() -> None:
    capacity = Capacity(confirm_seconds=30)
    capacity.observe({"a": worker("a")}, now=0)
    capacity.observe({}, now=25)
    joined, gone = capacity.observe({"a": worker("a")}, now=28)
    assert not joined
    assert not gone
    _, gone = capacity.observe({}, now=50)
    assert not gone


def test_a_worker_that_stops_consuming_a_queue_loses_it_only_after_confirmation() -> None:
    """Upstream #63580's catatonic worker answers, but lists no queue: its slots go after the delay."""
    capacity = Capacity(confirm_seconds=30)
    capacity.observe({"a": worker("a")}, now=0)
    capacity.observe({"a": Worker("a", 16, frozenset())}, now=20)
    assert capacity.slots_by_queue() == {"default": 16}
    _, gone = capacity.observe({"a": Worker("a", 16, frozenset())}, now=40)
    assert gone == ["worker a left queue default (16 slots)"]
    assert capacity.slots_by_queue() == {}


def test_slots_per_queue_and_pool_names() -> None:
    capacity = Capacity(confirm_seconds=30)
    capacity.observe({"a": worker("a", 16), "r": worker("r", 8, "remote")}, now=0)
    wanted = targets(capacity.slots_by_queue(), {"default", "remote", "gone"}, ceiling=None)
    assert wanted == {"default": 16, "remote": 8, "gone": 0}
    assert pool_for("default", "default") == "default_pool"
    assert pool_for("remote", "default") == "remote_workers"


def test_the_ceiling_caps_every_pool() -> None:
    assert targets({"default": 64, "gpu": 4}, {"default", "gpu"}, ceiling=20) == {"default": 20, "gpu": 4}


@pytest.mark.parametrize("raw", ["", None, "  "])
def test_no_ceiling(raw: str | None) -> None:
    assert parse_ceiling(raw) is None


@pytest.mark.parametrize("raw", ["0", "-3", "ten", "1.5"])
def test_a_bad_ceiling_is_refused_naming_the_variable(raw: str) -> None:
    with pytest.raises(SystemExit, match=f"WORKER_SLOTS_CEILING='{raw}'"):
        parse_ceiling(raw)


def test_the_log_says_why() -> None:
    assert reason(["worker a joined queue default (16 slots)"], ["x"]) == (
        "worker a joined queue default (16 slots); x"
    )
    assert reason([], []) == "first sizing"


@pytest.mark.parametrize(
    ("base_url", "url"),
    [
        ("https://airflow.example.com/", "https://airflow.example.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        (None, "http://localhost:8080"),
        ("", "http://localhost:8080"),
    ],
)
def test_the_ui_url_is_the_base_url_without_its_slash(base_url: str | None, url: str) -> None:
    assert ui_url(base_url) == url


def test_the_ui_url_is_exported_as_an_info_metric() -> None:
    """The Grafana dashboards read the URL with label_values(airflow_ui_info, url)."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    export_ui_url("https://airflow.example.com/", registry)
    assert 'airflow_ui_info{url="https://airflow.example.com"} 1.0' in generate_latest(registry).decode()
