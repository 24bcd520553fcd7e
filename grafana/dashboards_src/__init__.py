"""The stack's Grafana dashboards as Python; grafana/generate.py writes them as JSON."""

from __future__ import annotations

from . import drilldown, metadata, oncall, overview, resources, scheduler, workers
from .panels import Dashboard


def dashboards() -> list[Dashboard]:
    return [
        oncall.dashboard(),
        overview.dashboard(),
        scheduler.dashboard(),
        workers.dashboard(),
        metadata.dashboard(),
        drilldown.dashboard(),
        resources.dashboard(),
    ]
