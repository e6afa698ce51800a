"""`churnstream kibana install|report|generate`.

    churnstream kibana install [--kibana-url URL] [--skip-kibana]   # templates, data views, dashboards
    churnstream kibana report --out report.html [--screenshot docs/dashboard.png]
    churnstream kibana generate                                      # rewrite kibana/saved_objects.ndjson
"""

from __future__ import annotations

from pathlib import Path

from foundation import UserError


def install(args, settings) -> int:
    from kibana.installer import install as do_install

    summary = do_install(settings, kibana_url=args.kibana_url, skip_kibana=args.skip_kibana, timeout=args.timeout,
                         shards=args.shards, replicas=args.replicas, refresh_interval=args.refresh_interval)
    print(f"index templates: {', '.join(summary['templates'])}")
    if args.skip_kibana:
        print("Kibana: skipped (--skip-kibana)")
    else:
        print(f"data views: {', '.join(summary['data_views'])}")
        print(f"saved objects imported: {summary['imported']}")
        for url in summary["dashboards"]:
            print(f"dashboard: {url}")
    return 0


def report(args, settings) -> int:
    from foundation.health import require_elasticsearch
    from kibana.report import render

    require_elasticsearch(settings)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(settings), encoding="utf-8")
    print(f"report: {out.resolve()}  (open it in a browser: file://{out.resolve()})")
    if args.screenshot:
        from kibana import browser

        if not browser.find_chromium():
            raise UserError("--screenshot needs Chromium; install it (apt-get install chromium) or drop the flag.")
        browser.screenshot(out, Path(args.screenshot))
        print(f"screenshot: {Path(args.screenshot).resolve()}")
    return 0


def generate(args, settings) -> int:
    from kibana.saved_objects import generate as do_generate

    path = do_generate(Path(args.out)) if args.out else do_generate()
    print(f"saved objects: {path}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("kibana", help="index templates, Kibana dashboard, and the static HTML report")
    actions = p.add_subparsers(dest="kibana_action", required=True, parser_class=type(p))

    s = actions.add_parser("install", help="wait for Elasticsearch/Kibana, install templates, data views and the "
                                           "dashboard (idempotent)")
    s.add_argument("--kibana-url", help="Kibana base URL (default: CHURNSTREAM_KIBANA_URL)")
    s.add_argument("--skip-kibana", action="store_true", help="only the Elasticsearch index templates")
    s.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for each service (default 300)")
    s.add_argument("--shards", type=int, help="primary shards per index (default 1, or CHURNSTREAM_INDEX_SHARDS)")
    s.add_argument("--replicas", type=int, help="replicas per index (default 0, or CHURNSTREAM_INDEX_REPLICAS)")
    s.add_argument("--refresh-interval", help="index refresh interval (default 1s, or CHURNSTREAM_INDEX_REFRESH_INTERVAL)")
    s.set_defaults(func=install)

    s = actions.add_parser("report", help="render the dashboard's panels from Elasticsearch to one static HTML file")
    s.add_argument("--out", default="report.html", help="output file (default report.html)")
    s.add_argument("--screenshot", help="also save a PNG of the page (needs Chromium), e.g. docs/dashboard.png")
    s.set_defaults(func=report)

    s = actions.add_parser("generate", help="regenerate kibana/saved_objects.ndjson from kibana/panels.py")
    s.add_argument("--out", help="write elsewhere (default: kibana/saved_objects.ndjson)")
    s.set_defaults(func=generate)
