"""`churnstream settings`: the effective settings, secrets as ***."""

from __future__ import annotations

import json


def add_parser(sub) -> None:
    s = sub.add_parser("settings", help="print the effective settings (secrets as ***)")
    s.set_defaults(func=run)


def run(args, settings) -> int:
    print(json.dumps(settings.redacted(), indent=2))
    return 0
