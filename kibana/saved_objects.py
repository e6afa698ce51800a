"""Kibana saved objects (data views, Lens visualizations, the dashboard) generated from kibana.panels.

Target: Kibana 7.17 (the version pinned in versions.toml). The objects use the 7.17 export format:
``index-pattern`` objects with a time field and an empty field list (Kibana fetches the fields when
the data view is opened, so they can be created before any index exists); ``lens`` objects with the
``indexpattern`` datasource, whose data view is a reference named
``indexpattern-datasource-layer-<layer id>``; one ``dashboard`` whose panels are Lens objects by
reference (``panelRefName`` ``panel_<i>`` <-> reference ``<i>:panel_<i>``). ``migrationVersion``
values are the ones Kibana 7.14 wrote, so Kibana 7.17 runs its later migrations on import.

    churnstream kibana generate       # rewrites kibana/saved_objects.ndjson (committed)

Ids are stable and independent of the index prefix; titles (index names) follow the settings, so
the installer generates the objects for its own settings (the committed file is the default
prefix ``churn-``; a test checks it is up to date).
"""

from __future__ import annotations

import json
from pathlib import Path

from foundation.catalog import INDEX
from foundation.settings import Settings
from foundation.versions import versions
from kibana.panels import PANELS, Bucket, Metric, Panel

NDJSON_PATH = Path(__file__).resolve().parent / "saved_objects.ndjson"
DASHBOARD_ID = "churnstream-customer-churn"
DASHBOARD_TITLE = "Customer churn — real time"
MIGRATION_VERSION = {"index-pattern": "7.11.0", "lens": "7.14.0", "dashboard": "7.14.0"}
TIME_FROM, TIME_TO, REFRESH_MS = "now-1h", "now", 10_000
GRID_COLUMNS = 48

LENS_OPS = {"count": "count", "avg": "average", "max": "max", "min": "min", "sum": "sum",
            "cardinality": "unique_count"}
SERIES = {"bar": "bar", "bar_stacked": "bar_stacked", "bar_horizontal": "bar_horizontal", "line": "line"}
DATA_TYPES = {"keyword": "string", "date": "date", "boolean": "boolean", "integer": "number", "long": "number",
              "double": "number", "float": "number"}


def kibana_version() -> str:
    return versions().kibana


def data_view_id(key: str) -> str:
    return f"churnstream-{INDEX[key].name}"


def lens_id(panel: Panel) -> str:
    return f"churnstream-{panel.id}"


def _meta(obj_type: str) -> dict:
    return {"coreMigrationVersion": kibana_version(), "migrationVersion": {obj_type: MIGRATION_VERSION[obj_type]}}


def data_view(settings: Settings, key: str) -> dict:
    return {
        "id": data_view_id(key),
        "type": "index-pattern",
        "attributes": {
            "title": settings.index(INDEX[key].name),
            "timeFieldName": INDEX[key].time_field,
            "fields": "[]",
            "fieldAttrs": "{}",
            "runtimeFieldMap": "{}",
            "typeMeta": "{}",
        },
        "references": [],
        **_meta("index-pattern"),
    }


# --- Lens ----------------------------------------------------------------------------------------------

def _bucket_column(panel: Panel, b: Bucket) -> dict:
    label = b.label or b.field
    if b.kind == "date_histogram":
        return {"label": label, "customLabel": True, "dataType": "date", "isBucketed": True,
                "operationType": "date_histogram", "scale": "interval", "sourceField": b.field,
                "params": {"interval": b.interval}}
    if b.order == "key":
        order_by, direction = {"type": "alphabetical", "fallback": False}, "asc"
    else:
        order_by, direction = {"type": "column", "columnId": "m0"}, "desc"
    return {"label": label, "customLabel": True, "dataType": DATA_TYPES[INDEX[panel.index].fields[b.field]],
            "isBucketed": True, "operationType": "terms", "scale": "ordinal", "sourceField": b.field,
            "params": {"size": b.size, "orderBy": order_by, "orderDirection": direction,
                       "otherBucket": False, "missingBucket": False}}


def _metric_column(m: Metric) -> dict:
    col = {"label": m.label or f"{m.op} of {m.field}", "customLabel": True, "dataType": "number",
           "isBucketed": False, "operationType": LENS_OPS[m.op], "scale": "ratio",
           "sourceField": "Records" if m.op == "count" else m.field}
    return col


def _visualization(panel: Panel, layer: str, buckets: list[str], metrics: list[str]) -> tuple[str, dict]:
    if panel.chart == "metric":
        return "lnsMetric", {"layerId": layer, "layerType": "data", "accessor": metrics[0]}
    if panel.chart == "donut":
        return "lnsPie", {"shape": "donut", "layers": [{
            "layerId": layer, "layerType": "data", "groups": buckets, "metric": metrics[0],
            "numberDisplay": "percent", "categoryDisplay": "default", "legendDisplay": "default",
            "nestedLegend": False}]}
    if panel.chart == "table":
        return "lnsDatatable", {"layerId": layer, "layerType": "data",
                                "columns": [{"columnId": c} for c in buckets + metrics]}
    series = SERIES[panel.chart]
    layer_state = {"layerId": layer, "layerType": "data", "seriesType": series, "xAccessor": buckets[0],
                   "accessors": metrics, "position": "top", "showGridlines": False}
    if len(buckets) > 1:
        layer_state["splitAccessor"] = buckets[1]
    return "lnsXY", {
        "preferredSeriesType": series, "layers": [layer_state],
        "legend": {"isVisible": len(buckets) > 1 or len(metrics) > 1, "position": "right"},
        "valueLabels": "hide", "fittingFunction": "None",
        "axisTitlesVisibilitySettings": {"x": True, "yLeft": True, "yRight": True},
        "tickLabelsVisibilitySettings": {"x": True, "yLeft": True, "yRight": True},
        "gridlinesVisibilitySettings": {"x": True, "yLeft": True, "yRight": True},
    }


def kql(panel: Panel) -> str:
    return " and ".join(f'{f} : "{v}"' for f, v in panel.filter)


def lens(panel: Panel) -> dict:
    layer = "layer1"
    buckets = [f"b{i}" for i in range(len(panel.buckets))]
    metrics = [f"m{i}" for i in range(len(panel.metrics))]
    columns = {c: _bucket_column(panel, b) for c, b in zip(buckets, panel.buckets)}
    columns.update({c: _metric_column(m) for c, m in zip(metrics, panel.metrics)})
    vis_type, vis = _visualization(panel, layer, buckets, metrics)
    dv = data_view_id(panel.index)
    return {
        "id": lens_id(panel),
        "type": "lens",
        "attributes": {
            "title": panel.title,
            "description": panel.note,
            "visualizationType": vis_type,
            "state": {
                "datasourceStates": {"indexpattern": {"layers": {layer: {
                    "columns": columns, "columnOrder": buckets + metrics, "incompleteColumns": {}}}}},
                "visualization": vis,
                "query": {"language": "kuery", "query": kql(panel)},
                "filters": [],
            },
        },
        "references": [
            {"type": "index-pattern", "id": dv, "name": "indexpattern-datasource-current-indexpattern"},
            {"type": "index-pattern", "id": dv, "name": f"indexpattern-datasource-layer-{layer}"},
        ],
        **_meta("lens"),
    }


# --- dashboard -----------------------------------------------------------------------------------------

def layout(panels=PANELS) -> list[dict]:
    """Left-to-right, top-to-bottom flow of the panels on Kibana's 48-column grid."""
    out, x, y, row_h = [], 0, 0, 0
    for p in panels:
        if x + p.width > GRID_COLUMNS:
            x, y, row_h = 0, y + row_h, 0
        out.append({"x": x, "y": y, "w": p.width, "h": p.height})
        x += p.width
        row_h = max(row_h, p.height)
    return out


def dashboard(panels=PANELS) -> dict:
    items, refs = [], []
    for i, (p, grid) in enumerate(zip(panels, layout(panels)), start=1):
        idx = str(i)
        items.append({"version": kibana_version(), "type": "lens", "panelIndex": idx,
                      "gridData": dict(grid, i=idx), "embeddableConfig": {"enhancements": {}},
                      "panelRefName": f"panel_{idx}"})
        refs.append({"type": "lens", "id": lens_id(p), "name": f"{idx}:panel_{idx}"})
    search_source = {"query": {"query": "", "language": "kuery"}, "filter": []}
    return {
        "id": DASHBOARD_ID,
        "type": "dashboard",
        "attributes": {
            "title": DASHBOARD_TITLE,
            "description": "Churn analytics from the churnstream pipeline (generated by kibana/saved_objects.py).",
            "hits": 0,
            "version": 1,
            "panelsJSON": json.dumps(items, ensure_ascii=False, separators=(",", ":")),
            "optionsJSON": json.dumps({"useMargins": True, "syncColors": False, "hidePanelTitles": False},
                                      separators=(",", ":")),
            "timeRestore": True,
            "timeFrom": TIME_FROM,
            "timeTo": TIME_TO,
            "refreshInterval": {"pause": False, "value": REFRESH_MS},
            "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(search_source, separators=(",", ":"))},
        },
        "references": refs,
        **_meta("dashboard"),
    }


def data_views(settings: Settings) -> list[dict]:
    return [data_view(settings, key) for key in INDEX]


def build(settings: Settings) -> list[dict]:
    """Every saved object, dependencies first: data views, Lens visualizations, the dashboard."""
    return data_views(settings) + [lens(p) for p in PANELS] + [dashboard()]


def to_ndjson(objects: list[dict]) -> str:
    return "".join(json.dumps(o, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n"
                   for o in objects)


def default_settings() -> Settings:
    """The committed file is for the default names (no environment)."""
    return Settings()


def generate(path: Path = NDJSON_PATH) -> Path:
    path.write_text(to_ndjson(build(default_settings())), encoding="utf-8")
    return path
