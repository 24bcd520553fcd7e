"""PromQL snippets shared by the dashboards, for statsd_exporter's series of Airflow metrics.

Grafana variables used: $dag_id and $task_id (regexes, All = `.*`), $__rate_interval for time series,
$__range for "over the selected time range" panels. Nothing else.
"""

from __future__ import annotations

RATE = "$__rate_interval"
RANGE = "$__range"
DAG = 'dag_id=~"$dag_id"'
TASK = 'task_id=~"$task_id"'


def sel(metric: str, *matchers: str) -> str:
    """A selector: sel("airflow_ti_finish", DAG, 'state="failed"')."""
    return f"{metric}{{{', '.join(matchers)}}}" if matchers else metric


def by(labels: str, expr: str, how: str = "sum") -> str:
    """An aggregation that names what it keeps: by("dag_id", ...) -> sum by (dag_id) (...)."""
    return f"{how} by ({labels}) ({expr})" if labels else f"{how}({expr})"


def per_second(selector: str) -> str:
    return f"rate({selector}[{RATE}])"


def events_in(selector: str, window: str) -> str:
    """How many times a statsd counter went up within `window`, per series.

    statsd_exporter creates a counter series at its first event, with that event already counted,
    so increase() alone misses the first event of every new series (the first failure of a DAG, say).
    Series that existed at the start of the window contribute their increase(); series created inside
    the window contribute their whole value. Aggregate the result with by().
    """
    return f"((increase({selector}[{window}]) and {selector} offset {window}) or {selector})"


def zero_for(expr: str, known: str) -> str:
    """`expr`, or 0 for every label set of `known` that `expr` lacks: a counter that has not fired yet
    (no failures, no retries) reads as a true zero next to the label sets that exist."""
    return f"({expr}) or (({known}) * 0)"


def quantile(
    q: float, histogram: str, matchers: tuple[str, ...], labels: str = "", window: str = RATE
) -> str:
    """A quantile of a statsd_exporter histogram (`histogram` without `_bucket`), merged over
    everything not in `labels`."""
    keep = f"le, {labels}" if labels else "le"
    return (
        f"histogram_quantile({q}, sum by ({keep}) (rate({sel(histogram + '_bucket', *matchers)}[{window}])))"
    )


def quantile_over(q: float, histogram: str, matchers: tuple[str, ...], labels: str, window: str) -> str:
    """A quantile of everything observed within `window` (a stat or table over the selected range);
    each bucket is a counter, counted with events_in() so that a first observation is not lost."""
    keep = f"le, {labels}" if labels else "le"
    return f"histogram_quantile({q}, {by(keep, events_in(sel(histogram + '_bucket', *matchers), window))})"


def mean(histogram: str, matchers: tuple[str, ...], labels: str = "", window: str = RATE) -> str:
    """Mean observation of a histogram within the window: rate of the sum over rate of the count."""
    total = by(labels, f"rate({sel(histogram + '_sum', *matchers)}[{window}])")
    count = by(labels, f"rate({sel(histogram + '_count', *matchers)}[{window}])")
    return f"{total} / {count}"


def since_last_increase(counter: str, labels: str, lookback: str = "7d") -> str:
    """Seconds since a counter last went up, per `labels`, looking back `lookback` at 5 min steps.

    A counter's sample timestamp is only the scrape time, so timestamp() of it says nothing. Instead,
    every 5 min, a series counts as having gone up if it changed in the last 6 min or did not exist
    5 min earlier (statsd_exporter creates it at its first event); the latest such step is the answer,
    late by at most 5 min. The steps fall on whole multiples of 5 min, so a series whose first increase
    came after the latest one has no step yet: for it, gone up now answers (0), not "none". Label sets
    with no increase within `lookback` are absent.
    """
    went_up = f"(changes({counter}[6m]) > 0) or ({counter} unless {counter} offset 5m)"
    last_step = f"max_over_time(timestamp({went_up})[{lookback}:5m])"
    return f"time() - {by(labels, f'{last_step} or timestamp({went_up})', 'max')}"
