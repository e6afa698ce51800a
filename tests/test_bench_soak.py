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
