"""Grafana dashboard JSON from small typed builders: queries, panels, variables, links, layout.

Every panel and query gets the provisioned Prometheus datasource (uid `prometheus`). Panels are laid
out in rows of at most 24 grid units; ids are numbered in layout order. No row panels: the dashboard
tests require every panel to carry a query.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Json = dict[str, Any]

DATASOURCE: Json = {"type": "prometheus", "uid": "prometheus"}
# The classic dashboard schema's version that Grafana 13's migrator ends at (its migrations list stops at
# V42), and the one grafana-foundation-sdk writes. Grafana migrates older files on every load.
SCHEMA_VERSION = 42
GRID_WIDTH = 24

GREEN, YELLOW, ORANGE, RED, BLUE = "green", "yellow", "orange", "red", "blue"

# A threshold step: (colour, lower bound); the first step's bound is None (minus infinity).
Step = tuple[str, float | None]


@dataclass(frozen=True)
class Query:
    """One PromQL target. `instant` queries (stats over fixed windows, tables) return one value."""

    expr: str
    legend: str = ""
    instant: bool = False
    table: bool = False


@dataclass
class Panel:
    kind: str  # stat | timeseries | table | bargauge
    title: str
    description: str
    queries: list[Query]
    unit: str
    width: int
    height: int
    steps: list[Step] = field(default_factory=lambda: [(GREEN, None)])
    defaults: Json = field(default_factory=dict)
    options: Json = field(default_factory=dict)
    overrides: list[Json] = field(default_factory=list)
    transformations: list[Json] = field(default_factory=list)


def steps_up(ok: str, *bounds: tuple[str, float]) -> list[Step]:
    """Thresholds that get worse as the value grows: steps_up(GREEN, (ORANGE, 5), (RED, 10))."""
    return [(ok, None), *bounds]


def _thresholds(steps: list[Step]) -> Json:
    return {"mode": "absolute", "steps": [{"color": color, "value": value} for color, value in steps]}


def value_text(value: str, text: str, color: str | None = None) -> Json:
    """A value mapping: show `text` for one exact value."""
    result: Json = {"text": text, "index": 0}
    if color:
        result["color"] = color
    return {"type": "value", "options": {value: result}}


def nan_text(text: str) -> Json:
    """Show `text` instead of NaN (for example a ratio with nothing to divide by)."""
    return {"type": "special", "options": {"match": "nan", "result": {"text": text, "index": 0}}}


def range_text(low: float, text: str, color: str | None = None) -> Json:
    """Show `text` for every value from `low` up."""
    result: Json = {"text": text, "index": 0}
    if color:
        result["color"] = color
    return {"type": "range", "options": {"from": low, "to": None, "result": result}}


def color_override(legend: str, color: str) -> Json:
    return {
        "matcher": {"id": "byName", "options": legend},
        "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": color}}],
    }


def drilldown_link_override(column: str = "dag_id", extra: list[Json] | None = None) -> Json:
    """Make a table column of dag_ids link to the per-DAG drill-down, keeping the time range (and to
    `extra` links: with more than one, Grafana offers a menu)."""
    drilldown = {
        "title": "Drill down into ${__value.raw}",
        "url": "/d/airflow-dag-drilldown?var-dag_id=${__value.raw}&${__url_time_range}",
    }
    return {
        "matcher": {"id": "byName", "options": column},
        "properties": [{"id": "links", "value": [drilldown, *(extra or [])]}],
    }


def stat(
    title: str,
    description: str,
    queries: list[Query],
    unit: str,
    steps: list[Step],
    *,
    width: int = 4,
    height: int = 4,
    decimals: int | None = None,
    mappings: list[Json] | None = None,
    sparkline: bool = True,
    no_value: str | None = None,
) -> Panel:
    defaults: Json = {"mappings": mappings or []}
    if decimals is not None:
        defaults["decimals"] = decimals
    if no_value is not None:
        defaults["noValue"] = no_value  # shown when the query returns no series at all
    options = {
        "colorMode": "background",
        "graphMode": "area" if sparkline and not all(q.instant for q in queries) else "none",
        "justifyMode": "auto",
        "orientation": "auto",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "showPercentChange": False,
        "textMode": "auto",
        "wideLayout": True,
    }
    return Panel("stat", title, description, queries, unit, width, height, steps, defaults, options)


def timeseries(
    title: str,
    description: str,
    queries: list[Query],
    unit: str,
    *,
    width: int = 12,
    height: int = 8,
    steps: list[Step] | None = None,
    overrides: list[Json] | None = None,
    stack: bool = False,
    bars: bool = False,
    minimum: float | None = 0,
    legend_table: bool = False,
) -> Panel:
    custom: Json = {
        "drawStyle": "bars" if bars else "line",
        "fillOpacity": 60 if bars else 10,
        "lineWidth": 1,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"group": "A", "mode": "normal" if stack else "none"},
        # Thresholds, where given, are drawn as dashed lines: the level at which to worry.
        "thresholdsStyle": {"mode": "dashed" if steps else "off"},
    }
    defaults: Json = {"color": {"mode": "palette-classic"}, "custom": custom}
    if minimum is not None:
        defaults["min"] = minimum
    options = {
        "legend": {
            "calcs": ["lastNotNull", "max"] if legend_table else [],
            "displayMode": "table" if legend_table else "list",
            "placement": "bottom",
            "showLegend": True,
        },
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return Panel(
        "timeseries",
        title,
        description,
        queries,
        unit,
        width,
        height,
        steps or [(GREEN, None)],
        defaults,
        options,
        overrides or [],
    )


def bargauge(
    title: str,
    description: str,
    queries: list[Query],
    unit: str,
    steps: list[Step],
    *,
    width: int = 8,
    height: int = 8,
    decimals: int | None = None,
) -> Panel:
    defaults: Json = {"color": {"mode": "thresholds"}, "min": 0}
    if decimals is not None:
        defaults["decimals"] = decimals
    options = {
        "displayMode": "gradient",
        "maxVizHeight": 300,
        "minVizHeight": 16,
        "minVizWidth": 8,
        "namePlacement": "auto",
        "orientation": "horizontal",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "showUnfilled": True,
        "sizing": "auto",
        "valueMode": "color",
    }
    return Panel("bargauge", title, description, queries, unit, width, height, steps, defaults, options)


@dataclass(frozen=True)
class Column:
    """A value column of a table: its query (instant, table format), header, unit and colouring."""

    expr: str
    header: str
    unit: str = "short"
    steps: list[Step] | None = None
    decimals: int | None = 0
    mappings: list[Json] | None = None


def table(
    title: str,
    description: str,
    keys: list[str],
    columns: list[Column],
    *,
    sort_by: str,
    descending: bool = True,
    width: int = 12,
    height: int = 9,
    link_dag_id: bool = False,
    dag_links: list[Json] | None = None,
) -> Panel:
    """One row per label set of `keys`; one column per query, merged on those labels."""
    queries = [Query(column.expr, instant=True, table=True) for column in columns]
    refs = [chr(ord("A") + index) for index in range(len(columns))]
    # Grafana names the value field "Value #<refId>", or just "Value" when the panel has one query.
    values = ["Value"] if len(columns) == 1 else [f"Value #{ref}" for ref in refs]
    rename = {value: column.header for value, column in zip(values, columns, strict=True)}
    order = {name: index for index, name in enumerate([*keys, *values])}  # by field names before renaming
    shown = [*keys, *rename.values()]
    overrides: list[Json] = []
    for column in columns:
        properties: list[Json] = [{"id": "unit", "value": column.unit}]
        if column.decimals is not None:
            properties.append({"id": "decimals", "value": column.decimals})
        if column.steps:
            properties.append({"id": "thresholds", "value": _thresholds(column.steps)})
            properties.append({"id": "custom.cellOptions", "value": {"type": "color-background"}})
        if column.mappings:
            properties.append({"id": "mappings", "value": column.mappings})
        overrides.append({"matcher": {"id": "byName", "options": column.header}, "properties": properties})
    if link_dag_id:
        overrides.append(drilldown_link_override(extra=dag_links))
    transformations = [
        {"id": "merge", "options": {}},
        {
            "id": "organize",
            "options": {
                "excludeByName": {"Time": True},
                "includeByName": {},
                "indexByName": order,
                "renameByName": rename,
            },
        },
        # Only the key labels and the value columns: drop job, instance and any other label.
        {"id": "filterFieldsByName", "options": {"include": {"names": shown}}},
    ]
    options = {
        "cellHeight": "sm",
        "footer": {"countRows": False, "fields": "", "reducer": ["sum"], "show": False},
        "showHeader": True,
        "sortBy": [{"desc": descending, "displayName": sort_by}],
    }
    defaults: Json = {"custom": {"align": "auto", "cellOptions": {"type": "auto"}, "filterable": True}}
    return Panel(
        "table",
        title,
        description,
        queries,
        "short",
        width,
        height,
        [(GREEN, None)],
        defaults,
        options,
        overrides,
        transformations,
    )


def _target(query: Query, ref: str) -> Json:
    target: Json = {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": query.expr,
        "instant": query.instant,
        "legendFormat": query.legend or "__auto",
        "range": not query.instant,
        "refId": ref,
    }
    if query.table:
        target["format"] = "table"
    return target


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> Json:
    defaults: Json = {
        "color": {"mode": "thresholds"},
        "thresholds": _thresholds(panel.steps),
        "unit": panel.unit,
        **panel.defaults,
    }
    result: Json = {
        "datasource": DATASOURCE,
        "description": panel.description,
        "fieldConfig": {"defaults": defaults, "overrides": panel.overrides},
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "id": panel_id,
        "options": panel.options,
        "targets": [_target(query, chr(ord("A") + index)) for index, query in enumerate(panel.queries)],
        "title": panel.title,
        "type": panel.kind,
    }
    if panel.transformations:
        result["transformations"] = panel.transformations
    return result


def query_variable(name: str, label: str, query: str, description: str) -> Json:
    """A multi-value Prometheus query variable with All (regex `.*`), refreshed with the time range."""
    return {
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "datasource": DATASOURCE,
        "definition": query,
        "description": description,
        "hide": 0,
        "includeAll": True,
        "label": label,
        "multi": True,
        "name": name,
        "options": [],
        # A plain string: the form Grafana's Prometheus variable support takes from dashboards-as-code.
        "query": query,
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
        "type": "query",
    }


def hidden_query_variable(name: str, query: str, description: str) -> Json:
    """A single-value Prometheus query variable the viewer never sees: a value for links, read at load."""
    return {
        "current": {},
        "datasource": DATASOURCE,
        "definition": query,
        "description": description,
        "hide": 2,
        "includeAll": False,
        "multi": False,
        "name": name,
        "options": [],
        "query": query,
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
        "sort": 0,
        "type": "query",
    }


def dashboards_link(tag: str, title: str) -> Json:
    """A drop-down of every dashboard with `tag`, keeping the time range and the variables."""
    return {
        "asDropdown": True,
        "icon": "external link",
        "includeVars": True,
        "keepTime": True,
        "tags": [tag],
        "targetBlank": False,
        "title": title,
        "tooltip": "",
        "type": "dashboards",
        "url": "",
    }


def dashboard_link(uid: str, title: str, tooltip: str) -> Json:
    """A link to one dashboard by uid, passing the time range and the current variables along."""
    return {
        "asDropdown": False,
        "icon": "dashboard",
        "includeVars": True,
        "keepTime": True,
        "tags": [],
        "targetBlank": False,
        "title": title,
        "tooltip": tooltip,
        "type": "link",
        "url": f"/d/{uid}",
    }


@dataclass
class Dashboard:
    uid: str
    title: str
    folder: str  # the sub-folder of grafana/dashboards, which provisioning turns into the Grafana folder
    description: str
    tags: list[str]
    rows: list[list[Panel]]
    variables: list[Json] = field(default_factory=list)
    links: list[Json] = field(default_factory=list)
    time_from: str = "now-6h"

    @property
    def path(self) -> str:
        return f"{self.folder}/{self.uid}.json"

    def panels(self) -> list[Json]:
        result: list[Json] = []
        y = 0
        for row in self.rows:
            x = 0
            for panel in row:
                result.append(_panel_json(panel, len(result) + 1, x, y))
                x += panel.width
            if x > GRID_WIDTH:
                raise ValueError(f"{self.uid}: a row is {x} units wide: {[p.title for p in row]}")
            y += max(panel.height for panel in row)
        return result

    def to_json(self) -> Json:
        return {
            "annotations": {"list": []},
            "description": self.description,
            "editable": False,
            "fiscalYearStartMonth": 0,
            "graphTooltip": 1,
            "links": self.links,
            "panels": self.panels(),
            "refresh": "30s",
            "schemaVersion": SCHEMA_VERSION,
            "tags": self.tags,
            "templating": {"list": self.variables},
            "time": {"from": self.time_from, "to": "now"},
            "timepicker": {},
            "timezone": "browser",
            "title": self.title,
            "uid": self.uid,
            "version": 1,
            "weekStart": "",
        }
