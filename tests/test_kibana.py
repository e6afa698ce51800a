"""Kibana: index templates, saved objects, installer, and the static HTML report.

Kibana itself cannot run here, so the saved objects (both dashboards) are checked structurally (they
parse, every reference resolves, every field is mapped and aggregatable) and semantically: each Lens object is
translated back into an Elasticsearch aggregation that must equal the panel's, and each panel's
aggregation, run on the real node over the seeded pipeline run, must equal the same answer computed
in plain Python from the independent recomputation of the pipeline (churnstream.expected).
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import shutil
import subprocess
import threading
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from foundation import PROJECT_ROOT, UserError
from foundation.catalog import INDEX
from foundation.settings import Settings
from kibana import panels as P
from kibana import report, saved_objects
from kibana.templates import index_settings, template_body
from test_report_render import check_legible, chromium, probe_labels  # noqa: F401  (chromium: a fixture)

# The catalog's indices as the views these tests read: key -> name, fields, event time field.
INDICES = {k: i.name for k, i in INDEX.items()}
MAPPINGS = {k: i.fields for k, i in INDEX.items()}
TIME_FIELDS = {k: i.time_field for k, i in INDEX.items()}

AGGREGATABLE = {"keyword", "integer", "long", "double", "float", "date", "boolean"}
PII = {"email_hash", "ip_hash", "offer_url", "payload"}


def load_ndjson(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    return load_ndjson(saved_objects.NDJSON_PATH.read_text(encoding="utf-8"))


def by_type(objects, t):
    return [o for o in objects if o["type"] == t]


def index_of(obj: dict, objects) -> str:
    """The index key (INDICES) behind a Lens object, via its data view reference."""
    dv_id = next(r["id"] for r in obj["references"] if r["type"] == "index-pattern")
    title = next(o for o in objects if o["id"] == dv_id)["attributes"]["title"]
    return next(k for k, name in INDICES.items() if Settings().index(name) == title)


# --- the committed NDJSON ------------------------------------------------------------------------------

def test_committed_ndjson_is_the_generated_one():
    generated = saved_objects.to_ndjson(saved_objects.build(saved_objects.default_settings()))
    assert saved_objects.NDJSON_PATH.read_text(encoding="utf-8") == generated, \
        "kibana/saved_objects.ndjson is stale: run '.venv/bin/churnstream kibana generate' and commit it"


def test_every_saved_object_is_in_the_kibana_9_export_format(objects):
    """The envelope Kibana 9.x writes to an export and reads on import."""
    from foundation.versions import versions

    assert versions().kibana.split(".")[0] == "9", "the format below is Kibana 9's"
    assert saved_objects.kibana_version() == versions().kibana
    for o in objects:
        assert set(o) == {"id", "type", "attributes", "references", "coreMigrationVersion",
                          "typeMigrationVersion", "managed"}, (o["id"], sorted(o))
        assert o["coreMigrationVersion"] == "8.8.0" and o["managed"] is False
        assert o["typeMigrationVersion"] == {"index-pattern": "8.0.0", "lens": "8.9.0",
                                             "dashboard": "10.2.0"}[o["type"]], o["id"]
        assert "migrationVersion" not in o        # the 7.x envelope
    for lens in by_type(objects, "lens"):
        attrs = lens["attributes"]
        assert set(attrs) == {"title", "description", "visualizationType", "state"}
        assert set(attrs["state"]["datasourceStates"]) == {"formBased"}      # not 7.x's "indexpattern"
        assert attrs["visualizationType"] in ("lnsMetric", "lnsPie", "lnsXY", "lnsDatatable")


def test_every_saved_object_parses_and_references_only_existing_objects(objects):
    ids = [(o["type"], o["id"]) for o in objects]
    assert len(ids) == len(set(ids))
    known = set(ids)
    for o in objects:
        assert o["attributes"]["title"]
        for ref in o["references"]:
            assert (ref["type"], ref["id"]) in known, (o["id"], ref)
    # Data views: one per index, usable before the index exists; a time field, when there is one,
    # mapped as a date (which one: test_time_picker_filters_events_never_current_state).
    views = by_type(objects, "index-pattern")
    assert {v["attributes"]["title"] for v in views} == {Settings().index(n) for n in INDICES.values()}
    for v in views:
        key = next(k for k, n in INDICES.items() if Settings().index(n) == v["attributes"]["title"])
        if "timeFieldName" in v["attributes"]:
            assert MAPPINGS[key][v["attributes"]["timeFieldName"]] == "date"
        assert v["attributes"]["name"] == v["attributes"]["title"] and v["attributes"]["allowNoIndex"] is True
        for attr in ("fields", "fieldAttrs", "fieldFormatMap", "runtimeFieldMap", "sourceFilters", "typeMeta"):
            json.loads(v["attributes"][attr])                         # stringified JSON, as Kibana stores it
    # Lens: every layer has its data view reference (and nothing else); every accessor names a column.
    for lens in by_type(objects, "lens"):
        state = lens["attributes"]["state"]
        layers = state["datasourceStates"]["formBased"]["layers"]
        assert {r["name"] for r in lens["references"]} == {f"indexpattern-datasource-layer-{lid}" for lid in layers}
        assert all(r["type"] == "index-pattern" for r in lens["references"])
        for layer_id, layer in layers.items():
            assert set(layer["columnOrder"]) == set(layer["columns"])
            for col in layer["columns"].values():
                if col["operationType"] == "terms" and col["params"]["orderBy"]["type"] == "column":
                    assert col["params"]["orderBy"]["columnId"] in layer["columns"]
                if col["operationType"] == "count":
                    assert col["sourceField"] == "___records___"          # Lens' count pseudo field since 8.1
        vis, cols = state["visualization"], set(next(iter(layers.values()))["columns"])
        used = set()
        for layer in vis.get("layers", [vis]):
            assert layer["layerId"] in layers and layer["layerType"] == "data"
            used |= {layer.get(k) for k in ("metricAccessor", "xAccessor", "splitAccessor")} - {None}
            used |= set(layer.get("accessors", [])) | set(layer.get("primaryGroups", []))
            used |= set(layer.get("metrics", []))
            used |= {c["columnId"] for c in layer.get("columns", [])}
            # 7.x keys that 9.x no longer reads
            assert not {"accessor", "groups", "metric"} & set(layer), (lens["id"], set(layer))
        assert used and used == cols, (lens["id"], used ^ cols)
    # The dashboards: one per spec dashboard, each with exactly its panels' Lens objects (every Lens
    # object on one of them), each panelRefName resolved, no overlaps on the grid.
    dashes = {d["id"]: d for d in by_type(objects, "dashboard")}
    assert list(dashes) == [saved_objects.dashboard_id(d) for d in P.DASHBOARDS]
    assert dashes["churnstream-customer-churn"]["attributes"]["title"] == "Customer churn — real time"
    assert dashes["churnstream-customer-value-engagement"]["attributes"]["title"] == "Customer value & engagement"
    assert len({d["attributes"]["title"] for d in dashes.values()}) == len(dashes) == 2
    on_a_dashboard = []
    for spec in P.DASHBOARDS:
        dash = dashes[saved_objects.dashboard_id(spec)]
        panels = json.loads(dash["attributes"]["panelsJSON"])
        refs = {r["name"]: r for r in dash["references"]}
        assert len(refs) == len(dash["references"]) == len(panels)
        for p in panels:
            assert set(p) == {"type", "panelIndex", "gridData", "embeddableConfig", "panelRefName"}, sorted(p)
            assert p["panelRefName"] == f"panel_{p['panelIndex']}"
            assert refs[f"{p['panelIndex']}:{p['panelRefName']}"]["type"] == p["type"] == "lens"
        lens_ids = [refs[f"{p['panelIndex']}:{p['panelRefName']}"]["id"] for p in panels]
        assert lens_ids == [saved_objects.lens_id(p) for p in spec.panels], spec.id
        on_a_dashboard += lens_ids
        cells = set()
        for p in panels:
            g = p["gridData"]
            assert set(g) == {"x", "y", "w", "h", "i"}
            assert g["i"] == p["panelIndex"] and 0 <= g["x"] and g["x"] + g["w"] <= 48
            area = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
            assert not (area & cells), (spec.id, p["panelIndex"])
            cells |= area
        json.loads(dash["attributes"]["optionsJSON"])
        json.loads(dash["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
        # Only attributes of the dashboard schema of model version 2 (its create schema forbids
        # unknown ones; 'sections' came with model version 3).
        assert set(dash["attributes"]) <= {"title", "description", "kibanaSavedObjectMeta", "timeRestore", "timeFrom",
                                           "timeTo", "refreshInterval", "controlGroupInput", "panelsJSON",
                                           "optionsJSON", "hits", "version"}
    assert sorted(on_a_dashboard) == sorted(o["id"] for o in by_type(objects, "lens"))   # each on exactly one


def test_every_panel_field_is_mapped_with_an_aggregatable_type(objects):
    for lens in by_type(objects, "lens"):
        key = index_of(lens, objects)
        state = lens["attributes"]["state"]
        fields = {c["sourceField"] for layer in state["datasourceStates"]["formBased"]["layers"].values()
                  for c in layer["columns"].values() if c["operationType"] != "count"}
        fields |= set(re.findall(r"(\w+) :", state["query"]["query"]))
        for f in fields:
            assert not f.endswith(".keyword"), (lens["id"], f)
            assert f in MAPPINGS[key], (lens["id"], f)
            assert MAPPINGS[key][f] in AGGREGATABLE, (lens["id"], f, MAPPINGS[key][f])
            assert f not in PII, (lens["id"], f)
    for p in P.PANELS:
        assert p.fields() <= set(MAPPINGS[p.index]) and not (p.fields() & PII), p.id
        # A filter's value has its field's type: Elasticsearch's term query matches 1 for "1" on an
        # integer field, Python's == does not (and KQL quotes only text).
        for f, v in p.filter:
            assert type(v) is {"keyword": str, "integer": int, "long": int}.get(MAPPINGS[p.index][f]), (p.id, f, v)


def test_terms_panels_over_a_closed_vocabulary_show_all_of_it():
    from foundation import catalog

    vocabulary = {"risk_tier": catalog.RISK_TIERS.labels, "engagement_segment": catalog.ENGAGEMENT_SEGMENTS.labels,
                  "engagement_status": catalog.ENGAGEMENT_STATUSES, "engagement_decile": range(10),
                  "value_risk_quadrant": range(4), "value_engagement_quadrant": range(4)}
    checked = set()
    for p in P.PANELS:
        for b in p.buckets:
            if b.kind == "terms" and b.field in vocabulary:
                assert b.size >= len(vocabulary[b.field]), (p.id, b.field)
                checked.add(b.field)
    assert checked == set(vocabulary)


def test_dashboards_are_distinct_and_every_panel_is_on_exactly_one():
    assert [d.id for d in P.DASHBOARDS] == ["customer-churn", "customer-value-engagement"]   # stable ids
    assert len({d.title for d in P.DASHBOARDS}) == len(P.DASHBOARDS)
    assert all(d.panels and d.description for d in P.DASHBOARDS)
    assert P.PANELS == tuple(p for d in P.DASHBOARDS for p in d.panels)
    assert len({p.id for p in P.PANELS}) == len(P.PANELS) == len(P.PANELS_BY_ID)
    assert len({saved_objects.dashboard_id(d) for d in P.DASHBOARDS}) == len(P.DASHBOARDS)
    assert saved_objects.dashboard_id(P.DASHBOARDS[0]) == "churnstream-customer-churn"


def test_every_panel_index_has_expected_documents():
    """The integration test compares each panel with python_rows over churnstream.expected's
    documents of the panel's index (Expected.by_index()): every index a panel reads must be there."""
    from dataclasses import fields

    from churnstream.expected import Expected

    keys = set(Expected(**{f.name: {} for f in fields(Expected)}).by_index())
    assert {p.index for p in P.PANELS} <= keys
    assert "inactivity" in {p.index for p in P.PANELS}


def test_dashboard_answers_every_question_of_the_issue():
    titles = " | ".join(p.title.lower() for p in P.DASHBOARDS[0].panels)
    for q in ("average years active", "average fico", "average churn propensity", "churn propensity by activity type",
              "gender distribution", "activity type distribution", "income by gender", "top 10 customers by income",
              "activity type over years active", "longest-standing customers", "gender by income and activity type",
              "rolling churn propensity by activity type", "rolling churn propensity by income band",
              "risk tier distribution", "value / risk quadrants", "churn alerts", "sessions", "dead letters",
              "event rate"):
        assert q in titles, q


def shape(p: P.Panel) -> tuple:
    """What a panel computes, without its presentation (title, labels, note, size)."""
    return (p.index, tuple((m.op, m.field) for m in p.metrics),
            tuple((b.kind, b.field) + ((b.size, b.order) if b.kind == "terms" else (b.interval,)) for b in p.buckets),
            p.filter)


def test_value_dashboard_answers_every_question_of_the_issue():
    """Each question of "Customer value & engagement" as the aggregation that answers it, and the chart."""
    C, HR = "customers", (("high_risk", 1),)
    per_customer = (("terms", "customer_id", 10, "metric"),)
    questions = {
        "average engagement score": ((C, (("avg", "engagement_score"),), (), ()), {"metric"}),
        "high-risk customers": ((C, (("sum", "high_risk"),), (), ()), {"metric"}),
        "high-risk share": ((C, (("avg", "high_risk"),), (), ()), {"metric"}),
        "lifetime value at risk": ((C, (("sum", "cltv"),), (), HR), {"metric"}),
        "monthly revenue at risk": ((C, (("sum", "monthly_premium"),), (), HR), {"metric"}),
        "average sessions in 30 days": ((C, (("avg", "sessions_30d"),), (), ()), {"metric"}),
        "engagement score distribution": (
            (C, (("count", None),), (("terms", "engagement_decile", 10, "key"),), ()), {"bar"}),
        "engagement segments": ((C, (("count", None),), (("terms", "engagement_segment", 5, "metric"),), ()),
                                {"donut"}),
        "value / engagement quadrants": (
            (C, (("count", None),), (("terms", "value_engagement_quadrant", 4, "key"),), ()), {"bar"}),
        "at-risk customers to target": (
            (C, (("max", "value_at_risk"), ("max", "recency_days"), ("max", "rolling_propensity")), per_customer, ()),
            {"table"}),
        "high-value engaged customers": (
            (C, (("max", "cltv"), ("max", "engagement_score")), per_customer,
             (("value_engagement_quadrant", "high-value/engaged"),)), {"table"}),
        "inactivity alerts per minute": (
            ("inactivity", (("count", None),), (("date_histogram", "alert_time", "1m"),), ()), {"bar"}),
        "engagement status": ((C, (("count", None),), (("terms", "engagement_status", 5, "metric"),), ()),
                              {"donut", "bar"}),
    }
    panels = {p.title.lower(): p for p in P.DASHBOARDS[1].panels}
    assert set(panels) == set(questions)
    for q, (want, charts) in questions.items():
        assert shape(panels[q]) == want and panels[q].chart in charts, q


# --- Lens means the panel's Elasticsearch aggregation ---------------------------------------------------

LENS_TO_ES = {"average": "avg", "max": "max", "min": "min", "sum": "sum", "unique_count": "cardinality"}


def kibana_time_fields(lens: dict, data_view: dict) -> list[str]:
    """The fields a dashboard's time range filters a Lens panel on, read the way Kibana does: Lens
    passes the fields of its date-histogram columns to esaggs as ``timeFields``, and esaggs falls
    back to the data view's time field when there are none
    (x-pack/platform/plugins/shared/lens/public/datasources/form_based/to_expression.ts,
    src/platform/plugins/shared/data/common/search/expressions/esaggs/request_handler.ts)."""
    (layer,) = lens["attributes"]["state"]["datasourceStates"]["formBased"]["layers"].values()
    histograms = list(dict.fromkeys(c["sourceField"] for c in (layer["columns"][i] for i in layer["columnOrder"])
                                    if c["operationType"] == "date_histogram"))
    default = data_view["attributes"].get("timeFieldName")
    return histograms or ([default] if default else [])


def lens_to_es_query(lens: dict, data_view: dict | None = None, time_range: tuple[int, int] | None = None) -> dict:
    """An independent reading of a Lens object as an Elasticsearch search body; with its data view
    and a time range, the body Kibana sends for it on a dashboard showing that range."""
    state = lens["attributes"]["state"]
    (layer,) = state["datasourceStates"]["formBased"]["layers"].values()
    cols = layer["columns"]
    buckets = [c for c in layer["columnOrder"] if cols[c]["isBucketed"]]
    metrics = [c for c in layer["columnOrder"] if not cols[c]["isBucketed"]]
    names = {c: f"m{i}" for i, c in enumerate(metrics)}
    metric_aggs = {names[c]: {LENS_TO_ES[cols[c]["operationType"]]: {"field": cols[c]["sourceField"]}}
                   for c in metrics if cols[c]["operationType"] != "count"}
    body: dict = {"size": 0, "track_total_hits": True}
    # KQL "field : value": a quoted value is text, an unquoted one here a whole number.
    terms = [(f, text if number == "" else int(number))
             for f, text, number in re.findall(r'(\w+) : (?:"([^"]*)"|(-?\d+))', state["query"]["query"])]
    assert len(terms) == state["query"]["query"].count(" : "), state["query"]["query"]   # nothing unread
    filters = [{"term": {f: v}} for f, v in terms]
    if time_range is not None:
        filters += [{"range": {f: {"gte": time_range[0], "lte": time_range[1], "format": "epoch_millis"}}}
                    for f in kibana_time_fields(lens, data_view)]
    if filters:
        body["query"] = {"bool": {"filter": filters}}
    aggs = dict(metric_aggs)
    for level in range(len(buckets) - 1, -1, -1):
        col = cols[buckets[level]]
        if col["operationType"] == "date_histogram":
            # includeEmptyRows false: Lens asks for buckets with documents only.
            agg = {"date_histogram": {"field": col["sourceField"], "fixed_interval": col["params"]["interval"],
                                      "min_doc_count": 0 if col["params"]["includeEmptyRows"] else 1}}
        else:
            params = col["params"]
            if params["orderBy"]["type"] == "alphabetical":
                order = {"_key": params["orderDirection"]}
            else:
                target = params["orderBy"]["columnId"]
                by = "_count" if cols[target]["operationType"] == "count" else names[target]
                order = [{by: params["orderDirection"]}, {"_key": "asc"}]   # Elasticsearch's own tie-break
            agg = {"terms": {"field": col["sourceField"], "size": params["size"], "order": order}}
        if aggs:
            agg["aggs"] = aggs
        aggs = {f"b{level}": agg, **(metric_aggs if level else {})}
    if aggs:
        body["aggs"] = aggs
    return body


def data_view_of(lens: dict, objects) -> dict:
    dv_id = next(r["id"] for r in lens["references"] if r["type"] == "index-pattern")
    return next(o for o in objects if o["type"] == "index-pattern" and o["id"] == dv_id)


# The dashboards' default range, resolved at a fixed "now".
LAST_HOUR = (1_767_225_600_000 - 3_600_000, 1_767_225_600_000)


def test_each_lens_object_means_the_panels_elasticsearch_aggregation(objects):
    lenses = {o["id"]: o for o in by_type(objects, "lens")}
    for p in P.PANELS:
        lens = lenses[saved_objects.lens_id(p)]
        assert lens["attributes"]["title"] == p.title
        assert index_of(lens, objects) == p.index
        assert lens_to_es_query(lens) == P.es_query(p), p.id
        # On a dashboard: the same time filter as the spec's (what the report and the tests run).
        assert lens_to_es_query(lens, data_view_of(lens, objects), LAST_HOUR) == P.es_query(p, LAST_HOUR), p.id


# --- what the dashboards show in Kibana (issue 27): each defect on the generated objects -----------------

# The panels on the customers index: current state, one document per customer.
CUSTOMER_PANELS = {"risk-tier-distribution", "value-risk-quadrants"} | \
    {p.id for p in P.DASHBOARDS[1].panels if p.id != "inactivity-alerts-over-time"}


def test_time_picker_filters_events_never_current_state(objects):
    """The customers data view has no time field, so the dashboard's time range filters none of the
    14 customer panels (they count every customer: "Engagement status" shows not_active, "At-risk
    customers to target" lists silent customers). Every other data view keeps its event time, and
    every other panel answers "in the time range"."""
    assert len(CUSTOMER_PANELS) == 14
    views = {index_of_view(v): v for v in by_type(objects, "index-pattern")}
    assert "timeFieldName" not in views["customers"]["attributes"]          # optional; absent = none
    for key, v in views.items():
        if key != "customers":
            assert v["attributes"]["timeFieldName"] == TIME_FIELDS[key] == P.DATA_VIEW_TIME_FIELDS[key], key
    unfiltered = set()
    for lens in by_type(objects, "lens"):
        fields = kibana_time_fields(lens, data_view_of(lens, objects))
        panel = next(p for p in P.PANELS if saved_objects.lens_id(p) == lens["id"])
        if not fields:
            unfiltered.add(panel.id)
        else:
            assert all(MAPPINGS[panel.index][f] == "date" for f in fields), panel.id
        assert tuple(fields) == P.time_fields(panel), panel.id
    assert unfiltered == CUSTOMER_PANELS
    assert {P.PANELS_BY_ID[i].index for i in unfiltered} == {"customers"}
    assert all(p.index != "customers" for p in P.PANELS if p.id not in CUSTOMER_PANELS)


def index_of_view(view: dict) -> str:
    return next(k for k, n in INDICES.items() if Settings().index(n) == view["attributes"]["title"])


def test_a_true_zero_is_shown_as_0(objects):
    """Lens' "Hide zero values" (params.emptyAsNull) is off on every count, sum and unique count, so
    no alert, no dead letter, no high-risk customer reads 0 and not N/A."""
    lenses = {o["id"]: o for o in by_type(objects, "lens")}
    for lens in lenses.values():
        (layer,) = lens["attributes"]["state"]["datasourceStates"]["formBased"]["layers"].values()
        for col in layer["columns"].values():
            if col["operationType"] in ("count", "sum", "unique_count"):
                assert col["params"]["emptyAsNull"] is False, lens["id"]
            elif not col["isBucketed"]:
                assert "emptyAsNull" not in col.get("params", {}), lens["id"]   # average/min/max ignore it
    tiles = {"sessions-total": "count", "alerts-total": "count", "dead-letters-total": "count",
             "active-customers": "unique_count", "high-risk-customers": "sum", "cltv-at-risk": "sum",
             "revenue-at-risk": "sum"}
    for pid, op in tiles.items():
        lens = lenses[saved_objects.lens_id(P.PANELS_BY_ID[pid])]
        assert lens["attributes"]["visualizationType"] == "lnsMetric", pid
        (layer,) = lens["attributes"]["state"]["datasourceStates"]["formBased"]["layers"].values()
        col = layer["columns"][lens["attributes"]["state"]["visualization"]["metricAccessor"]]
        assert (col["operationType"], col["params"]) == (op, {"emptyAsNull": False}), pid
    # The same zero in the report: Elasticsearch's answer over nothing is 0, shown as 0.
    empty = {"hits": {"total": {"value": 0}}, "aggregations": {"m0": {"value": 0.0}}}
    for pid in tiles:
        panel = P.PANELS_BY_ID[pid]
        (row,) = P.es_rows(panel, empty)
        assert report.metric(panel, [row]).startswith('<div class="metric"><b>0</b>'), pid


# Versions Kibana 9.0.0, the oldest 9.x, knows for each type: data views have no model versions
# (last migration 8.0.0), the last Lens document migration is 8.9.0, and the dashboard has model
# versions 1 and 2 (3, collapsible sections, came with 9.1). It refuses anything newer on import.
KIBANA_9_0 = {"index-pattern": "8.0.0", "lens": "8.9.0", "dashboard": "10.2.0"}


def test_objects_import_into_every_kibana_9(objects):
    def v(s):
        return tuple(int(x) for x in s.split("."))

    for o in objects:
        assert v(o["typeMigrationVersion"]) <= v(KIBANA_9_0[o["type"]]), (o["id"], o["typeMigrationVersion"])
        assert v(o["coreMigrationVersion"]) <= v("8.8.0")
    assert {o["typeMigrationVersion"] for o in by_type(objects, "dashboard")} == {"10.2.0"}
    for dash in by_type(objects, "dashboard"):
        assert "sections" not in dash["attributes"]                         # a model version 3 attribute


def test_customer_ids_read_without_digit_grouping(objects):
    """customer_id is an identifier: the data views format it with the number pattern '0' (12345,
    not 12,345), and the five customer tables take that format (no column format of their own)."""
    views = {index_of_view(v): v for v in by_type(objects, "index-pattern")}
    with_id = {k for k, fields in MAPPINGS.items() if "customer_id" in fields}
    assert with_id >= {"enriched", "customers", "alerts"}
    for key, v in views.items():
        formats = json.loads(v["attributes"]["fieldFormatMap"])
        if key in with_id:
            assert formats["customer_id"] == {"id": "number", "params": {"pattern": "0"}}, key
            assert "," not in formats["customer_id"]["params"]["pattern"]
        assert set(formats) <= {"customer_id"}, key
    tables = []
    for lens in by_type(objects, "lens"):
        (layer,) = lens["attributes"]["state"]["datasourceStates"]["formBased"]["layers"].values()
        for col in layer["columns"].values():
            if col["operationType"] == "terms" and col["sourceField"] == "customer_id":
                assert "format" not in col["params"], lens["id"]             # the field's format applies
                assert lens["attributes"]["visualizationType"] == "lnsDatatable"
                tables.append(lens["id"])
    assert sorted(tables) == sorted(saved_objects.lens_id(P.PANELS_BY_ID[i]) for i in (
        "top-customers-by-income", "longest-standing-customers", "live-churn-alerts", "at-risk-targets",
        "high-value-engaged"))
    # The report writes bucket keys as they are.
    panel = P.PANELS_BY_ID["at-risk-targets"]
    assert "<td>12345</td>" in report.table(panel, [(12345, 10.0, 1.0, 0.5)])


def test_dashboard_links_use_the_id_kibana_stored_the_dashboard_under():
    """Kibana's _import answers successResults[].destinationId for an object it stored under
    another id; the printed link and the default data view must use it."""
    from kibana.installer import dashboard_links, imported_id

    churn, value = (saved_objects.dashboard_id(d) for d in P.DASHBOARDS)
    enriched = saved_objects.data_view_id("enriched")
    resp = {"success": True, "successCount": 3, "successResults": [
        {"type": "index-pattern", "id": enriched, "meta": {"title": "churn-enriched", "icon": "indexPatternApp"},
         "destinationId": "3b0c5f0e-5a1d-4f3e-9a55-d1f2e1a0c001"},
        {"type": "dashboard", "id": churn, "meta": {"title": "Customer churn — real time", "icon": "dashboardApp"},
         "destinationId": "8f6c1a2e-77b4-4c0e-a1d8-0b5e3b2f9c10", "overwrite": True},
        {"type": "dashboard", "id": value, "meta": {"title": "Customer value & engagement", "icon": "dashboardApp"},
         "overwrite": True}]}
    assert dashboard_links("http://kb:5601/", resp) == [
        "http://kb:5601/app/dashboards#/view/8f6c1a2e-77b4-4c0e-a1d8-0b5e3b2f9c10",
        f"http://kb:5601/app/dashboards#/view/{value}"]
    assert imported_id(resp, "index-pattern", enriched) == "3b0c5f0e-5a1d-4f3e-9a55-d1f2e1a0c001"
    assert imported_id(resp, "dashboard", value) == value
    assert imported_id({"success": True, "successCount": 0}, "dashboard", churn) == churn
    # Same id, another type: not that object.
    assert imported_id({"successResults": [{"type": "lens", "id": churn, "destinationId": "x"}]},
                       "dashboard", churn) == churn


# --- the plain-Python side on literal documents -------------------------------------------------------------

def test_python_rows_order_ties_truncation_buckets_and_missing_values():
    docs = [{"customer_id": c, "income": inc, "gender": g, "t": t}
            for c, inc, g, t in [(3, 100.0, "f", 0), (1, 100.0, "m", 61_000), (2, 50.0, "f", 59_999),
                                 (4, None, "unknown", 120_000), (5, 10.0, None, 1)]]
    top = P.Panel("x", "x", "enriched", "table", (P.Metric("max", "income"), P.Metric("count")),
                  (P.Bucket("terms", "customer_id", size=3),))
    assert P.python_rows(top, docs) == [(1, 100.0, 1), (3, 100.0, 1), (2, 50.0, 1)]   # ties by key asc
    by_key = P.Panel("y", "y", "enriched", "bar", (P.Metric("avg", "income"),),
                     (P.Bucket("terms", "gender", order="key"),))
    assert P.python_rows(by_key, docs) == [("f", 75.0), ("m", 100.0), ("unknown", None)]
    per_min = P.Panel("z", "z", "enriched", "bar", (P.Metric("count"),), (P.Bucket("date_histogram", "t"),),
                      filter=(("gender", "f"),))
    assert P.python_rows(per_min, docs) == [(0, 2)]
    metric = P.Panel("w", "w", "enriched", "metric", (P.Metric("cardinality", "gender"),))
    assert P.python_rows(metric, docs) == [(3,)]


def test_an_integer_filter_means_the_same_in_elasticsearch_kql_and_python():
    """high_risk = 1: a term query on the number, KQL's unquoted number, Python's == on the int."""
    panel = P.PANELS_BY_ID["cltv-at-risk"]
    assert panel.filter == (("high_risk", 1),)
    assert P.es_query(panel)["query"] == {"bool": {"filter": [{"term": {"high_risk": 1}}]}}
    assert saved_objects.kql(panel) == "high_risk : 1"
    assert lens_to_es_query(saved_objects.lens(panel)) == P.es_query(panel)
    docs = [{"customer_id": 1, "high_risk": 1, "cltv": 1200.0}, {"customer_id": 2, "high_risk": 0, "cltv": 50_000.0},
            {"customer_id": 3, "high_risk": 1, "cltv": 300.5}, {"customer_id": 4, "cltv": 7.0}]
    assert P.python_rows(panel, docs) == [(1500.5,)]
    assert P.python_rows(P.PANELS_BY_ID["high-risk-customers"], docs) == [(2.0,)]
    assert P.python_rows(P.PANELS_BY_ID["high-risk-share"], docs) == [(2 / 3,)]
    assert P.python_rows(panel, [d for d in docs if d.get("high_risk") != 1]) == [(0.0,)]   # as ES: sum of none is 0
    # Text and integer values only: those are the types the three readings agree on.
    with pytest.raises(AssertionError):
        P.Panel("x", "x", "customers", "metric", (P.Metric("count"),), filter=(("high_risk", True),))
    with pytest.raises(AssertionError):
        P.Panel("x", "x", "customers", "metric", (P.Metric("count"),), filter=(("cltv", 1.5),))


def test_es_rows_flatten_nested_buckets_and_metrics():
    panel = P.PANELS_BY_ID["rolling-churn-by-activity"]
    resp = {"hits": {"total": {"value": 3}}, "aggregations": {"b0": {"buckets": [
        {"key": 60_000, "doc_count": 3, "m0": {"value": 0.5}, "b1": {"buckets": [
            {"key": "claim", "doc_count": 2, "m0": {"value": 0.25}},
            {"key": "login", "doc_count": 1, "m0": {"value": 1.0}}]}}]}}}
    assert P.es_rows(panel, resp) == [(60_000, "claim", 0.25), (60_000, "login", 1.0)]
    total = P.PANELS_BY_ID["alerts-total"]
    assert P.es_rows(total, {"hits": {"total": {"value": 7}}}) == [(7,)]
    assert P.es_rows(panel, {"hits": {"total": {"value": 0}}}) == []


# --- templates ----------------------------------------------------------------------------------------------

def test_template_settings_are_demo_defaults_and_overridable():
    s = Settings()
    assert index_settings(Settings.from_env(env={})) == {"shards": 1, "replicas": 0, "refresh_interval": "1s"}
    env = {"CHURNSTREAM_INDEX_SHARDS": "3", "CHURNSTREAM_INDEX_REPLICAS": "1", "CHURNSTREAM_INDEX_REFRESH_INTERVAL": "5s"}
    assert index_settings(Settings.from_env(env=env)) == {"shards": 3, "replicas": 1, "refresh_interval": "5s"}
    with pytest.raises(UserError):
        index_settings(Settings.from_env(env={"CHURNSTREAM_INDEX_SHARDS": "many"}))
    body = template_body(s, "enriched", shards=3, replicas=1, refresh_interval="5s")
    assert body["template"]["settings"] == {"number_of_shards": 3, "number_of_replicas": 1, "refresh_interval": "5s"}
    assert body["template"]["mappings"]["dynamic"] == "strict"
    for key, fields in MAPPINGS.items():
        for name, typ in fields.items():
            if name.endswith(("_time", "_start", "_end")):
                assert typ == "date", (key, name)
            if name.endswith(("_hash", "_id")) and name not in ("customer_id", "offer_id", "source_partition"):
                assert typ == "keyword", (key, name)


# --- the HTML page (unit: literal rows) -----------------------------------------------------------------

def literal_results():
    docs = {"enriched": [{"activity_id": "a", "customer_id": 1, "activity_type": "login", "gender": "female",
                          "income": 50_000, "fico": 700, "years_active": 3, "propensity_to_churn": 0.2,
                          "event_time": 0},
                         {"activity_id": "b", "customer_id": 2, "activity_type": "claim", "gender": "male",
                          "income": 70_000, "fico": 650, "years_active": 9, "propensity_to_churn": 0.7,
                          "event_time": 60_000}],
            "segments": [{"window_start": 0, "dimension": d, "segment": "x", "avg_propensity": 0.4,
                          "high_risk_share": 0.5} for d in ("activity_type", "income_band", "tenure_band")],
            "customers": [{"customer_id": 1, "risk_tier": "low", "value_risk_quadrant": "low-value/low-risk",
                           "rolling_propensity": 0.2, "monthly_premium": 0.0, "cltv": 0.0, "value_at_risk": 0.0,
                           "recency_days": 0.5, "sessions_30d": 3, "engagement_score": 0.35, "engagement_decile": 3,
                           "engagement_segment": "low", "engagement_status": "browsing_only", "high_risk": 0,
                           "value_engagement_quadrant": "low-value/disengaged"},
                          {"customer_id": 2, "risk_tier": "high", "value_risk_quadrant": "high-value/high-risk",
                           "rolling_propensity": 0.75, "monthly_premium": 120.0, "cltv": 12_960.0,
                           "value_at_risk": 1080.0, "recency_days": 2.0, "sessions_30d": 0, "engagement_score": 0.62,
                           "engagement_decile": 6, "engagement_segment": "high", "engagement_status": "active",
                           "high_risk": 1, "value_engagement_quadrant": "high-value/engaged"}],
            "alerts": [{"customer_id": 2, "alert_time": 60_000, "rolling_propensity": 0.75}],
            "inactivity": [{"customer_id": 1, "alert_time": 120_000, "inactive_days": 30.0}],
            "sessions": [{"session_start": 0, "duration_seconds": 30}],
            "dead_letters": [{"reason": "malformed_json"}]}
    return [(d, [(p, P.python_rows(p, docs[p.index])) for p in d.panels]) for d in P.DASHBOARDS]


def test_report_page_is_self_contained_and_has_every_panel():
    html = report.page(literal_results(), "unit")
    # One titled section per dashboard, in order, holding exactly its panels, in order.
    sections = html.split('<section class="dashboard" ')[1:]
    assert len(sections) == len(P.DASHBOARDS)
    for d, section in zip(P.DASHBOARDS, sections):
        assert section.startswith(f'id="dashboard-{d.id}" data-dashboard="{d.id}"><h2>{report.esc(d.title)}</h2>')
        assert re.findall(r'data-panel="([\w-]+)"', section) == [p.id for p in d.panels]
        assert f'href="#dashboard-{d.id}"' in html
    assert re.findall(r'data-kind="(\w+)"', html) == [p.chart for p in P.PANELS]     # none empty
    assert len(re.findall(r"<svg ", html)) >= sum(p.chart not in ("metric", "table") for p in P.PANELS)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html), "external resource in the report"
    assert "<script src" not in html and "@import" not in html
    assert "NaN" not in html and "None" not in html


# --- installer against a fake Kibana (protocol) + the real Elasticsearch ------------------------------

class FakeKibana:
    """Just enough of Kibana 9's HTTP API to check what the installer sends: /api/status (full body
    with credentials, only status.overall.level without), saved objects _import (multipart, file
    field, .ndjson name, missing references reported per object) and the default data view of the
    data views API. Every POST needs kbn-xsrf, as in Kibana."""

    def __init__(self, unavailable_polls: int = 2, overall: str = "available"):
        self.objects: dict[tuple[str, str], dict] = {}
        self.calls: list[tuple[str, str, dict]] = []
        self.default_index = None
        self.polls_left = unavailable_polls
        self.overall = overall
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def reply(self, code, body):
                raw = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self):
                fake.calls.append(("GET", self.path, {k.lower(): v for k, v in self.headers.items()}))
                if self.path == "/api/status":
                    if fake.polls_left > 0:
                        fake.polls_left -= 1
                        return self.reply(503, {"status": {"overall": {"level": "unavailable"}}})
                    if self.headers.get("Authorization") is None:   # redacted: the level only
                        return self.reply(200, {"status": {"overall": {"level": fake.overall}}})
                    return self.reply(200, {"name": "kibana", "version": {"number": "9.2.0"}, "status": {
                        "overall": {"level": fake.overall, "summary": "..."},
                        "core": {"elasticsearch": {"level": "available"}, "savedObjects": {"level": "available"}},
                        "plugins": {}}})
                if self.path == "/api/data_views/default":
                    return self.reply(200, {"data_view_id": fake.default_index or ""})
                self.reply(404, {"statusCode": 404, "error": "Not Found"})

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                fake.calls.append(("POST", self.path, {k.lower(): v for k, v in self.headers.items()}))
                if self.headers.get("kbn-xsrf") is None:
                    return self.reply(400, {"message": "Request must contain a kbn-xsrf header."})
                if self.path == "/api/saved_objects/_import?overwrite=true":
                    msg = BytesParser(policy=HTTP).parsebytes(
                        b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body)
                    (part,) = [p for p in msg.iter_parts() if p.get_param("name", header="content-disposition") == "file"]
                    if not part.get_filename("").endswith(".ndjson"):
                        return self.reply(415, {"message": "Unsupported file extension"})
                    objs = load_ndjson(part.get_payload(decode=True).decode("utf-8"))
                    errors = []
                    incoming = {(o["type"], o["id"]) for o in objs}
                    for o in objs:
                        missing = [r for r in o["references"]
                                   if (r["type"], r["id"]) not in incoming and (r["type"], r["id"]) not in fake.objects]
                        if missing:
                            errors.append({"id": o["id"], "type": o["type"],
                                           "error": {"type": "missing_references", "references": missing}})
                    if errors:
                        return self.reply(200, {"success": False, "successCount": 0, "errors": errors})
                    for o in objs:
                        fake.objects[(o["type"], o["id"])] = o
                    return self.reply(200, {"success": True, "successCount": len(objs), "successResults": [
                        {"type": o["type"], "id": o["id"], "meta": {"title": o["attributes"]["title"]}} for o in objs]})
                if self.path == "/api/data_views/default":
                    req = json.loads(body)
                    if req.get("force") or not fake.default_index:
                        fake.default_index = req["data_view_id"]
                    return self.reply(200, {"acknowledged": True})
                self.reply(404, {"statusCode": 404, "error": "Not Found"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_kibana(monkeypatch):
    from kibana import installer

    monkeypatch.setattr(installer, "POLL_SECONDS", 0.05)
    k = FakeKibana()
    yield k
    k.close()


def test_kibana_client_waits_for_status_and_rejects_bad_credentials(fake_kibana):
    from kibana.installer import Kibana

    kb = Kibana(fake_kibana.url, {"Authorization": "Basic eDp5"})
    kb.wait(timeout=10)
    assert [c[1] for c in fake_kibana.calls].count("/api/status") == 3
    fake_kibana.overall = "degraded"          # a plugin degraded, saved objects fine: still installable
    assert kb.ready()[0]
    assert not Kibana(fake_kibana.url, {}).ready()[0]   # redacted answer: degraded, no core detail
    with pytest.raises(UserError, match="not ready"):
        Kibana("http://127.0.0.1:9", {}).wait(timeout=0.2)


def test_kibana_client_imports_everything_in_one_request_and_sets_the_default_data_view(fake_kibana):
    """The Kibana half of the installer (no Elasticsearch needed): the generated objects import
    with every reference resolved, a second import overwrites, the default data view is set once."""
    from kibana.installer import Kibana

    kb = Kibana(fake_kibana.url, {"Authorization": "Basic eDp5"})
    objects = saved_objects.build(Settings())
    for _ in range(2):
        resp = kb.import_ndjson(saved_objects.to_ndjson(objects))
        assert resp["success"] and resp["successCount"] == len(INDICES) + len(P.PANELS) + len(P.DASHBOARDS)
    assert set(fake_kibana.objects) == {(o["type"], o["id"]) for o in objects}
    assert kb.ensure_default_data_view(saved_objects.data_view_id("enriched"))
    assert not kb.ensure_default_data_view(saved_objects.data_view_id("alerts"))   # already set: kept
    assert fake_kibana.default_index == saved_objects.data_view_id("enriched")
    assert all(h.get("kbn-xsrf") and h.get("authorization") for m, _, h in fake_kibana.calls if m == "POST")
    assert {i for t, i in fake_kibana.objects if t == "dashboard"} == \
        {"churnstream-customer-churn", "churnstream-customer-value-engagement"}
    # A dashboard without its Lens objects is refused with the missing references, not half-imported.
    for dash in P.DASHBOARDS:
        fake_kibana.objects.clear()
        with pytest.raises(UserError, match="missing_references"):
            kb.import_ndjson(saved_objects.to_ndjson([saved_objects.dashboard(dash)]))


@pytest.mark.integration
def test_templates_are_installed_and_shape_new_indices(stack):
    from kibana.templates import install_templates, template_name

    es = stack.es_client()
    names = install_templates(stack)
    assert len(names) == len(MAPPINGS)
    for key in MAPPINGS:
        got = es.indices.get_index_template(name=template_name(stack, key))["index_templates"][0]
        assert got["index_template"]["template"]["mappings"]["properties"].keys() == MAPPINGS[key].keys()
    sim = es.indices.simulate_index_template(name=stack.index(INDICES["alerts"]))["template"]
    assert sim["settings"]["index"]["number_of_replicas"] == "0"
    assert {k: v["type"] for k, v in sim["mappings"]["properties"].items()} == MAPPINGS["alerts"]


@pytest.mark.integration
def test_install_is_idempotent_with_security_headers(stack, fake_kibana):
    from kibana.installer import install

    secured = stack.with_(es_username="elastic", es_password="s3cret")   # local ES has security off
    for _ in range(2):
        summary = install(secured, kibana_url=fake_kibana.url, timeout=30)
        assert summary["imported"] == len(INDICES) + len(P.PANELS) + len(P.DASHBOARDS)
    assert len(summary["data_views"]) == len(INDICES)
    expected_auth = "Basic " + base64.b64encode(b"elastic:s3cret").decode()
    assert all(h.get("authorization") == expected_auth for _, _, h in fake_kibana.calls)
    assert all(h.get("kbn-xsrf") for m, _, h in fake_kibana.calls if m == "POST")
    objs = fake_kibana.objects
    assert {o["attributes"]["title"] for (t, _), o in objs.items() if t == "index-pattern"} == \
        {stack.index(n) for n in INDICES.values()}
    # The tests' own index prefix gets its own ids (kibana/saved_objects.py), as avro-churn- does.
    ids = [saved_objects.dashboard_id(d, stack) for d in P.DASHBOARDS]
    assert all(("dashboard", i) in objs for i in ids)
    assert fake_kibana.default_index == saved_objects.data_view_id("enriched", stack)
    assert [u.rsplit("/", 1)[1] for u in summary["dashboards"]] == ids and summary["dashboard"] == summary["dashboards"][0]


def test_install_cli_parses_and_skip_kibana_flag():
    import argparse

    from churnstream.commands import kibana as cli

    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["kibana", "install", "--skip-kibana", "--kibana-url", "http://k:5601", "--replicas", "1"])
    assert args.func is cli.install and args.skip_kibana and args.kibana_url == "http://k:5601" and args.replicas == 1
    args = parser.parse_args(["kibana", "report", "--out", "x.html"])
    assert args.func is cli.report and args.out == "x.html"


# --- every panel on the real node over the seeded pipeline run -----------------------------------------

def expected_docs(expected, key: str) -> list[dict]:
    docs = expected.by_index()[key]
    return list(docs.values()) if isinstance(docs, dict) else list(docs)


def same_rows(got: list[tuple], want: list[tuple]) -> bool:
    if len(got) != len(want):
        return False
    for g, w in zip(got, want):
        if len(g) != len(w):
            return False
        for a, b in zip(g, w):
            if isinstance(a, float) or isinstance(b, float):
                if a is None or b is None:
                    if a is not b:
                        return False
                elif not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9):
                    return False
            elif a != b:
                return False
    return True


@pytest.mark.integration
@pytest.mark.parametrize("panel", P.PANELS, ids=lambda p: p.id)
def test_panel_aggregation_matches_plain_python(pipeline_run, panel):
    s = pipeline_run.settings
    got = P.run(s.es_client(), s.index(INDICES[panel.index]), panel)
    want = P.python_rows(panel, expected_docs(pipeline_run.expected, panel.index))
    assert want and (panel.chart == "metric" or len(want) > 0)
    assert same_rows(got, want), f"{panel.id}\nElasticsearch: {got[:12]}\nPython:        {want[:12]}"


def with_kafka_time(dead_letters: list[dict], config) -> list[dict]:
    """The recomputation's dead letters (reason, payload; in the order of the activity records that
    caused them) with the time field of their data view: the Kafka timestamp of that record. A
    duplicate re-sends an earlier record with its timestamp, so the first record not yet used with
    the same payload has the right one."""
    from foundation import catalog
    from generator import expected_records

    records = [r for r in expected_records(config) if r.topic == catalog.ACTIVITY]
    out, i = [], 0
    for d in dead_letters:
        while records[i].value.decode("utf-8", errors="replace") != d["payload"]:
            i += 1
        out.append(dict(d, kafka_time=records[i].timestamp_ms))
        i += 1
    return out


@pytest.mark.integration
@pytest.mark.parametrize("panel", P.PANELS, ids=lambda p: p.id)
def test_panel_over_a_dashboard_time_range_matches_plain_python(pipeline_run, panel):
    """Each panel as Kibana asks it over a time range (kibana.panels.time_fields): on the default
    "last hour" at a now long after the seeded run, and over the run's first three minutes.
    Current-state panels answer the same as with no range at all, every customer included."""
    from conftest import PIPELINE_START_MS

    s = pipeline_run.settings
    docs = expected_docs(pipeline_run.expected, panel.index)
    if panel.index == "dead_letters":
        docs = with_kafka_time(docs, pipeline_run.config)
    whole = P.run(s.es_client(), s.index(INDICES[panel.index]), panel)
    now = PIPELINE_START_MS + 30 * 86_400_000
    last_hour, first_minutes = (now - 3_600_000, now), (PIPELINE_START_MS, PIPELINE_START_MS + 180_000)
    for time_range in (last_hour, first_minutes):
        got = P.run(s.es_client(), s.index(INDICES[panel.index]), panel, time_range)
        want = P.python_rows(panel, docs, time_range)
        assert same_rows(got, want), f"{panel.id} {time_range}\nElasticsearch: {got[:12]}\nPython:        {want[:12]}"
        if panel.id in CUSTOMER_PANELS:
            assert got and same_rows(got, whole), panel.id                 # every customer, any range
        elif time_range == last_hour:
            assert got in ([], [(0,)], [(None,)], [(0.0,)]), (panel.id, got)   # no event of the run in it
    if panel.id == "engagement-status":
        assert "not_active" in {r[0] for r in whole}


# --- the HTML report in headless Chromium ---------------------------------------------------------------

@pytest.mark.integration
def test_report_renders_every_panel_in_chromium_without_console_errors(pipeline_run, chromium, tmp_path):
    html = report.render(pipeline_run.settings)
    page = tmp_path / "report.html"
    page.write_text(html, encoding="utf-8")
    dom, console = chromium.dump_dom(page)
    assert console == [], f"console messages: {console}"
    labels, _, _ = probe_labels(chromium, html, tmp_path)
    check_legible(labels)                          # every label of the real run's charts, as rendered
    status = re.search(r'<span id="render-status" data-rendered="(\w+)" data-panels="(\d+)"', dom)
    assert status and status.groups() == ("yes", str(len(P.PANELS))), dom[-600:]
    kinds = dict(re.findall(r'data-panel="([\w-]+)" data-kind="(\w+)"', dom))
    assert kinds == {p.id: p.chart for p in P.PANELS}, kinds      # no empty or failed panel
    titles = re.findall(r'<section class="dashboard" id="dashboard-([\w-]+)" data-dashboard="[\w-]+"><h2>([^<]*)</h2>', dom)
    assert titles == [(d.id, report.esc(d.title)) for d in P.DASHBOARDS], titles
    png = tmp_path / "dashboard.png"
    assert chromium.screenshot(page, png) == []                  # the whole page, both dashboards
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and 10_000 < png.stat().st_size < 2_000_000
    if os.environ.get("CHURNSTREAM_UPDATE_SCREENSHOT"):
        shutil.copyfile(png, PROJECT_ROOT / "docs" / "dashboard.png")


def test_another_index_prefix_gets_its_own_complete_set_of_saved_objects():
    """The compose Avro profile installs a second dashboard on avro-churn-*: beside the default set,
    not over it, and every reference inside the set resolves to the set."""
    from foundation.settings import Settings
    from kibana import saved_objects

    default = saved_objects.build(Settings())
    avro = saved_objects.build(Settings(index_prefix="avro-churn-"))
    ids = lambda objs: {(o["type"], o["id"]) for o in objs}   # noqa: E731
    assert len(ids(avro)) == len(avro) == len(default) and not ids(avro) & ids(default)
    for o in avro:
        for ref in o["references"]:
            assert (ref["type"], ref["id"]) in ids(avro), (o["id"], ref)
    titles = [o["attributes"]["title"] for o in avro if o["type"] == "index-pattern"]
    assert titles and all(t.startswith("avro-churn-") for t in titles)
    dashes = [o for o in avro if o["type"] == "dashboard"]
    assert [d["id"] for d in dashes] == [saved_objects.dashboard_id(d, Settings(index_prefix="avro-churn-"))
                                         for d in P.DASHBOARDS] == \
        ["churnstream-avro-churn-customer-churn", "churnstream-avro-churn-customer-value-engagement"]
    assert all(d["attributes"]["title"].endswith("(avro-churn-*)") for d in dashes)
    # The default set is the committed file, unchanged.
    assert saved_objects.to_ndjson(default) == saved_objects.NDJSON_PATH.read_text(encoding="utf-8")
