"""Statistics of the benchmark: percentiles of one run, medians and spread over repetitions, ratios.

Pure functions on numbers; no Docker, no I/O. Missing values (None: a figure that a run could not
measure) are dropped before anything is computed, and an empty input gives None, never a made-up 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass


def present(values: Iterable[float | None]) -> list[float]:
    """The values that were measured, in order (None and NaN dropped)."""
    return [float(v) for v in values if v is not None and not math.isnan(v)]


def percentile(values: Iterable[float | None], q: float) -> float | None:
    """The q-th percentile (0-100), interpolated linearly between the closest ranks (numpy's default)."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0-100")
    data = sorted(present(values))
    if not data:
        return None
    position = (len(data) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (position - low)


def median(values: Iterable[float | None]) -> float | None:
    return percentile(values, 50)


@dataclass(frozen=True)
class Spread:
    """A figure over repetitions: the median, and the spread as min-max."""

    n: int
    median: float
    min: float
    max: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def spread(values: Iterable[float | None]) -> Spread | None:
    data = present(values)
    if not data:
        return None
    middle = median(data)
    assert middle is not None
    return Spread(n=len(data), median=middle, min=min(data), max=max(data))


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def peak_overlap(intervals: Iterable[tuple[float, float]]) -> int:
    """The largest number of [start, end] intervals open at the same instant (an end before a start
    at the same instant: a slot freed and taken again is not two at once)."""
    events: list[tuple[float, int]] = []
    for start, end in intervals:
        events.append((start, 1))
        events.append((max(start, end), -1))
    events.sort(key=lambda event: (event[0], event[1]))
    current = peak = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


def scaling_efficiency(throughput_n: float | None, throughput_1: float | None, workers: int) -> float | None:
    """throughput with N workers / (N x throughput with 1): 1.0 when N workers do N times the work."""
    if throughput_n is None or throughput_1 is None or throughput_1 <= 0 or workers < 1:
        return None
    return throughput_n / (workers * throughput_1)
