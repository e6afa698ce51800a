"""The record stream: configuration, the deterministic generator, and the hot loop.

Order of a run: every customer, then every offer (Kafka timestamp and updated_at one minute
before the first activity), then activities. Activity number k (0-based, global) belongs to
shard k % shards; a shard owns the customers with index % shards == shard, so each customer's
events and updates come from one process, in order, and a worker count never breaks integrity.
The same config (seed included) always gives the same bytes; with the real-time clock only the
timestamps differ between runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import time
from bisect import bisect
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Iterator, NamedTuple

import orjson

from churnstream import UserError
from generator import faults
from generator.clock import ENTITY_LEAD_MS, make_clock
from generator.model import ActivityTables, Customers, offer_popularity, offers
from generator.schema import load_project_schemas, load_schema
from generator.values import Context, Pools, compile_record

KINDS = ("valid", "late", "duplicate", "malformed", "invalid", "update")
SKEWS = ("uniform", "zipf", "80/20")
FORMATS = ("json", "avro")
ACTIVITY, DETAILS, OFFERS = "customer_activity", "customer_details", "customer_offers"
ZIPF_S = 1.1
DUP_RING = 64   # duplicates re-send one of the last this-many valid events


class Record(NamedTuple):
    topic: str          # logical (unprefixed) topic name
    key: bytes | None
    value: bytes
    timestamp_ms: int
    kind: str           # one of KINDS


@dataclass(frozen=True)
class GeneratorConfig:
    seed: int = 42
    customers: int = 1000
    offers: int = 20
    activities: int = 10_000            # valid activity events (on time + late); -1 = forever
    start_ms: int | None = None         # simulated clock start; None = real time
    events_per_second: float = 100.0    # simulated clock speed
    skew: str = "zipf"                  # how activity picks customers: uniform | zipf | 80/20
    customer_update_rate: float = 0.01  # fraction of activities preceded by a new customer version
    late_rate: float = 0.0
    max_lateness_ms: int = 2000         # < the Flink watermark's 5 s, so late events are still counted
    duplicate_rate: float = 0.0
    malformed_rate: float = 0.0
    invalid_rate: float = 0.0
    format: str = "json"
    shards: int = 1                     # independent activity streams (one per worker)
    shard_limits: list[int] | None = None   # per-shard activity counts when a timed run stopped early
    schema_dir: str | None = None       # where the three entity schemas live (default avro_schemas/)
    schema_path: str | None = None      # generic datagen mode: records of this one schema only
    topic: str | None = None            # generic mode: logical topic (default: schema file stem)
    key_field: str | None = None        # generic mode: field whose value is the Kafka key
    validate_every: int = 1000          # validate 1 in N records (1 = all, --strict); 0 = never

    def check(self, flag=lambda name: name) -> "GeneratorConfig":
        """Raise UserError (one sentence, naming the flag via `flag`) if an option is out of range."""
        def need(ok, name, rule):
            if not ok:
                raise UserError(f"{flag(name)} {rule}.")
        need(self.customers >= 1, "customers", "must be >= 1")
        need(self.offers >= 1, "offers", "must be >= 1")
        need(self.activities >= -1, "activities", "must be >= 0, or -1 for no limit")
        need(self.events_per_second > 0, "events_per_second", "must be > 0")
        need(self.skew in SKEWS, "skew", f"must be one of {', '.join(SKEWS)}")
        need(self.format in FORMATS, "format", f"must be one of {', '.join(FORMATS)}")
        need(self.max_lateness_ms >= 1, "max_lateness_ms", "must be >= 1")
        need(self.shards >= 1, "shards", "must be >= 1")
        need(self.validate_every >= 0, "validate_every", "must be >= 0")
        for name in ("customer_update_rate", "late_rate", "duplicate_rate", "malformed_rate", "invalid_rate"):
            v = getattr(self, name)
            need(0.0 <= v <= 1.0, name, "must be between 0 and 1")
        need(self.duplicate_rate + self.malformed_rate + self.invalid_rate <= 1.0, "duplicate_rate",
             "plus the malformed and invalid rates must not exceed 1")
        if self.shard_limits is not None:
            need(len(self.shard_limits) == self.shards, "shard_limits", "must have one count per shard")
        return self

    def replace(self, **changes) -> "GeneratorConfig":
        return dataclasses.replace(self, **changes)

    def shard_limit(self, shard: int) -> int:
        """How many activities shard `shard` generates (-1 = forever)."""
        if self.shard_limits is not None:
            return self.shard_limits[shard]
        if self.activities < 0:
            return -1
        return len(range(shard, self.activities, self.shards))


class Stats:
    """What one stream generated, for the ledger (counted in the hot loop; no second pass)."""

    def __init__(self):
        self.kinds = dict.fromkeys(KINDS, 0)
        self.topics: dict[str, list[int]] = {}   # topic -> [count, ts_min, ts_max]
        self.keys: dict[str, set] = {}

    def add(self, topic: str, n: int, ts_min: int | None, ts_max: int | None, keys=()) -> None:
        t = self.topics.setdefault(topic, [0, None, None])
        t[0] += n
        if ts_min is not None:
            t[1] = ts_min if t[1] is None else min(t[1], ts_min)
            t[2] = ts_max if t[2] is None else max(t[2], ts_max)
        self.keys.setdefault(topic, set()).update(keys)


class Encoder:
    """Record dict -> bytes for one topic. JSON: exactly the schema's field names; Avro: schemaless binary."""

    def __init__(self, schema, fmt: str):
        if fmt == "json":
            self.encode = _json
        else:
            from io import BytesIO

            from fastavro import schemaless_writer

            buf, parsed = BytesIO(), schema.parsed

            def encode(d: dict) -> bytes:
                buf.seek(0)
                buf.truncate()
                schemaless_writer(buf, parsed, d)
                return buf.getvalue()
            self.encode = encode


def _json_default(v):
    if isinstance(v, (bytes, bytearray)):
        return v.decode("latin-1")   # Avro's JSON encoding of bytes
    raise TypeError


def _json(d: dict, _dumps=orjson.dumps, _default=_json_default) -> bytes:
    return _dumps(d, default=_default)


def id_prefix(seed: int) -> str:
    """Activity ids are '<8 hex of the seed>-<k>': unique per run seed, stable across re-runs."""
    return hashlib.sha1(str(seed).encode()).hexdigest()[:8] + "-"


class World:
    """Everything derived from the config once per process: schemas, customers, offers, encoders."""

    def __init__(self, config: GeneratorConfig):
        self.config = config.check()
        self.schemas = load_project_schemas(config.schema_dir)
        self.clock = make_clock(config.start_ms, config.events_per_second)
        self.entity_ms = self.clock.start_ms - ENTITY_LEAD_MS
        self.pools = Pools(config.seed)
        self.customers = Customers(self.schemas[DETAILS], config.customers, config.seed, self.pools, self.entity_ms)
        self.offers = offers(self.schemas[OFFERS], config.offers, config.seed, self.pools, self.entity_ms)
        self.tables = ActivityTables(self.schemas[ACTIVITY])
        self.offer_cdf = offer_popularity(config.offers)
        self.enc = {name: Encoder(s, config.format).encode for name, s in self.schemas.items()}
        self.customer_keys = [str(i + 1).encode() for i in range(config.customers)]
        for d in self.customers.records[:10] + self.offers[:10]:   # a bad schema shows up before any send
            self.schemas[DETAILS if "customer_id" in d else OFFERS].check(d)

    def entity_records(self) -> tuple[list[tuple], Stats]:
        """The initial snapshot of customers and offers, before any activity."""
        ts = self.entity_ms
        enc_c, enc_o = self.enc[DETAILS], self.enc[OFFERS]
        out = [(DETAILS, k, enc_c(d), ts, "valid") for k, d in zip(self.customer_keys, self.customers.records)]
        out += [(OFFERS, str(d["offer_id"]).encode(), enc_o(d), ts, "valid") for d in self.offers]
        stats = Stats()
        stats.kinds["valid"] += len(out)
        stats.add(DETAILS, len(self.customers.records), ts, ts, self.customer_keys)
        stats.add(OFFERS, len(self.offers), ts, ts, [str(d["offer_id"]).encode() for d in self.offers])
        return out, stats


class ShardStream:
    """Activity events of one shard. batch(n) returns the records of the next n activities."""

    def __init__(self, world: World, shard: int):
        cfg = world.config
        self.world, self.cfg, self.shard, self.shards = world, cfg, shard, cfg.shards
        self.limit = cfg.shard_limit(shard)
        self.j = 0                       # activities generated by this shard so far
        self.rng = random.Random(f"{cfg.seed}:activity:{shard}/{cfg.shards}")
        self.stats = Stats()
        owned = list(range(shard, cfg.customers, cfg.shards))
        if not owned:
            raise UserError(f"there are fewer customers ({cfg.customers}) than workers/shards ({cfg.shards}); "
                            "use more customers or fewer workers.")
        self.pick = self._picker(owned, cfg.skew, random.Random(f"{cfg.seed}:skew:{shard}/{cfg.shards}"))
        self.ring: list[tuple] = []
        self.invalid_turn = 0
        self.last_update = [world.entity_ms] * cfg.customers
        self.seen = bytearray(cfg.customers)
        self.ips = world.pools.pool("ipv4_public", "customer_activity.avsc: ip_address")
        act = world.schemas[ACTIVITY]
        self.fast_layout = act.field_names == ["activity_id", "customer_id", "offer_id", "activity_type", "channel",
                                               "propensity_to_churn", "ip_address", "event_time"]
        if not self.fast_layout:   # the schema grew fields the story does not know: fill them generically
            ctx = Context(self.rng, world.pools, lambda: self.now, act.path.name)
            gen_all = compile_record(act.raw, ctx)
            self.layout = act.field_names
            self.filler = gen_all
        self.now = world.clock.start_ms

    @staticmethod
    def _picker(owned: list[int], skew: str, rng: random.Random):
        n = len(owned)
        if skew == "uniform":
            return lambda r: owned[int(r * n)]
        ranked = owned[:]
        rng.shuffle(ranked)   # hot customers are spread over the id space, not ids 1..k
        if skew == "zipf":
            weights = list(accumulate(1 / (i + 1) ** ZIPF_S for i in range(n)))
            cum = [w / weights[-1] for w in weights]
            return lambda r: ranked[min(bisect(cum, r), n - 1)]
        hot = max(1, n // 5)   # 80/20: 80 % of activity from 20 % of customers
        cold = ranked[hot:] or ranked

        def pick(r):
            if r < 0.8:
                return ranked[int(r / 0.8 * hot)]
            return cold[int((r - 0.8) / 0.2 * len(cold))]
        return pick

    def done(self) -> bool:
        return 0 <= self.limit <= self.j

    def batch(self, n: int) -> list[tuple]:
        """Records for the next n activities of this shard (fewer at the limit). Plain tuples, Record's layout."""
        w, cfg, tb = self.world, self.cfg, self.world.tables
        rnd, pick = self.rng.random, self.pick
        shard, shards = self.shard, self.shards
        sim = w.clock.simulated
        start, mspe = w.clock.start_ms, getattr(w.clock, "ms_per_event", 0.0)
        cust, keys, ips, nip = w.customers, w.customer_keys, self.ips, len(self.ips)
        risk, band = cust.risk, cust.band
        types, type_cdfs, channel_of, effect, offer_p = tb.types, tb.type_cdfs, tb.channel_of, tb.effect, tb.offer_p
        plo, phi = tb.p_bounds
        offer_cdf = w.offer_cdf
        noffers = len(w.offers)
        enc_a, enc_c = w.enc[ACTIVITY], w.enc[DETAILS]
        upd, late, maxlate = cfg.customer_update_rate, cfg.late_rate, cfg.max_lateness_ms
        f_dup = cfg.duplicate_rate
        f_mal = f_dup + cfg.malformed_rate
        f_inv = f_mal + cfg.invalid_rate
        vevery = cfg.validate_every
        schema = w.schemas[ACTIVITY]
        idp = id_prefix(cfg.seed)
        last_update, seen, ring = self.last_update, self.seen, self.ring
        out: list[tuple] = []
        add = out.append
        n_valid = n_late = n_update = n_dup = n_mal = n_inv = 0
        et_min = et_max = None
        upd_min = upd_max = None

        j = self.j
        end = j + n if self.limit < 0 else min(j + n, self.limit)
        while j < end:
            k = shard + shards * j
            j += 1
            now = start + int(k * mspe) if sim else time.time_ns() // 1_000_000
            ci = pick(rnd())
            kind = "valid"
            et = now
            if upd and rnd() < upd:
                d = cust.update(ci, self.rng, now)
                add((DETAILS, keys[ci], enc_c(d), now, "update"))
                last_update[ci] = now
                n_update += 1
                if upd_min is None:
                    upd_min = now
                upd_max = now
            elif late and rnd() < late:
                # behind the clock by 1..max_lateness, but never before this customer's latest version
                et = max(now - 1 - int(rnd() * maxlate), last_update[ci])
                if et < now:
                    kind = "late"
            t = types[bisect(type_cdfs[band[ci]], rnd())]
            chans, ccdf = channel_of[t]
            ch = chans[bisect(ccdf, rnd())] if len(chans) > 1 else chans[0]
            op = offer_p[t]
            offer = (min(bisect(offer_cdf, rnd()), noffers - 1) + 1) if op and (op >= 1.0 or rnd() < op) else None
            p = risk[ci] + effect[t] + (rnd() - 0.5) * 0.1
            p = plo if p < plo else phi if p > phi else int(p * 10000 + 0.5) / 10000
            d = {"activity_id": f"{idp}{k}", "customer_id": ci + 1, "offer_id": offer, "activity_type": t,
                 "channel": ch, "propensity_to_churn": p, "ip_address": ips[(ci * 7919) % nip], "event_time": et}
            if not self.fast_layout:
                self.now = et
                extra = self.filler()
                d = {f: d[f] if f in d else extra[f] for f in self.layout}
            if vevery and k % vevery == 0:
                schema.check(d)
            v = enc_a(d)
            rec = (ACTIVITY, keys[ci], v, et, kind)
            add(rec)
            seen[ci] = 1
            if kind == "valid":
                n_valid += 1
            else:
                n_late += 1
            if et_min is None or et < et_min:
                et_min = et
            if et_max is None or et > et_max:
                et_max = et
            if len(ring) < DUP_RING:
                ring.append(rec)
            else:
                ring[k % DUP_RING] = rec
            if f_inv:
                r = rnd()
                if r < f_dup:
                    o = ring[int(rnd() * len(ring))]
                    add((ACTIVITY, o[1], o[2], o[3], "duplicate"))
                    n_dup += 1
                elif r < f_mal:
                    add((ACTIVITY, keys[ci], faults.malformed(v, rnd()), now, "malformed"))
                    n_mal += 1
                elif r < f_inv:
                    add((ACTIVITY, keys[ci], faults.invalid(d, self.invalid_turn, now), now, "invalid"))
                    self.invalid_turn += 1
                    n_inv += 1
        self.j = j
        k = self.stats.kinds
        k["valid"] += n_valid
        k["late"] += n_late
        k["update"] += n_update
        k["duplicate"] += n_dup
        k["malformed"] += n_mal
        k["invalid"] += n_inv
        # duplicates re-send recent events, so they stay within the event-time range already counted
        self.stats.add(ACTIVITY, n_valid + n_late + n_dup + n_mal + n_inv, et_min, et_max)
        if n_update:
            self.stats.add(DETAILS, n_update, upd_min, upd_max)
        return out

    def finish_stats(self) -> Stats:
        self.stats.keys.setdefault(ACTIVITY, set()).update(
            self.world.customer_keys[i] for i, s in enumerate(self.seen) if s)
        return self.stats


class GenericStream:
    """Datagen mode: records of any one .avsc, driven only by its annotations."""

    def __init__(self, config: GeneratorConfig, shard: int = 0):
        self.cfg = config
        self.schema = load_schema(config.schema_path)
        self.topic = config.topic or self.schema.name
        self.clock = make_clock(config.start_ms, config.events_per_second)
        self.limit = config.shard_limit(shard)
        self.shard, self.shards, self.j = shard, config.shards, 0
        self.rng = random.Random(f"{config.seed}:generic:{shard}/{config.shards}")
        self.now = self.clock.start_ms
        ctx = Context(self.rng, Pools(config.seed), lambda: self.now, self.schema.path.name)
        self.make = compile_record(self.schema.raw, ctx)
        if config.key_field and config.key_field not in self.schema.field_names:
            raise UserError(f"--key-field {config.key_field} is not a field of {self.schema.path.name} "
                            f"(fields: {', '.join(self.schema.field_names)}).")
        self.encode = Encoder(self.schema, config.format).encode
        self.stats = Stats()

    def done(self) -> bool:
        return 0 <= self.limit <= self.j

    def batch(self, n: int) -> list[tuple]:
        out = []
        end = self.j + n if self.limit < 0 else min(self.j + n, self.limit)
        kf, vevery = self.cfg.key_field, self.cfg.validate_every
        keys = set()
        ts_min = ts_max = None
        while self.j < end:
            k = self.shard + self.shards * self.j
            self.j += 1
            self.now = self.clock.at(k)
            d = self.make()
            if vevery and k % vevery == 0:
                self.schema.check(d)
            key = None if kf is None else str(d[kf]).encode()
            if key is not None:
                keys.add(key)
            out.append((self.topic, key, self.encode(d), self.now, "valid"))
            ts_min = self.now if ts_min is None else ts_min
            ts_max = self.now
        self.stats.kinds["valid"] += len(out)
        self.stats.add(self.topic, len(out), ts_min, ts_max, keys)
        return out

    def finish_stats(self) -> Stats:
        return self.stats


def open_streams(config: GeneratorConfig, shards: list[int]):
    """(entity records, entity stats, [shard streams]) for the given shard numbers."""
    if config.schema_path:
        config.check()
        return [], Stats(), [GenericStream(config, s) for s in shards]
    world = World(config)
    entities, stats = world.entity_records()
    return entities, stats, [ShardStream(world, s) for s in shards]


def generate(config: GeneratorConfig) -> Iterator[Record]:
    """Every record of a run, in order: entities first, then activities of all shards by global index."""
    entities, _, streams = open_streams(config, list(range(config.shards)))
    for r in entities:
        yield Record(*r)
    if len(streams) == 1:
        s = streams[0]
        while not s.done():
            for r in s.batch(512):
                yield Record(*r)
        return
    live = list(streams)
    while live:   # one activity per shard in turn = global index order
        for s in list(live):
            if s.done():
                live.remove(s)
                continue
            for r in s.batch(1):
                yield Record(*r)


def expected_records(config_or_ledger) -> Iterator[Record]:
    """What a run sent, recomputed from its config or from its ledger dict (the checker's entry point)."""
    if isinstance(config_or_ledger, dict):
        config_or_ledger = GeneratorConfig(**config_or_ledger["config"])
    return generate(config_or_ledger)
