"""The latency bench's warm-up arithmetic on literal numbers (the figures themselves are not tests)."""

from bench.job_bench import warmup_events


def test_events_inside_the_warmup_are_skipped_exactly():
    # 1000 msg/s: events at 0, 1 ms, 2 ms ...; those before 20 s are the first 20 000.
    assert warmup_events(50_000, 0.001, 20.0) == 20_000
    assert warmup_events(50_000, 0.3, 1.0) == 4          # at 0, 0.3, 0.6, 0.9 s
    assert warmup_events(50_000, 0.25, 1.0) == 4         # at 0, 0.25, 0.5, 0.75 s; 1.0 s is measured


def test_no_warmup_or_no_pace_skips_nothing_and_never_more_than_all():
    assert warmup_events(10, 0.001, 0) == 0
    assert warmup_events(1, 0.0, 20.0) == 0
    assert warmup_events(10, 1.0, 60.0) == 10
