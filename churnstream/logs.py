"""One log format for every command: one useful line per event that matters."""

from __future__ import annotations

import logging

NOISY = ("elasticsearch", "kafka", "apache_beam", "py4j", "urllib3")


def configure(verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    # Importing PyFlink (Beam) lowers the root logger's level: pin ours so progress stays visible.
    logging.getLogger("churnstream").setLevel(level)
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
