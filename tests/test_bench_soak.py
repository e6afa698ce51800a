"""The soak's verdict on literal samples (bench/soak.py): the first minute is warm-up, minutes 2-4
are compared with the last three."""

import pytest

from bench.soak import grows


@pytest.mark.parametrize("values, floor, verdict", [
    ([900, 100, 110, 105, 95, 108, 102], 10, False),          # flat after a warm-up peak
    ([0, 100, 110, 105, 150, 170, 190], 10, True),            # +71 %, above the floor
    ([0, 10, 11, 12, 14, 15, 16], 16, False),                 # +50 % but within the noise floor
    ([0, 100, None, 105, 95, 108, 250, 300], 10, True),       # a missing sample is skipped
    ([0, 100, 110, 105, 95, 108], 10, None),                  # too few samples after the warm-up
    ([0, 1000, 1000, 1000, 1200, 1240, 1260], 100, False),    # +23 %: below 25 %
])
def test_growth_verdict(values, floor, verdict):
    assert grows(values, floor) is verdict


def test_a_figure_that_levelled_off_grew_but_is_not_still_growing():
    from bench.soak import verdicts

    state = [40, 70, 100, 130, 160, 190, 220, 250, 280, 300, 305, 306, 306, 307]   # fills, then flat
    lag = [3000, 3100, 2900, 3050, 3000, 2950, 3100, 3000, 2900, 3000, 3050, 3000, 2950, 3000]
    samples = [{"job_lag": l, "indexer_lag": 0, "checkpoint_ms": 500, "state_mb": s, "rss_mb": {"flink": 1000}}
               for s, l in zip(state, lag)]
    v = verdicts({"samples": samples, "rate": 5000})
    assert v["state_mb"] == {"grew": True, "still_growing": False}
    assert v["job_lag"] == v["rss_flink"] == v["checkpoint_ms"] == {"grew": False, "still_growing": False}
    leak = dict(samples[-1], rss_mb={"flink": 1400})
    assert verdicts({"samples": samples[:-1] + [leak] * 3, "rate": 5000})["rss_flink"]["still_growing"]
