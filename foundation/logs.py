"""One log format for every command: one useful line per event that matters."""

from __future__ import annotations

import logging
import sys

NOISY = ("elasticsearch", "elastic_transport", "kafka", "apache_beam", "py4j", "urllib3")
FORMAT, DATEFMT = "%(asctime)s %(name)s %(message)s", "%H:%M:%S"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record is emitted, not the one at set-up: pytest swaps
    sys.stderr for each test and closes the old one ("I/O operation on closed file" otherwise)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure(verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format=FORMAT, datefmt=DATEFMT)
    # Our lines get their own stderr handler and do not go through root: in a local mini-cluster
    # PyFlink starts its Python UDF harness inside this process, and Beam then lowers root's level
    # and swaps root's handlers for one that ships records to the Flink job log - our progress
    # lines would vanish from the terminal mid-run.
    ours = logging.getLogger("churnstream")
    ours.setLevel(level)
    if not any(getattr(h, "churnstream_own", False) for h in ours.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter(FORMAT, datefmt=DATEFMT))
        handler.churnstream_own = True
        ours.addHandler(handler)
    ours.propagate = False
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
