"""Generator throughput against the real local Kafka, next to the ceiling of a bare producer loop.

    .venv/bin/python bench/generator_bench.py [--count 1000000]

Prints msgs/s for: a bare confluent-kafka produce() loop over pre-built payloads (same producer
config, same broker, same topic layout), then the generator for JSON and Avro with one and two
workers. Rates are for the streaming phase (after setup and the customer/offer snapshot).
Topics are created under a throw-away prefix and deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from foundation.settings import Settings  # noqa: E402
from foundation.catalog import TOPICS  # noqa: E402
from foundation.topics import delete_topics, ensure_topics  # noqa: E402
from generator import GeneratorConfig, generate, produce  # noqa: E402
from generator.sinks import producer_config, probe_kafka  # noqa: E402


def bare_loop(settings: Settings, count: int) -> float:
    """The ceiling: produce() of payloads built beforehand, nothing else in the loop."""
    from confluent_kafka import Producer

    recs = [r for r in generate(GeneratorConfig(activities=min(count, 100_000), start_ms=1_704_067_200_000))
            if r.topic == "customer_activity"]
    topic = settings.topic("customer_activity")
    p = Producer(producer_config(settings))
    produce_, poll = p.produce, p.poll
    n = len(recs)
    produce_(topic, recs[0].value, recs[0].key, timestamp=recs[0].timestamp_ms)   # connect first, as the
    p.flush(30)                                     # generator has (its snapshot) before its rate is timed
    t0 = time.monotonic()
    for i in range(count):
        r = recs[i % n]
        try:
            produce_(topic, r.value, r.key, timestamp=r.timestamp_ms)
        except BufferError:
            poll(0.05)
            produce_(topic, r.value, r.key, timestamp=r.timestamp_ms)
    p.flush(60)
    return count / (time.monotonic() - t0)


def generator_rate(settings: Settings, count: int, fmt: str = "json", workers: int = 1) -> float:
    """msgs/s of the generator's streaming phase (after setup and the customer/offer snapshot)."""
    cfg = GeneratorConfig(activities=count, start_ms=1_704_067_200_000, format=fmt)
    ledger = produce(settings, cfg, workers=workers, progress=False)
    assert ledger["failed"] == 0, ledger["errors"]
    return ledger["stream_rate_msgs_per_s"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1_000_000, help="activity events per measurement")
    args = ap.parse_args()
    settings = Settings.from_env().with_(topic_prefix=f"bench{os.getpid()}-")
    probe_kafka(settings)
    ensure_topics(settings)
    rows = []
    try:
        rows.append(("bare confluent-kafka loop (ceiling)", 1, bare_loop(settings, args.count)))
        for fmt in ("json", "avro"):
            for workers in (1, 2):
                rows.append((f"generator {fmt}", workers, generator_rate(settings, args.count, fmt, workers)))
    finally:
        delete_topics(settings, [settings.topic(t.name) for t in TOPICS])
    print(f"{'what':<38}{'workers':>8}{'msgs/s':>12}{'vs bare':>9}")
    ceiling = rows[0][2]
    for what, workers, rate in rows:
        print(f"{what:<38}{workers:>8}{rate:>12,.0f}{rate / ceiling:>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
