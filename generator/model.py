"""The insurance story: who the customers are, what they do, and how likely they are to leave.

Churn propensity is a per-customer base risk (tenure, FICO and income bands: new, poor-credit,
low-income customers are riskier) plus an effect of what the customer is doing right now
(complaints and cancel requests push it up, payments and accepted offers pull it down), plus a
little noise. Riskier customers also *do* riskier things more often, so the dashboards show the
same story from both sides. Everything not part of the story comes from the schema generically.
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from itertools import accumulate

import numpy as np

from generator.schema import Schema, field_annotations
from generator.values import Context, Pools, compile_record

ACTIVITY_TYPES = ("new_account", "login", "browse", "view_offer", "accept_offer",
                  "payment", "claim", "support_call", "complaint", "cancel_request")
# Effect of the current activity on the churn score.
TYPE_EFFECT = {"new_account": 0.15, "login": -0.03, "browse": 0.0, "view_offer": -0.02, "accept_offer": -0.12,
               "payment": -0.06, "claim": 0.05, "support_call": 0.08, "complaint": 0.22, "cancel_request": 0.35}
# Activity mix of the least and most risky customers; bands in between interpolate.
MIX_LOW = {"new_account": 0, "login": 30, "browse": 25, "view_offer": 15, "accept_offer": 6,
           "payment": 15, "claim": 4, "support_call": 3, "complaint": 1.5, "cancel_request": 0.5}
MIX_HIGH = {"new_account": 0, "login": 18, "browse": 14, "view_offer": 10, "accept_offer": 2,
            "payment": 8, "claim": 8, "support_call": 15, "complaint": 15, "cancel_request": 10}
NEW_ACCOUNT_WEIGHT = 15          # only customers in their first year open accounts
RISK_BANDS = (0.15, 0.25, 0.35, 0.5)
CHANNEL_MIX = {
    "new_account": {"web": 50, "mobile": 20, "branch": 30},
    "payment": {"web": 40, "mobile": 50, "branch": 10},
    "claim": {"web": 30, "mobile": 20, "call_center": 40, "branch": 10},
    "support_call": {"call_center": 100},
    "complaint": {"call_center": 50, "web": 30, "branch": 20},
    "cancel_request": {"call_center": 50, "web": 30, "branch": 20},
}
DIGITAL = {"web": 55, "mobile": 45}
OFFER_PROBABILITY = {"view_offer": 1.0, "accept_offer": 1.0, "browse": 0.3}
PREMIUM_BY_LINE = {"auto": (45, 220), "home": (30, 160), "life": (15, 120), "health": (120, 450), "travel": (9, 45)}
OFFER_WORDS = ("Essential", "Plus", "Premier", "Smart", "Secure", "Flex", "Family", "Gold", "Shield", "Care")


def cdf(weights) -> list[float]:
    total = sum(weights) or 1.0
    return [x / total for x in accumulate(weights)]


def base_risk(years: int, fico: int, income: int) -> float:
    r = 0.12
    r += 0.25 if years == 0 else 0.18 if years == 1 else 0.10 if years <= 3 else 0.03 if years <= 9 else -0.05
    r += 0.18 if fico < 580 else 0.08 if fico < 670 else 0.0 if fico < 740 else -0.05
    r += 0.10 if income < 30_000 else 0.05 if income < 60_000 else 0.0 if income < 120_000 else -0.04
    return r


def _bounds(schema: Schema, name: str, lo, hi):
    """The schema's range for a field (inclusive clamp), falling back to the model's own."""
    for f in schema.fields:
        if f["name"] == name:
            r = field_annotations(f).get("range") or {}
            return r.get("min", lo), r.get("max", hi)
    return lo, hi


def _symbols(schema: Schema, name: str, fallback) -> tuple:
    for f in schema.fields:
        if f["name"] == name and isinstance(f["type"], dict) and f["type"].get("type") == "enum":
            return tuple(f["type"]["symbols"])
    return tuple(fallback)


class Customers:
    """All customers' current versions plus the derived numbers the activity loop needs."""

    def __init__(self, schema: Schema, n: int, seed: int, pools: Pools, entity_ms: int):
        self.schema = schema
        rng = random.Random(f"{seed}:customers")
        generic = compile_record(schema.raw, Context(rng, pools, lambda: entity_ms, schema.path.name))
        self.income_range = _bounds(schema, "income", 12_000, 250_000)
        self.fico_range = _bounds(schema, "fico", 300, 850)
        self.years_range = _bounds(schema, "years_active", 0, 40)
        genders = _symbols(schema, "gender", ("female", "male", "other"))
        gender_cdf = cdf([49 if g == "female" else 49 if g == "male" else 2 for g in genders])
        domains = pools.pool("free_email_domain", f"{schema.path.name}: email")
        self.records: list[dict] = []
        self.risk: list[float] = []
        self.band: list[int] = []
        for i in range(n):
            d = generic()
            years = 0 if rng.random() < 0.15 else min(int(rng.expovariate(1 / 7)) + 1, self.years_range[1])
            income = self._clamp(round(rng.lognormvariate(math.log(58_000), 0.55), -2), self.income_range)
            fico = self._clamp(int(rng.gauss(690, 65) + 25 * math.log(income / 58_000)), self.fico_range)
            d.update(customer_id=i + 1, gender=genders[bisect(gender_cdf, rng.random())],
                     income=income, fico=fico, years_active=max(years, self.years_range[0]), updated_at=entity_ms)
            if "first_name" in d and "last_name" in d and "email" in d:
                local = f"{d['first_name']}.{d['last_name']}{i + 1}".lower().replace(" ", "").replace("'", "")
                d["email"] = f"{local}@{domains[i % len(domains)]}"
            self.records.append(d)
            self.risk.append(0.0)
            self.band.append(0)
            self._derive(i, rng.uniform(-0.04, 0.04))
        # numpy mirrors for the vectorised activity loop (kept in step by _derive)

        self.risk_np = np.array(self.risk, dtype=np.float64)
        self.band_np = np.array(self.band, dtype=np.int64)

    @staticmethod
    def _clamp(v, bounds):
        lo, hi = bounds
        return int(min(max(v, lo), hi))

    def _derive(self, i: int, noise: float) -> None:
        d = self.records[i]
        r = min(max(base_risk(d["years_active"], d["fico"], d["income"]) + noise, 0.01), 0.95)
        self.risk[i] = r
        self.band[i] = bisect(RISK_BANDS, r) * 2 + (d["years_active"] == 0)
        if hasattr(self, "band_np"):
            self.risk_np[i] = r
            self.band_np[i] = self.band[i]

    def update(self, i: int, rng: random.Random, at_ms: int) -> dict:
        """A new version of customer i: income moves (raise, job loss), credit drifts."""
        d = dict(self.records[i])
        d["income"] = self._clamp(round(d["income"] * rng.uniform(0.75, 1.3), -2), self.income_range)
        d["fico"] = self._clamp(d["fico"] + int(rng.gauss(0, 20)), self.fico_range)
        d["updated_at"] = at_ms
        self.records[i] = d
        self._derive(i, rng.uniform(-0.04, 0.04))
        return d


class ActivityTables:
    """Lookup tables for the hot loop: activity mix per (risk band, new?), channels per type, offers."""

    def __init__(self, activity_schema: Schema):
        self.types = _symbols(activity_schema, "activity_type", ACTIVITY_TYPES)
        self.channels = _symbols(activity_schema, "channel", ("web", "mobile", "call_center", "branch"))
        lo_p, hi_p = _bounds(activity_schema, "propensity_to_churn", 0.0, 1.0)
        self.p_bounds = (float(lo_p), float(hi_p))
        nb = len(RISK_BANDS) + 1
        self.type_cdfs = []
        for b in range(nb):
            w = b / (nb - 1)
            for new in (0, 1):
                weights = [(1 - w) * MIX_LOW.get(t, 1) + w * MIX_HIGH.get(t, 1)
                           + (NEW_ACCOUNT_WEIGHT if new and t == "new_account" else 0) for t in self.types]
                self.type_cdfs.append(cdf(weights))
        self.channel_of = {}
        for t in self.types:
            mix = CHANNEL_MIX.get(t, DIGITAL)
            chans = [c for c in self.channels if mix.get(c)] or list(self.channels)
            self.channel_of[t] = (chans, cdf([mix.get(c, 1) for c in chans]))
        self.effect = {t: TYPE_EFFECT.get(t, 0.0) for t in self.types}
        self.offer_p = {t: OFFER_PROBABILITY.get(t, 0.0) for t in self.types}


def offers(schema: Schema, n: int, seed: int, pools: Pools, entity_ms: int) -> list[dict]:
    rng = random.Random(f"{seed}:offers")
    generic = compile_record(schema.raw, Context(rng, pools, lambda: entity_ms, schema.path.name))
    lines = _symbols(schema, "product_line", PREMIUM_BY_LINE)
    lo_p, hi_p = _bounds(schema, "monthly_premium", 9.0, 450.0)
    out = []
    for i in range(n):
        d = generic()
        line = lines[i % len(lines)]
        lo, hi = PREMIUM_BY_LINE.get(line, (lo_p, hi_p))
        name = f"{line.title()} {rng.choice(OFFER_WORDS)} {rng.choice(OFFER_WORDS)}"
        d.update(offer_id=i + 1, offer_name=name, product_line=line,
                 monthly_premium=round(min(max(rng.uniform(lo, hi), lo_p), hi_p), 2), updated_at=entity_ms)
        if isinstance(d.get("offer_url"), str):
            d["offer_url"] = d["offer_url"].rstrip("/") + f"/offers/{i + 1}-{line}"
        out.append(d)
    return out


def offer_popularity(n: int) -> list[float]:
    """A few offers are shown much more than others (mild Zipf)."""
    return cdf([1 / (i + 1) ** 0.7 for i in range(n)])
