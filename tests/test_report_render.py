"""The HTML report as a person sees it: rendered by headless Chromium, every label legible.

A probe script, added to the page here (not part of the report), writes the computed style of every
rendered label into the DOM (``chromium --dump-dom``): SVG text (ticks, axis titles, donut totals),
the HTML legends and the tables. A label is legible when it is drawn in a dark colour (contrast
with the white panel of at least 4.5, WCAG AA), has no stroke (SVG's stroke is inherited: a light
outline from an enclosing element washes the text out), renders at 11 px or more (its CSS size times
the SVG's scale on the page) and, on the quadrant charts, reads horizontally.

Chromium is installed with apt-get (Debian's 'chromium' package) when missing; when that is not
possible the test fails and says why: it is never skipped.
"""

from __future__ import annotations

import json
import random
import re

import pytest

from kibana import browser
from kibana import panels as P
from kibana import report

MIN_PX = 11.0
MIN_CONTRAST = 4.5
# Charts whose category labels are long but few: they must read horizontally (wrapped, not slanted).
HORIZONTAL = ("value-engagement-quadrants", "value-risk-quadrants")

PROBE = """<script>
(function(){
var out=[];
document.querySelectorAll('section.panel').forEach(function(panel){
  panel.querySelectorAll('svg text, .legend span, .donut-legend li, th, td, .metric span').forEach(function(el){
    var cs=getComputedStyle(el), svg=el instanceof SVGElement, scale=1, angle=0;
    if(svg){var m=el.getScreenCTM();scale=Math.sqrt(m.a*m.a+m.b*m.b);angle=Math.round(Math.atan2(m.b,m.a)*180/Math.PI);}
    var box=el.getBoundingClientRect();
    out.push({panel:panel.getAttribute('data-panel'),tag:el.tagName.toLowerCase(),text:el.textContent.slice(0,40),
      color:svg?cs.fill:cs.color,stroke:cs.stroke,size:parseFloat(cs.fontSize),shown:parseFloat(cs.fontSize)*scale,
      angle:angle,drawn:box.width>0&&box.height>0&&cs.visibility!=='hidden'&&cs.display!=='none'});
  });
});
var pre=document.createElement('pre');pre.id='label-probe';pre.textContent=JSON.stringify(out);document.body.appendChild(pre);
})();
</script>"""


@pytest.fixture(scope="session")
def chromium():
    """kibana.browser with a Chromium to run (installed here when missing)."""
    try:
        browser.ensure_chromium()
    except RuntimeError as e:
        pytest.fail(f"Chromium is needed to render the report and could not be installed: {e}", pytrace=False)
    return browser


def probe_labels(chromium, html: str, tmp_path, width: int = browser.WIDTH) -> tuple[list[dict], str, list[str]]:
    """(every label's computed style, the DOM, console messages) of ``html`` rendered at ``width``."""
    page = tmp_path / "report-probe.html"
    page.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom, console = chromium.dump_dom(page, width)
    m = re.search(r'<pre id="label-probe">(.*?)</pre>', dom, re.S)
    assert m, "the probe did not run: " + dom[-500:]
    return json.loads(report.html.unescape(m.group(1))), dom, console


def _rgb(css: str) -> tuple[int, int, int]:
    m = re.fullmatch(r"rgba?\((\d+), (\d+), (\d+)(?:, ([\d.]+))?\)", css.strip())
    assert m, f"not an rgb colour: {css!r}"
    assert m.group(4) in (None, "1"), f"translucent text: {css}"
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def contrast_on_white(css: str) -> float:
    def channel(c):
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(c) for c in _rgb(css))
    return 1.05 / (0.2126 * r + 0.7152 * g + 0.0722 * b + 0.05)


def legibility_problems(labels: list[dict]) -> list[str]:
    problems = []
    for lb in labels:
        if not lb["drawn"] or not lb["text"].strip():
            continue
        where = f"{lb['panel']} <{lb['tag']}> {lb['text']!r}"
        if lb["stroke"] != "none":
            problems.append(f"{where}: stroke {lb['stroke']}")
        if contrast_on_white(lb["color"]) < MIN_CONTRAST:
            problems.append(f"{where}: colour {lb['color']} (contrast {contrast_on_white(lb['color']):.1f})")
        if lb["size"] < MIN_PX or lb["shown"] < MIN_PX - 0.05:
            problems.append(f"{where}: {lb['size']:.1f}px, shown at {lb['shown']:.1f}px")
        if lb["panel"] in HORIZONTAL and lb["angle"] != 0:
            problems.append(f"{where}: slanted {lb['angle']} degrees")
    return problems


def check_legible(labels: list[dict], panels=P.PANELS) -> None:
    drawn = [lb for lb in labels if lb["drawn"] and lb["text"].strip()]
    # Labels of every chart kind were measured: ticks and axis titles, donut legends, series
    # legends, tables, metric captions.
    charted = {p.id for p in panels if p.chart != "metric"}
    assert charted <= {lb["panel"] for lb in drawn}, charted - {lb["panel"] for lb in drawn}
    for donut in (p.id for p in panels if p.chart == "donut"):
        assert any(lb["panel"] == donut and lb["tag"] == "li" for lb in drawn), f"{donut}: no legend"
    problems = legibility_problems(labels)
    assert not problems, f"{len(problems)} illegible labels, e.g.:\n" + "\n".join(problems[:25])


def varied_results(seed: int = 5):
    """Every panel with rows like a real run's: every vocabulary value, long category names."""
    from foundation import catalog

    rnd = random.Random(seed)
    kinds = ("accept_offer", "browse", "cancel_request", "claim", "complaint", "login", "new_account", "payment",
             "support_call", "view_offer")
    quadrants_v = ("high-value/disengaged", "high-value/engaged", "low-value/disengaged", "low-value/engaged")
    quadrants_r = ("high-value/high-risk", "high-value/low-risk", "low-value/high-risk", "low-value/low-risk")
    t0 = 1_767_225_600_000
    docs = {
        "enriched": [{"activity_id": str(i), "customer_id": 10_000 + i % 40, "activity_type": rnd.choice(kinds),
                      "gender": rnd.choice(("female", "male", "other")), "income": rnd.randrange(10_000, 250_000),
                      "fico": rnd.randrange(500, 850), "years_active": rnd.randrange(0, 41),
                      "propensity_to_churn": rnd.random(), "event_time": t0 + i * 1_000} for i in range(600)],
        "segments": [{"window_start": t0 + i * 10_000, "dimension": d, "segment": seg, "avg_propensity": rnd.random(),
                      "high_risk_share": rnd.random() / 2}
                     for i in range(60) for d, segs in (("activity_type", kinds), ("income_band", ("<30k", "30-60k")),
                                                        ("tenure_band", ("0-1y", "2-4y"))) for seg in segs],
        "customers": [{"customer_id": 10_000 + c, "risk_tier": rnd.choice(catalog.RISK_TIERS.labels),
                       "value_risk_quadrant": rnd.choice(quadrants_r), "rolling_propensity": rnd.random(),
                       "monthly_premium": rnd.choice((0.0, 80.0, 120.0)), "cltv": rnd.random() * 50_000,
                       "value_at_risk": rnd.random() * 2_000, "recency_days": rnd.random() * 30,
                       "sessions_30d": rnd.randrange(0, 9), "engagement_score": rnd.random(),
                       "engagement_decile": rnd.randrange(0, 10),
                       "engagement_segment": rnd.choice(catalog.ENGAGEMENT_SEGMENTS.labels),
                       "engagement_status": rnd.choice(catalog.ENGAGEMENT_STATUSES), "high_risk": rnd.choice((0, 1)),
                       "value_engagement_quadrant": rnd.choice(quadrants_v)} for c in range(300)],
        "alerts": [{"customer_id": 10_000 + i % 7, "alert_time": t0 + i * 20_000, "rolling_propensity": rnd.random()}
                   for i in range(30)],
        "inactivity": [{"customer_id": 10_000 + i, "alert_time": t0 + i * 3_000} for i in range(200)],
        "sessions": [{"session_start": t0 + i * 5_000, "duration_seconds": rnd.randrange(1, 900)} for i in range(120)],
        "dead_letters": [{"reason": rnd.choice(("malformed_json", "duplicate_activity_id", "propensity_out_of_range",
                                                "missing_customer_id"))} for _ in range(40)],
    }
    return [(d, [(p, P.python_rows(p, docs[p.index])) for p in d.panels]) for d in P.DASHBOARDS]


def test_report_labels_are_legible_in_chromium(chromium, tmp_path):
    labels, dom, console = probe_labels(chromium, report.page(varied_results(), "render test"), tmp_path)
    assert console == [], console
    assert 'data-rendered="yes"' in dom
    check_legible(labels)
    # customer_id, an identifier, reads as it is in the tables.
    cells = {lb["text"] for lb in labels if lb["tag"] == "td"}
    assert "10007" in cells and "10,007" not in cells


def test_a_narrow_window_scales_charts_but_the_layout_never_outlines_text(chromium, tmp_path):
    """Narrower than the reference width, charts (and their text) scale down with their panels;
    colour and stroke stay right everywhere."""
    labels, _, _ = probe_labels(chromium, report.page(varied_results(), "narrow"), tmp_path, width=1000)
    assert labels
    assert [lb for lb in labels if lb["drawn"] and lb["stroke"] != "none"] == []
    assert all(contrast_on_white(lb["color"]) >= MIN_CONTRAST for lb in labels if lb["drawn"])


def test_the_report_reuses_no_class_name_between_layout_and_chart_styles():
    """The defect behind the washed-out labels: the layout div and the charts' grid lines shared the
    class 'grid', and a stroke set for one applied to the other."""
    html = report.page(varied_results(), "classes")
    layout = set(re.findall(r'<(?:div|section|main|header|footer)[^>]* class="([\w -]+)"', html))
    svg_classes = set(re.findall(r'<(?:line|text|rect|path|circle|polyline)[^>]* class="([\w -]+)"', html))
    assert layout and svg_classes and not (layout & svg_classes), layout & svg_classes
    css = report.CSS
    assert "stroke:none" in css.split("svg text{", 1)[1].split("}", 1)[0]     # said, not left to inheritance
    for rule in re.findall(r"([^{}]+)\{[^}]*stroke:(?!none)", css):
        assert rule.strip().startswith("svg "), f"a stroke outside svg: {rule.strip()}"


def test_a_failed_chromium_install_is_an_error_that_says_why(monkeypatch, tmp_path):
    """What the fixture turns into a test failure (never a skip): apt-get's own message."""
    fake = tmp_path / "apt-get"
    fake.write_text("#!/bin/sh\necho 'E: Unable to locate package chromium' >&2\nexit 100\n")
    fake.chmod(0o755)
    monkeypatch.setattr(browser, "find_chromium", lambda: None)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(browser.os, "geteuid", lambda: 0, raising=False)
    with pytest.raises(RuntimeError, match="(?s)exit code 100.*Unable to locate package chromium"):
        browser.ensure_chromium()
    monkeypatch.setattr(browser.os, "geteuid", lambda: 1000, raising=False)
    with pytest.raises(RuntimeError, match="needs root"):
        browser.ensure_chromium()
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    with pytest.raises(RuntimeError, match="no apt-get"):
        browser.ensure_chromium()
