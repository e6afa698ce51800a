"""The pipeline's throughput over Avro topics (--format avro) next to the same over JSON, same run.

    .venv/bin/python -m bench.avro_bench --events 300000

Starts the local stack if needed; prints one line per format and the command. Each figure is
records/s over a bounded run, net of job start and stop (bench/job_bench.throughput).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import uuid

from bench import job_bench


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.avro_bench", description=__doc__)
    p.add_argument("--events", type=int, default=300_000)
    args = p.parse_args(argv)
    from foundation.localstack import stack
    from foundation.settings import Settings

    job_bench.pin_logs()
    settings = stack.up(Settings.from_env())
    tag = "a" + uuid.uuid4().hex[:6]
    job_bench.warm_up(settings.with_(topic_prefix=f"{tag}-w-", index_prefix=f"{tag}-w-"))
    rows = []
    try:
        for fmt in ("json", "avro"):
            s = settings.with_(topic_prefix=f"{tag}-{fmt}-", index_prefix=f"{tag}-{fmt}-")
            r = job_bench.throughput(s, "pipeline", args.events, fmt=fmt)
            rows.append(f"pipeline --format {fmt:<4}: {r['records_per_s']} records/s over {r['events']} events "
                        f"(wall {r['wall_s']} s, start/stop {r['startup_s']} s)")
    finally:
        from bench.__main__ import _cleanup

        _cleanup(settings, tag)
    print("command: python -m bench.avro_bench " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])))
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
