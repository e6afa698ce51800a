"""Kibana saved objects (data views, Lens visualizations, the dashboards) generated from kibana.panels.

Target: Kibana 9.x (versions.toml pins 9.2.0). The objects are in the format Kibana 9 writes to an
export (``Stack Management -> Saved objects -> Export``) and reads back with ``_import``:

* every object carries ``coreMigrationVersion`` ``8.8.0`` (core's last document migration; 9.x
  exports still write it), ``typeMigrationVersion`` (the version of the object's own format) and
  ``managed: false``. The 7.x ``migrationVersion`` map is gone. Kibana migrates an object whose
  ``typeMigrationVersion`` is older than its own on import, and refuses one that is newer ("belongs
  to a more recent version"), so each value below is one that every Kibana 9.x knows, 9.0.0
  included: ``index-pattern`` 8.0.0 (its last migration, the 8.0.0 multi-namespace conversion; no
  model versions), ``lens`` 8.9.0 (the last of Lens' document migrations; the objects carry no
  ``version`` attribute, which is the pre-model-version Lens shape Kibana still accepts on
  create), ``dashboard`` 10.2.0 (model version 2, in since 8.14; model version N is written
  10.N.0). Model version 3 of the dashboard (collapsible ``sections``) came with 9.1: a 9.0 Kibana
  refuses 10.3.0, and a newer one migrates 10.2.0 up by itself (its changes only add mappings);
* data views (type ``index-pattern``) with ``name``, empty ``fields`` and ``allowNoIndex`` (Kibana
  fetches the fields when the view is opened, so the views can be imported before any index
  exists). An event index's view has its time field (``kibana.panels.DATA_VIEW_TIME_FIELDS``); the
  customers view has none (``timeFieldName`` is optional), so the dashboards' time range does not
  filter current state. ``customer_id`` has a number format without digit grouping
  (``fieldFormatMap``): it is an identifier, 12345, not a quantity, 12,345. Lens' terms columns
  take their format from the data view's field format;
* Lens objects with the ``formBased`` datasource
  (``state.datasourceStates.formBased.layers.<layer id>.columns``), whose data view is the reference
  ``indexpattern-datasource-layer-<layer id>``; counts use the ``___records___`` pseudo field;
  count, sum and unique-count columns have ``emptyAsNull: false`` (Lens' "Hide zero values" off,
  so a true zero reads 0, not N/A); metric charts are ``lnsMetric`` with ``metricAccessor``; donuts
  ``lnsPie`` with ``primaryGroups``/``metrics``;
* one ``dashboard`` per ``kibana.panels.DASHBOARDS`` entry, id ``churnstream-<dashboard slug>``,
  whose ``panelsJSON`` holds its panels' Lens objects by reference: each panel has
  ``type``, ``panelIndex``, ``gridData`` (``i`` = ``panelIndex``), ``embeddableConfig`` and
  ``panelRefName`` ``panel_<panelIndex>``, resolved by the reference named
  ``<panelIndex>:panel_<panelIndex>`` (no per-panel ``version``: deprecated since 8.11).

    churnstream kibana generate       # rewrites kibana/saved_objects.ndjson (committed)

Ids are stable; titles (index names) follow the settings, so the installer generates the objects
for its own settings (the committed file is the default prefix ``churn-``; a test checks it is up
to date). Another index prefix (the compose Avro profile's ``avro-churn-``) gets a second, complete
set beside it: every id and the dashboards' titles carry that prefix.
"""

from __future__ import annotations

import json
from pathlib import Path

from foundation.catalog import INDEX
from foundation.settings import Settings, prefix_tag
from foundation.versions import versions
from kibana.panels import DASHBOARDS, DATA_VIEW_TIME_FIELDS, PANELS, Bucket, Dashboard, Metric, Panel

NDJSON_PATH = Path(__file__).resolve().parent / "saved_objects.ndjson"
KIBANA_MAJOR = 9                       # the export format below is Kibana 9's
CORE_MIGRATION_VERSION = "8.8.0"
TYPE_MIGRATION_VERSION = {"index-pattern": "8.0.0", "lens": "8.9.0", "dashboard": "10.2.0"}
TIME_FROM, TIME_TO, REFRESH_MS = "now-1h", "now", 10_000
GRID_COLUMNS = 48
LAYER = "layer1"                       # one data layer per Lens object
RECORDS = "___records___"              # Lens' pseudo field of a count

LENS_OPS = {"count": "count", "avg": "average", "max": "max", "min": "min", "sum": "sum",
            "cardinality": "unique_count"}
# The Lens operations with a "Hide zero values" switch (params.emptyAsNull, on by default when a
# column is made in the editor). On, an empty bucket's 0 becomes null and a metric tile shows N/A
# for a true zero (no alert, no dead letter). Average, min and max ignore the param: theirs is null
# for no value, which is right.
HIDE_ZERO_OPS = {"count", "sum", "unique_count"}
# customer_id is an identifier: no digit grouping.
ID_FORMAT = {"id": "number", "params": {"pattern": "0"}}
ID_FIELDS = ("customer_id",)
SERIES = {"bar": "bar", "bar_stacked": "bar_stacked", "bar_horizontal": "bar_horizontal", "line": "line"}
DATA_TYPES = {"keyword": "string", "date": "date", "boolean": "boolean", "integer": "number", "long": "number",
              "double": "number", "float": "number"}


def kibana_version() -> str:
    """The pinned Kibana (versions.toml); the generated format is for its major version only."""
    v = versions().kibana
    if int(v.split(".")[0]) != KIBANA_MAJOR:
        raise ValueError(f"kibana/saved_objects.py writes the Kibana {KIBANA_MAJOR}.x export format, "
                         f"but versions.toml pins Kibana {v}")
    return v


def _tag(settings: Settings | None) -> str:
    """'' for the default index prefix, else '-<prefix>': the ids of another prefix's set."""
    if settings is None or settings.index_prefix == Settings.index_prefix:
        return ""
    return "-" + prefix_tag(settings.index_prefix)


def data_view_id(key: str, settings: Settings | None = None) -> str:
    return f"churnstream{_tag(settings)}-{INDEX[key].name}"


def lens_id(panel: Panel, settings: Settings | None = None) -> str:
    return f"churnstream{_tag(settings)}-{panel.id}"


def dashboard_id(dash: Dashboard, settings: Settings | None = None) -> str:
    return f"churnstream{_tag(settings)}-{dash.id}"


def _meta(obj_type: str) -> dict:
    kibana_version()
    return {"coreMigrationVersion": CORE_MIGRATION_VERSION, "typeMigrationVersion": TYPE_MIGRATION_VERSION[obj_type],
            "managed": False}


def field_formats(key: str) -> dict:
    """The data view's field formats: identifiers shown as they are."""
    return {f: ID_FORMAT for f in ID_FIELDS if f in INDEX[key].fields}


def data_view(settings: Settings, key: str) -> dict:
    title = settings.index(INDEX[key].name)
    time_field = DATA_VIEW_TIME_FIELDS[key]
    return {
        "id": data_view_id(key, settings),
        "type": "index-pattern",
        "attributes": {
            "title": title,
            "name": title,
            # No attribute at all for a view without a time field, as Kibana writes it.
            **({"timeFieldName": time_field} if time_field else {}),
            "allowNoIndex": True,
            "fields": "[]",
            "fieldAttrs": "{}",
            "fieldFormatMap": json.dumps(field_formats(key), separators=(",", ":")),
            "runtimeFieldMap": "{}",
            "sourceFilters": "[]",
            "typeMeta": "{}",
        },
        "references": [],
        **_meta("index-pattern"),
    }


# --- Lens ----------------------------------------------------------------------------------------------

def _bucket_column(panel: Panel, b: Bucket) -> dict:
    label = b.label or b.field
    if b.kind == "date_histogram":
        # includeEmptyRows false: only buckets with documents, as the panel's min_doc_count 1.
        return {"label": label, "customLabel": True, "dataType": "date", "isBucketed": True,
                "operationType": "date_histogram", "scale": "interval", "sourceField": b.field,
                "params": {"interval": b.interval, "includeEmptyRows": False, "dropPartials": False}}
    if b.order == "key":
        order_by, direction = {"type": "alphabetical", "fallback": False}, "asc"
    else:
        order_by, direction = {"type": "column", "columnId": "m0"}, "desc"
    return {"label": label, "customLabel": True, "dataType": DATA_TYPES[INDEX[panel.index].fields[b.field]],
            "isBucketed": True, "operationType": "terms", "scale": "ordinal", "sourceField": b.field,
            "params": {"size": b.size, "orderBy": order_by, "orderDirection": direction,
                       "otherBucket": False, "missingBucket": False, "parentFormat": {"id": "terms"},
                       "include": [], "exclude": [], "includeIsRegex": False, "excludeIsRegex": False}}


def _metric_column(m: Metric) -> dict:
    op = LENS_OPS[m.op]
    return {"label": m.label or f"{m.op} of {m.field}", "customLabel": True, "dataType": "number",
            "isBucketed": False, "operationType": op, "scale": "ratio",
            "sourceField": RECORDS if m.op == "count" else m.field,
            "params": {"emptyAsNull": False} if op in HIDE_ZERO_OPS else {}}


def _visualization(panel: Panel, layer: str, buckets: list[str], metrics: list[str]) -> tuple[str, dict]:
    if panel.chart == "metric":
        return "lnsMetric", {"layerId": layer, "layerType": "data", "metricAccessor": metrics[0]}
    if panel.chart == "donut":
        return "lnsPie", {"shape": "donut", "layers": [{
            "layerId": layer, "layerType": "data", "primaryGroups": buckets, "metrics": metrics,
            "numberDisplay": "percent", "categoryDisplay": "default", "legendDisplay": "default",
            "nestedLegend": False}]}
    if panel.chart == "table":
        return "lnsDatatable", {"layerId": layer, "layerType": "data",
                                "columns": [{"columnId": c, "isTransposed": False} for c in buckets + metrics]}
    series = SERIES[panel.chart]
    layer_state = {"layerId": layer, "layerType": "data", "seriesType": series, "xAccessor": buckets[0],
                   "accessors": metrics}
    if len(buckets) > 1:
        # The single break-down dimension; every Kibana 9.x reads this key.
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
    # An integer unquoted: KQL then asks for the number, as the panel's term query does.
    return " and ".join(f"{f} : {v}" if isinstance(v, int) else f'{f} : "{v}"' for f, v in panel.filter)


def lens(panel: Panel, settings: Settings | None = None) -> dict:
    buckets = [f"b{i}" for i in range(len(panel.buckets))]
    metrics = [f"m{i}" for i in range(len(panel.metrics))]
    columns = {c: _bucket_column(panel, b) for c, b in zip(buckets, panel.buckets)}
    columns.update({c: _metric_column(m) for c, m in zip(metrics, panel.metrics)})
    vis_type, vis = _visualization(panel, LAYER, buckets, metrics)
    return {
        "id": lens_id(panel, settings),
        "type": "lens",
        "attributes": {
            "title": panel.title,
            "description": panel.note,
            "visualizationType": vis_type,
            "state": {
                "datasourceStates": {"formBased": {"layers": {LAYER: {
                    "columns": columns, "columnOrder": buckets + metrics, "incompleteColumns": {}}}}},
                "visualization": vis,
                "query": {"language": "kuery", "query": kql(panel)},
                "filters": [],
                "internalReferences": [],
                "adHocDataViews": {},
            },
        },
        "references": [
            {"type": "index-pattern", "id": data_view_id(panel.index, settings),
             "name": f"indexpattern-datasource-layer-{LAYER}"},
        ],
        **_meta("lens"),
    }


# --- dashboard -----------------------------------------------------------------------------------------

def layout(panels: tuple[Panel, ...]) -> list[dict]:
    """Left-to-right, top-to-bottom flow of the panels on Kibana's 48-column grid."""
    out, x, y, row_h = [], 0, 0, 0
    for p in panels:
        if x + p.width > GRID_COLUMNS:
            x, y, row_h = 0, y + row_h, 0
        out.append({"x": x, "y": y, "w": p.width, "h": p.height})
        x += p.width
        row_h = max(row_h, p.height)
    return out


def panel_index(panel: Panel) -> str:
    """The dashboard's id of a panel (``panelIndex`` = ``gridData.i``): the panel's stable slug."""
    return panel.id


def dashboard(dash: Dashboard, settings: Settings | None = None) -> dict:
    items, refs = [], []
    for p, grid in zip(dash.panels, layout(dash.panels)):
        idx = panel_index(p)
        ref_name = f"panel_{idx}"
        items.append({"type": "lens", "panelIndex": idx, "gridData": dict(grid, i=idx),
                      "embeddableConfig": {"enhancements": {"dynamicActions": {"events": []}}},
                      "panelRefName": ref_name})
        refs.append({"type": "lens", "id": lens_id(p, settings), "name": f"{idx}:{ref_name}"})
    search_source = {"query": {"query": "", "language": "kuery"}, "filter": []}
    return {
        "id": dashboard_id(dash, settings),
        "type": "dashboard",
        "attributes": {
            "title": dash.title + (f" ({settings.index_prefix}*)" if _tag(settings) else ""),
            "description": f"{dash.description} Generated by kibana/saved_objects.py.",
            "hits": 0,
            "version": 1,
            "panelsJSON": json.dumps(items, ensure_ascii=False, separators=(",", ":")),
            "optionsJSON": json.dumps({"useMargins": True, "syncColors": False, "syncCursor": True,
                                       "syncTooltips": False, "hidePanelTitles": False}, separators=(",", ":")),
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
    """Every saved object, dependencies first: data views, Lens visualizations, the dashboards."""
    return data_views(settings) + [lens(p, settings) for p in PANELS] + [dashboard(d, settings) for d in DASHBOARDS]


def to_ndjson(objects: list[dict]) -> str:
    return "".join(json.dumps(o, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n"
                   for o in objects)


def default_settings() -> Settings:
    """The committed file is for the default names (no environment)."""
    return Settings()


def generate(path: Path = NDJSON_PATH) -> Path:
    path.write_text(to_ndjson(build(default_settings())), encoding="utf-8")
    return path
