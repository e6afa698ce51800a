"""Exact send rates: a token bucket refilled from the monotonic clock (never random sleeps).

The rate may vary over time (a ramp up to the target, periodic bursts); the bucket integrates it,
so the count over any long window matches the integral of the profile.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class RateProfile:
    rate: float                 # messages per second; 0 = unlimited
    ramp_s: float = 0.0         # linear ramp from 0 up to `rate` over this many seconds
    burst_every_s: float = 0.0  # every this many seconds ...
    burst_for_s: float = 0.0    # ... for this long ...
    burst_factor: float = 1.0   # ... send at rate * factor

    def at(self, t: float) -> float:
        r = self.rate
        if self.ramp_s > 0 and t < self.ramp_s:
            r = max(r * t / self.ramp_s, r * 0.01)   # never fully 0, or the bucket would stall at t=0
        if self.burst_every_s > 0 and self.burst_for_s > 0 and (t % self.burst_every_s) < self.burst_for_s:
            r *= self.burst_factor
        return r

    def scaled(self, factor: float) -> "RateProfile":
        """The share of one of several workers."""
        return RateProfile(self.rate * factor, self.ramp_s, self.burst_every_s, self.burst_for_s, self.burst_factor)


class TokenBucket:
    """take() blocks just long enough to keep the long-run rate on the profile."""

    def __init__(self, profile: RateProfile, burst_s: float = 0.05, clock=time.monotonic, sleep=time.sleep):
        self.profile, self.clock, self.sleep = profile, clock, sleep
        self.t0 = self.last = clock()
        self.burst_s = burst_s
        self.tokens = 1.0

    def _refill(self) -> None:
        now = self.clock()
        rate = self.profile.at(now - self.t0)
        self.tokens = min(self.tokens + (now - self.last) * rate, max(1.0, rate * self.burst_s))
        self.last = now

    def take(self, n: int = 1) -> None:
        self.tokens -= n
        if self.tokens >= 0:
            return
        self._refill()
        while self.tokens < 0:
            rate = self.profile.at(self.last - self.t0) or 1.0
            self.sleep(min(max(-self.tokens / rate, 1e-5), 0.1))   # >0: float dust must not spin forever
            self._refill()
