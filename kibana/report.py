"""`churnstream kibana report`: the dashboards without Kibana, as one static HTML file.

Every panel of ``kibana.panels`` is run as its Elasticsearch aggregation (the same query the tests
check) and drawn as inline SVG: bars, lines, donuts, tables and big numbers, in one titled section
per dashboard. The file is self-contained (no CDN, no external file, no network), so it opens
anywhere, offline.
"""

from __future__ import annotations

import html
import math
from datetime import datetime, timezone

from foundation.catalog import INDEX
from foundation.settings import Settings
from kibana import panels as P
from kibana.installer import es_client

PALETTE = ("#54B399", "#6092C0", "#D36086", "#9170B8", "#CA8EAE", "#D6BF57", "#B9A888", "#DA8B45",
           "#AA6556", "#E7664C", "#7DA3D0", "#A6CFA1")
W, H = 480, 250
TITLE = "churnstream dashboards"
esc = html.escape

Results = list[tuple[P.Panel, list[tuple] | str]]   # each panel with its rows, or the error message


# --- values --------------------------------------------------------------------------------------------

def fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if v.is_integer():             # a sum of integers (high-risk customers), a whole average
            return f"{v:,.0f}"
        if abs(v) < 10:
            return f"{v:.3f}"
        if abs(v) < 1000 and not v.is_integer():
            return f"{v:,.1f}"
        return f"{v:,.0f}"
    return f"{v:,}"


def fmt_key(b: P.Bucket, k, span_ms: int = 0) -> str:
    if b.kind == "date_histogram":
        dt = datetime.fromtimestamp(k / 1000, tz=timezone.utc)
        return dt.strftime("%H:%M" if span_ms < 86_400_000 else "%m-%d %H:%M")
    return str(k)


def nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if m * exp >= v:
            return m * exp
    return 10 * exp


def _series(panel: P.Panel, rows: list[tuple]):
    """(x keys in order, [(series name, {x: value})]) from the panel's rows."""
    nb = len(panel.buckets)
    xs: list = []
    for r in rows:
        if r[0] not in xs:
            xs.append(r[0])
    if nb == 1:
        series = [(m.label or m.op, {r[0]: r[1 + i] for r in rows}) for i, m in enumerate(panel.metrics)]
    else:
        names: list = []
        for r in rows:
            if r[1] not in names:
                names.append(r[1])
        series = [(str(n), {r[0]: r[2] for r in rows if r[1] == n}) for n in names]
    if panel.buckets[0].kind == "date_histogram":
        xs.sort()
    return xs, series


# --- SVG pieces ----------------------------------------------------------------------------------------

def _svg(body: str, label: str, w: int = W, h: int = H) -> str:
    return (f'<svg viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="{esc(label)}" '
            f'xmlns="http://www.w3.org/2000/svg">{body}</svg>')


def _legend(names) -> str:
    if len(names) <= 1:
        return ""
    items = "".join(f'<span><i style="background:{PALETTE[i % len(PALETTE)]}"></i>{esc(str(n))}</span>'
                    for i, n in enumerate(names))
    return f'<div class="legend">{items}</div>'


def fmt_tick(v: float, vmax: float) -> str:
    if vmax >= 4:
        return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.1f}"
    return f"{v:.2f}"


def _y_axis(ymax: float, left: int, top: int, bottom: int, right: int) -> str:
    out = []
    for i in range(5):
        v = ymax * i / 4
        y = bottom - (bottom - top) * i / 4
        out.append(f'<line x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                   f'<text x="{left - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{esc(fmt_tick(v, ymax))}</text>')
    return "".join(out)


def bar_chart(panel: P.Panel, rows: list[tuple]) -> str:
    xs, series = _series(panel, rows)
    stacked = panel.chart == "bar_stacked"
    if panel.chart == "bar_horizontal":
        return hbar_chart(panel, xs, series)
    totals = [sum((s.get(x) or 0) for _, s in series) if stacked else max((s.get(x) or 0) for _, s in series)
              for x in xs]
    ymax = nice_max(max(totals, default=0))
    b0 = panel.buckets[0]
    span = (xs[-1] - xs[0]) if xs and b0.kind == "date_histogram" else 0
    labels = [fmt_key(b0, x, span) for x in xs]
    left, right, top = 58, W - 8, 10
    every = max(1, math.ceil(len(xs) / 14))
    rotate = max((len(t) for t in labels), default=0) * 5.6 > (right - left) / max(len(xs), 1) * every
    bottom = H - (70 if rotate else 42)
    band = (right - left) / max(len(xs), 1)
    parts = [_y_axis(ymax, left, top, bottom, right)]
    for i, x in enumerate(xs):
        x0 = left + i * band
        base = bottom
        inner = band * 0.8 / (1 if stacked else len(series))
        for j, (name, s) in enumerate(series):
            v = s.get(x) or 0
            h = (bottom - top) * v / ymax
            color = PALETTE[j % len(PALETTE)]
            bx = x0 + band * 0.1 + (0 if stacked else j * inner)
            by = (base - h) if stacked else bottom - h
            tip = f"{fmt_key(b0, x, span)} · {name}: {fmt(v)}" if len(series) > 1 else f"{fmt_key(b0, x, span)}: {fmt(v)}"
            parts.append(f'<rect x="{bx:.1f}" y="{by:.1f}" width="{max(inner, 0.5):.1f}" height="{h:.1f}" '
                         f'fill="{color}"><title>{esc(tip)}</title></rect>')
            if stacked:
                base -= h
        if i % every == 0:
            tx, ty = x0 + band / 2, bottom + 14
            how = (f'text-anchor="end" transform="rotate(-35 {tx:.1f} {ty})"' if rotate else 'text-anchor="middle"')
            parts.append(f'<text x="{tx:.1f}" y="{ty}" class="tick" {how}>{esc(labels[i])}</text>')
    parts.append(f'<text x="{(left + right) / 2:.1f}" y="{H - 6}" class="axis" text-anchor="middle">'
                 f'{esc(b0.label or b0.field)}</text>')
    parts.append(f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" class="base"/>')
    return _svg("".join(parts), panel.title) + _legend([n for n, _ in series] if len(panel.buckets) > 1 else [])


def hbar_chart(panel: P.Panel, xs, series) -> str:
    name, s = series[0]
    vmax = nice_max(max((s.get(x) or 0 for x in xs), default=0))
    row_h = 22
    h = max(len(xs), 1) * row_h + 16
    left, right = 140, W - 60
    parts = []
    for i, x in enumerate(xs):
        v = s.get(x) or 0
        y = 8 + i * row_h
        w = (right - left) * v / vmax
        parts.append(f'<text x="{left - 6}" y="{y + 14}" class="tick" text-anchor="end">{esc(str(x))}</text>'
                     f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" fill="{PALETTE[1]}">'
                     f'<title>{esc(f"{x}: {fmt(v)}")}</title></rect>'
                     f'<text x="{left + w + 4:.1f}" y="{y + 14}" class="tick">{esc(fmt(v))}</text>')
    return _svg("".join(parts), panel.title, W, h)


def line_chart(panel: P.Panel, rows: list[tuple]) -> str:
    xs, series = _series(panel, rows)
    vals = [v for _, s in series for v in s.values() if v is not None]
    ymax = nice_max(max(vals, default=0))
    left, right, top, bottom = 58, W - 8, 10, H - 42
    x_lo, x_hi = (xs[0], xs[-1]) if xs else (0, 1)
    span = max(x_hi - x_lo, 1)

    def px(x):
        return left + (right - left) * (x - x_lo) / span

    def py(v):
        return bottom - (bottom - top) * v / ymax

    b0 = panel.buckets[0]
    parts = [_y_axis(ymax, left, top, bottom, right)]
    for j, (name, s) in enumerate(series):
        color = PALETTE[j % len(PALETTE)]
        pts = [(x, s[x]) for x in xs if s.get(x) is not None]
        if len(pts) > 1:
            d = " ".join(f"{px(x):.1f},{py(v):.1f}" for x, v in pts)
            parts.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="2">'
                         f'<title>{esc(name)}</title></polyline>')
        for x, v in pts:
            parts.append(f'<circle cx="{px(x):.1f}" cy="{py(v):.1f}" r="2.2" fill="{color}">'
                         f'<title>{esc(f"{fmt_key(b0, x, span)} · {name}: {fmt(v)}")}</title></circle>')
    ticks = 6
    for i in range(ticks + 1):
        x = x_lo + span * i / ticks
        anchor = "start" if i == 0 else "end" if i == ticks else "middle"
        parts.append(f'<text x="{px(x):.1f}" y="{bottom + 14}" class="tick" text-anchor="{anchor}">'
                     f'{esc(fmt_key(b0, int(x), span))}</text>')
    parts.append(f'<text x="{(left + right) / 2:.1f}" y="{H - 6}" class="axis" text-anchor="middle">'
                 f'{esc(b0.label or b0.field)} (UTC)</text>')
    parts.append(f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" class="base"/>')
    return _svg("".join(parts), panel.title) + _legend([n for n, _ in series] if len(panel.buckets) > 1 else [])


def donut_chart(panel: P.Panel, rows: list[tuple]) -> str:
    total = sum(r[1] or 0 for r in rows) or 1
    cx, cy, r_out, r_in = 125, 125, 110, 62
    parts, angle = [], -math.pi / 2
    for i, (key, v) in enumerate((r[0], r[1] or 0) for r in rows):
        frac = v / total
        color = PALETTE[i % len(PALETTE)]
        tip = f"{key}: {fmt(v)} ({frac:.1%})"
        if frac >= 0.9999:
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="{(r_out + r_in) / 2}" fill="none" stroke="{color}" '
                         f'stroke-width="{r_out - r_in}"><title>{esc(tip)}</title></circle>')
            continue
        a2 = angle + 2 * math.pi * frac
        large = 1 if frac > 0.5 else 0
        p = [(cx + r_out * math.cos(angle), cy + r_out * math.sin(angle)),
             (cx + r_out * math.cos(a2), cy + r_out * math.sin(a2)),
             (cx + r_in * math.cos(a2), cy + r_in * math.sin(a2)),
             (cx + r_in * math.cos(angle), cy + r_in * math.sin(angle))]
        d = (f"M{p[0][0]:.2f},{p[0][1]:.2f} A{r_out},{r_out} 0 {large} 1 {p[1][0]:.2f},{p[1][1]:.2f} "
             f"L{p[2][0]:.2f},{p[2][1]:.2f} A{r_in},{r_in} 0 {large} 0 {p[3][0]:.2f},{p[3][1]:.2f} Z")
        parts.append(f'<path d="{d}" fill="{color}" stroke="#fff" stroke-width="1"><title>{esc(tip)}</title></path>')
        angle = a2
    legend = "".join(
        f'<text x="260" y="{30 + i * 20}" class="tick"><tspan fill="{PALETTE[i % len(PALETTE)]}">■</tspan> '
        f'{esc(str(r[0]))}: {esc(fmt(r[1]))} ({(r[1] or 0) / total:.1%})</text>' for i, r in enumerate(rows))
    parts.append(f'<text x="{cx}" y="{cy + 5}" class="total" text-anchor="middle">{esc(fmt(sum(r[1] or 0 for r in rows)))}</text>')
    return _svg("".join(parts) + legend, panel.title)


def table(panel: P.Panel, rows: list[tuple]) -> str:
    heads = [b.label or b.field for b in panel.buckets] + [m.label or m.op for m in panel.metrics]
    th = "".join(f"<th>{esc(h)}</th>" for h in heads)
    body = "".join("<tr>" + "".join(f"<td>{esc(fmt(v) if i >= len(panel.buckets) else str(v))}</td>"
                                   for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f'<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def metric(panel: P.Panel, rows: list[tuple]) -> str:
    v = rows[0][0] if rows else None
    return f'<div class="metric"><b>{esc(fmt(v))}</b><span>{esc(panel.metrics[0].label)}</span></div>'


def chart(panel: P.Panel, rows: list[tuple]) -> str:
    if panel.buckets and not rows:
        return '<div class="empty">No data</div>'
    if panel.chart == "metric":
        return metric(panel, rows)
    if panel.chart == "donut":
        return donut_chart(panel, rows)
    if panel.chart == "table":
        return table(panel, rows)
    if panel.chart == "line":
        return line_chart(panel, rows)
    return bar_chart(panel, rows)


# --- the page ------------------------------------------------------------------------------------------

CSS = """
*{box-sizing:border-box}body{margin:0;font:13px/1.4 -apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;
background:#f5f7fa;color:#343741}header{padding:14px 20px;background:#fff;border-bottom:1px solid #d3dae6}
h1{font-size:20px;margin:0 0 4px}header p{margin:0;color:#69707d}nav a{margin-right:14px;color:#006bb8}
.dashboard{padding:12px 16px 4px}.dashboard>h2{font-size:17px;margin:0 0 2px}.dashboard>p{margin:0 0 8px;color:#69707d}
.grid{display:grid;grid-template-columns:repeat(48,1fr);gap:10px}
.panel{background:#fff;border:1px solid #d3dae6;border-radius:6px;padding:8px 10px;min-width:0}
.panel h3{font-size:13px;margin:0 0 6px;font-weight:600}.note{color:#69707d;font-size:11px;margin:4px 0 0}
.metric{display:flex;flex-direction:column;align-items:center;padding:4px 0}.metric b{font-size:26px;color:#006bb8}
.metric span{color:#69707d;font-size:11px}.empty{color:#98a2b3;padding:40px;text-align:center}
.error{color:#bd271e;padding:12px;font-size:11px;word-break:break-word}
table{border-collapse:collapse;width:100%;font-size:12px}th,td{padding:3px 6px;border-bottom:1px solid #eef0f3;text-align:right}
th:first-child,td:first-child{text-align:left}th{color:#69707d;font-weight:600}
svg text{font-size:10px;fill:#535966}.grid{stroke:#eef0f3}.base{stroke:#98a2b3}.axis{font-size:11px;fill:#69707d}
svg .total{font-size:18px;font-weight:600;fill:#343741}
.legend{display:flex;flex-wrap:wrap;gap:4px 10px;font-size:11px;color:#535966}.legend i{display:inline-block;width:10px;
height:10px;margin-right:4px;border-radius:2px;vertical-align:-1px}footer{padding:6px 20px 16px;color:#98a2b3;font-size:11px}
"""

# Marks the page as rendered only when every panel has content; any script error is shown on the page.
SCRIPT = """
(function(){var errors=[];window.addEventListener('error',function(e){errors.push(String(e.message||e.type));},true);
var panels=document.querySelectorAll('section.panel'),empty=[];
for(var i=0;i<panels.length;i++){if(!panels[i].querySelector('svg,table,.metric,.empty,.error')){empty.push(panels[i].id);}}
var s=document.getElementById('render-status');
s.textContent=(empty.length||errors.length)?('render problems: '+empty.concat(errors).join(', ')):('rendered '+panels.length+' panels');
s.setAttribute('data-rendered',empty.length||errors.length?'no':'yes');s.setAttribute('data-panels',String(panels.length));})();
"""


def _panel(panel: P.Panel, rows: list[tuple] | str) -> str:
    if isinstance(rows, str):
        kind, body = "error", f'<div class="error">{esc(rows)}</div>'
    else:
        kind, body = ("empty" if panel.buckets and not rows else panel.chart), chart(panel, rows)
    return (f'<section class="panel" id="panel-{esc(panel.id)}" data-panel="{esc(panel.id)}" data-kind="{kind}" '
            f'style="grid-column:span {panel.width}"><h3>{esc(panel.title)}</h3>{body}'
            f'<p class="note">{esc(panel.note)}</p></section>')


def page(results: list[tuple[P.Dashboard, Results]], subtitle: str = "") -> str:
    """One section per dashboard (title, description, its panels on the 48-column grid)."""
    nav = "".join(f'<a href="#dashboard-{esc(d.id)}">{esc(d.title)}</a>' for d, _ in results)
    sections = "".join(
        f'<section class="dashboard" id="dashboard-{esc(d.id)}" data-dashboard="{esc(d.id)}">'
        f'<h2>{esc(d.title)}</h2><p>{esc(d.description)}</p>'
        f'<div class="grid">{"".join(_panel(p, rows) for p, rows in panels)}</div></section>'
        for d, panels in results)
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(TITLE)}</title><link rel=\"icon\" href=\"data:,\"><style>{CSS}</style></head>"
            f"<body><header><h1>{esc(TITLE)}</h1><p>{esc(subtitle)}</p><nav>{nav}</nav></header>"
            f"<main>{sections}</main>"
            "<footer>Same panels and aggregations as the Kibana dashboards (kibana/panels.py). "
            "<span id=\"render-status\" data-rendered=\"no\">not rendered</span></footer>"
            f"<script>{SCRIPT}</script></body></html>\n")


def _panel_rows(es, settings: Settings, p: P.Panel) -> list[tuple] | str:
    """The panel's rows, or the error message when Elasticsearch refused the query (typically an
    index created without the churnstream template: text fields cannot aggregate)."""
    try:
        return P.run(es, settings.index(INDEX[p.index].name), p)
    except Exception as e:  # noqa: BLE001 - shown on the panel, the other panels still render
        info = getattr(e, "info", None)
        reason = str(e)
        if isinstance(info, dict):
            reason = str(info.get("error", {}).get("root_cause", [{}])[0].get("reason", reason))
        return f"{type(e).__name__}: {reason[:300]}"


def collect(settings: Settings, es=None) -> list[tuple[P.Dashboard, Results]]:
    """Each dashboard with each of its panels' rows (or error message)."""
    es = es or settings.es_client()
    return [(d, [(p, _panel_rows(es, settings, p)) for p in d.panels]) for d in P.DASHBOARDS]


def render(settings: Settings, es=None) -> str:
    es = es or es_client(settings)
    results = collect(settings, es)
    counts = {}
    for key, index in INDEX.items():
        try:
            counts[key] = es.count(index=settings.index(index.name), ignore_unavailable=True)["count"]
        except Exception:  # noqa: BLE001
            counts[key] = 0
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    docs = ", ".join(f"{k} {v:,}" for k, v in counts.items())
    subtitle = f"{settings.es_url} · indices {settings.index_prefix}* · all data (no time filter) · {docs} · generated {now}"
    return page(results, subtitle)
