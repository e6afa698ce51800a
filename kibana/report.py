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
from kibana.browser import WIDTH
from kibana.installer import es_client
from kibana.saved_objects import GRID_COLUMNS

PALETTE = ("#54B399", "#6092C0", "#D36086", "#9170B8", "#CA8EAE", "#D6BF57", "#B9A888", "#DA8B45",
           "#AA6556", "#E7664C", "#7DA3D0", "#A6CFA1")
TITLE = "churnstream dashboards"
esc = html.escape

Results = list[tuple[P.Panel, list[tuple] | str]]   # each panel with its rows, or the error message

# --- layout -----------------------------------------------------------------------------------------
# The page lays the panels on Kibana's 48-column grid. An SVG chart scales with its viewBox, text
# included, so each chart's viewBox is the size its panel has on a page of REFERENCE_WIDTH px: there
# its text renders at its CSS size (FONT px); a narrower window scales it down with the chart.
REFERENCE_WIDTH = WIDTH         # the width the screenshot and the tests lay the page out at
PAGE_PAD, GAP, PANEL_PAD = 16, 10, 10
FONT = 12                       # every chart label, tick and legend
CHAR_W = FONT * 0.62            # a generous average glyph width of the sans-serif stack, for fitting text
LINE_H = FONT + 3
H = 250                         # chart height (viewBox units = px at REFERENCE_WIDTH)
DONUT = 180                     # donut diameter (drawn at its size, never scaled)
SLANT = 35                      # degrees: category labels too long for their bar, even wrapped


def chart_width(panel: P.Panel) -> int:
    """The panel's inner width at REFERENCE_WIDTH, from the same numbers as the CSS grid."""
    column = (REFERENCE_WIDTH - 2 * PAGE_PAD - (GRID_COLUMNS - 1) * GAP) / GRID_COLUMNS
    return int(panel.width * column + (panel.width - 1) * GAP - 2 * PANEL_PAD - 2)   # 2: the borders


def text_width(t: str) -> float:
    return len(t) * CHAR_W


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
    return str(k)            # identifiers (customer_id) as they are: 12345, never 12,345


def nice_axis(v: float, most: int = 5) -> tuple[float, int]:
    """(axis maximum, number of steps) for values up to ``v``: round steps (1, 2 or 5 times a power
    of ten) so that ticks read 0, 50, 100, 150 rather than 37.5, 75, 112.5."""
    if v <= 0:
        return 1.0, 5
    exp = 10 ** math.floor(math.log10(v / most))
    for m in (1, 2, 5, 10):
        step = m * exp
        if math.ceil(v / step - 1e-9) <= most:
            n = max(1, math.ceil(v / step - 1e-9))
            return step * n, n
    return 10 * exp * most, most


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


def wrap(label: str, width: float, max_lines: int = 2) -> list[str]:
    """``label`` on at most ``max_lines`` lines of about ``width`` px, broken after '/' or '_' or at
    a space, so category labels read horizontally."""
    if text_width(label) <= width:
        return [label]
    pieces, cur = [], ""
    for ch in label:
        cur += ch
        if ch in "/ _":
            pieces.append(cur)
            cur = ""
    if cur:
        pieces.append(cur)
    lines = [""]
    for piece in pieces:
        if lines[-1] and text_width(lines[-1] + piece) > width and len(lines) < max_lines:
            lines.append("")
        lines[-1] += piece
    return [ln.strip() for ln in lines if ln.strip()]


# --- SVG pieces ----------------------------------------------------------------------------------------

def _svg(body: str, label: str, w: int, h: int = H) -> str:
    return (f'<svg viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="{esc(label)}" '
            f'xmlns="http://www.w3.org/2000/svg">{body}</svg>')


def _legend(names) -> str:
    if len(names) <= 1:
        return ""
    items = "".join(f'<span><i style="background:{PALETTE[i % len(PALETTE)]}"></i>{esc(str(n))}</span>'
                    for i, n in enumerate(names))
    return f'<div class="legend">{items}</div>'


def fmt_tick(v: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step < 1 else 0
    return f"{v:,.{decimals}f}"


def _ticks(vmax: float) -> tuple[float, list[str]]:
    """The y axis' maximum and its tick labels, from 0 up."""
    ymax, n = nice_axis(vmax)
    return ymax, [fmt_tick(ymax * i / n, ymax / n) for i in range(n + 1)]


def _y_axis(labels: list[str], left: int, top: int, bottom: int, right: int) -> str:
    out = []
    n = len(labels) - 1
    for i, label in enumerate(labels):
        y = bottom - (bottom - top) * i / n
        out.append(f'<line x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" class="gridline"/>'
                   f'<text x="{left - 6}" y="{y + FONT / 3:.1f}" class="tick" text-anchor="end">{esc(label)}</text>')
    return "".join(out)


def _y_left(labels: list[str]) -> int:
    """Room for the widest y tick label."""
    return int(max(text_width(t) for t in labels) + 14)


def bar_chart(panel: P.Panel, rows: list[tuple]) -> str:
    xs, series = _series(panel, rows)
    if panel.chart == "bar_horizontal":
        return hbar_chart(panel, xs, series)
    w = chart_width(panel)
    stacked = panel.chart == "bar_stacked"
    totals = [sum((s.get(x) or 0) for _, s in series) if stacked else max((s.get(x) or 0) for _, s in series)
              for x in xs]
    ymax, ticks = _ticks(max(totals, default=0))
    b0 = panel.buckets[0]
    span = (xs[-1] - xs[0]) if xs and b0.kind == "date_histogram" else 0
    left, right, top = _y_left(ticks), w - 8, 10
    band = (right - left) / max(len(xs), 1)
    # x labels stay horizontal and whole where they can: a long category wraps onto two lines.
    # Numbers and times that do not fit are thinned out (every n-th one, the rest follow from
    # them); categories that do not fit even wrapped are slanted, since each needs its name.
    labels = [wrap(fmt_key(b0, x, span), band - 6) for x in xs]
    widest = max((text_width(ln) for lines in labels for ln in lines), default=0)
    categorical = b0.kind == "terms" and not all(isinstance(x, int) for x in xs)
    slant = categorical and widest + 6 > band
    if slant:
        labels = [[fmt_key(b0, x, span)] for x in xs]
        widest = max((text_width(t[0]) for t in labels), default=0)
    every = 1 if categorical else max(1, math.ceil((widest + 8) / band))
    n_lines = max((len(lines) for lines in labels), default=1)
    label_h = (widest * math.sin(math.radians(SLANT)) + FONT) if slant else LINE_H * n_lines
    bottom = int(H - (label_h + 8 + LINE_H + 4))
    parts = [_y_axis(ticks, left, top, bottom, right)]
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
            tx, ty = x0 + band / 2, bottom + LINE_H
            if slant:
                parts.append(f'<text x="{tx:.1f}" y="{ty}" class="tick" text-anchor="end" '
                             f'transform="rotate(-{SLANT} {tx:.1f} {ty})">{esc(labels[i][0])}</text>')
                continue
            spans = "".join(f'<tspan x="{tx:.1f}" dy="{0 if k == 0 else LINE_H}">{esc(ln)}</tspan>'
                            for k, ln in enumerate(labels[i]))
            parts.append(f'<text x="{tx:.1f}" y="{ty}" class="tick" text-anchor="middle">{spans}</text>')
    parts.append(f'<text x="{(left + right) / 2:.1f}" y="{H - 6}" class="axis-title" text-anchor="middle">'
                 f'{esc(b0.label or b0.field)}{" (UTC)" if b0.kind == "date_histogram" else ""}</text>')
    parts.append(f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" class="baseline"/>')
    return _svg("".join(parts), panel.title, w) + _legend([n for n, _ in series] if len(panel.buckets) > 1 else [])


def hbar_chart(panel: P.Panel, xs, series) -> str:
    w = chart_width(panel)
    name, s = series[0]
    vmax = max((s.get(x) or 0 for x in xs), default=0) or 1
    row_h = FONT + 12
    h = max(len(xs), 1) * row_h + 12
    values = [fmt(s.get(x) or 0) for x in xs]
    left = int(min(max((text_width(str(x)) for x in xs), default=0) + 12, w * 0.45))
    right = w - int(max((text_width(v) for v in values), default=0) + 10)
    parts = []
    for i, x in enumerate(xs):
        v = s.get(x) or 0
        y = 6 + i * row_h
        bw = (right - left) * v / vmax
        parts.append(f'<text x="{left - 6}" y="{y + row_h / 2 + FONT / 3:.1f}" class="tick" text-anchor="end">'
                     f'{esc(str(x))}</text>'
                     f'<rect x="{left}" y="{y + 3}" width="{bw:.1f}" height="{row_h - 6}" fill="{PALETTE[1]}">'
                     f'<title>{esc(f"{x}: {values[i]}")}</title></rect>'
                     f'<text x="{left + bw + 4:.1f}" y="{y + row_h / 2 + FONT / 3:.1f}" class="tick">{esc(values[i])}</text>')
    return _svg("".join(parts), panel.title, w, h)


def line_chart(panel: P.Panel, rows: list[tuple]) -> str:
    w = chart_width(panel)
    xs, series = _series(panel, rows)
    vals = [v for _, s in series for v in s.values() if v is not None]
    ymax, ticks = _ticks(max(vals, default=0))
    left, right, top, bottom = _y_left(ticks), w - 8, 10, H - (2 * LINE_H + 14)
    x_lo, x_hi = (xs[0], xs[-1]) if xs else (0, 1)
    span = max(x_hi - x_lo, 1)

    def px(x):
        return left + (right - left) * (x - x_lo) / span

    def py(v):
        return bottom - (bottom - top) * v / ymax

    b0 = panel.buckets[0]
    parts = [_y_axis(ticks, left, top, bottom, right)]
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
    label_w = text_width(fmt_key(b0, x_lo, span)) + 16
    ticks = max(1, min(6, int((right - left) // label_w)))
    for i in range(ticks + 1):
        x = x_lo + span * i / ticks
        anchor = "start" if i == 0 else "end" if i == ticks else "middle"
        parts.append(f'<text x="{px(x):.1f}" y="{bottom + LINE_H + 2}" class="tick" text-anchor="{anchor}">'
                     f'{esc(fmt_key(b0, int(x), span))}</text>')
    parts.append(f'<text x="{(left + right) / 2:.1f}" y="{H - 6}" class="axis-title" text-anchor="middle">'
                 f'{esc(b0.label or b0.field)} (UTC)</text>')
    parts.append(f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" class="baseline"/>')
    return _svg("".join(parts), panel.title, w) + _legend([n for n, _ in series] if len(panel.buckets) > 1 else [])


def donut_chart(panel: P.Panel, rows: list[tuple]) -> str:
    """The ring at its own size, its legend beside it in HTML (below it when the panel is narrow):
    legend text keeps the page's font size whatever the panel's width."""
    total = sum(r[1] or 0 for r in rows) or 1
    cx = cy = DONUT / 2
    r_out, r_in = DONUT / 2 - 4, DONUT / 2 - 44
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
    parts.append(f'<text x="{cx}" y="{cy + 6}" class="total" text-anchor="middle">'
                 f'{esc(fmt(sum(r[1] or 0 for r in rows)))}</text>')
    ring = (f'<svg viewBox="0 0 {DONUT} {DONUT}" width="{DONUT}" height="{DONUT}" role="img" '
            f'aria-label="{esc(panel.title)}" xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>')
    legend = "".join(
        f'<li><i style="background:{PALETTE[i % len(PALETTE)]}"></i>{esc(str(r[0]))}: '
        f'<b>{esc(fmt(r[1]))}</b> ({(r[1] or 0) / total:.1%})</li>' for i, r in enumerate(rows))
    return f'<div class="donut">{ring}<ul class="donut-legend">{legend}</ul></div>'


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

# Class names are distinct between the page layout and the charts' parts, and chart rules are
# scoped to svg: SVG's stroke is inherited, so a stroke set on an element around a chart would
# outline every label in it. Text never has a stroke.
CSS = f"""
*{{box-sizing:border-box}}body{{margin:0;font:13px/1.4 -apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;
background:#f5f7fa;color:#343741}}header{{padding:14px 20px;background:#fff;border-bottom:1px solid #d3dae6}}
h1{{font-size:20px;margin:0 0 4px}}header p{{margin:0;color:#535966}}nav a{{margin-right:14px;color:#006bb8}}
.dashboard{{padding:12px {PAGE_PAD}px 4px}}.dashboard>h2{{font-size:17px;margin:0 0 2px}}
.dashboard>p{{margin:0 0 8px;color:#535966}}
.panels{{display:grid;grid-template-columns:repeat({GRID_COLUMNS},minmax(0,1fr));gap:{GAP}px}}
.panel{{background:#fff;border:1px solid #d3dae6;border-radius:6px;padding:8px {PANEL_PAD}px;min-width:0}}
.panel h3{{font-size:14px;margin:0 0 6px;font-weight:600}}.note{{color:#535966;font-size:{FONT}px;margin:4px 0 0}}
.metric{{display:flex;flex-direction:column;align-items:center;padding:4px 0}}.metric b{{font-size:26px;color:#006bb8}}
.metric span{{color:#535966;font-size:{FONT}px}}.empty{{color:#69707d;padding:40px;text-align:center}}
.error{{color:#bd271e;padding:12px;font-size:{FONT}px;word-break:break-word}}
table{{border-collapse:collapse;width:100%;font-size:{FONT + 1}px}}
th,td{{padding:3px 6px;border-bottom:1px solid #eef0f3;text-align:right}}
th:first-child,td:first-child{{text-align:left}}th{{color:#535966;font-weight:600}}
svg text{{font-size:{FONT}px;fill:#343741;stroke:none}}svg .axis-title{{fill:#535966;font-weight:600}}
svg .total{{font-size:20px;font-weight:600}}svg .gridline{{stroke:#e3e7ee}}svg .baseline{{stroke:#98a2b3}}
.legend{{display:flex;flex-wrap:wrap;gap:4px 12px;font-size:{FONT}px;color:#343741;margin-top:4px}}
.legend i,.donut-legend i{{display:inline-block;width:11px;height:11px;margin-right:5px;border-radius:2px;vertical-align:-1px}}
.donut{{display:flex;flex-wrap:wrap;align-items:center;gap:8px 18px}}.donut svg{{flex:none}}
.donut-legend{{list-style:none;margin:0;padding:0;font-size:{FONT + 1}px;color:#343741;line-height:1.6}}
footer{{padding:6px 20px 16px;color:#535966;font-size:{FONT}px}}
"""

# Marks the page as rendered only when every panel has content; any script error is shown on the
# page. It also writes the page's laid-out height (for a whole-page screenshot).
SCRIPT = """
(function(){var errors=[];window.addEventListener('error',function(e){errors.push(String(e.message||e.type));},true);
var panels=document.querySelectorAll('section.panel'),empty=[];
for(var i=0;i<panels.length;i++){if(!panels[i].querySelector('svg,table,.metric,.empty,.error')){empty.push(panels[i].id);}}
var s=document.getElementById('render-status');
s.textContent=(empty.length||errors.length)?('render problems: '+empty.concat(errors).join(', ')):('rendered '+panels.length+' panels');
s.setAttribute('data-rendered',empty.length||errors.length?'no':'yes');s.setAttribute('data-panels',String(panels.length));
s.setAttribute('data-page-height',String(Math.ceil(document.documentElement.scrollHeight)));})();
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
        f'<div class="panels">{"".join(_panel(p, rows) for p, rows in panels)}</div></section>'
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
    # Kibana shows event panels over its time range (the last hour by default) and customers always
    # in full; this page has no time range and shows all of every index.
    subtitle = f"{settings.es_url} · indices {settings.index_prefix}* · all data (no time filter) · {docs} · generated {now}"
    return page(results, subtitle)
