"""The record stream of a run: the world (schemas, customers, offers), and generate().

Order of a run: every customer, then every offer (Kafka timestamp and updated_at one minute
before the first activity), then activities. Activity number k (0-based, global) belongs to
shard k % shards; a shard owns the customers with index % shards == shard, so each customer's
events and updates come from one process, in order, and a worker count never breaks integrity.
The same config (seed included) always gives the same bytes; with the real-time clock only the
timestamps differ between runs.
"""

from __future__ import annotations

import random
from io import BytesIO
from typing import Iterator

import orjson
from fastavro import schemaless_writer

from foundation import UserError
from foundation.catalog import ACTIVITY, DETAILS, OFFERS
from generator.activity import ShardStream
from generator.clock import ENTITY_LEAD_MS, make_clock
from generator.config import GeneratorConfig, Record, Stats
from generator.model import ActivityTables, Customers, offer_popularity, offers
from generator.schema import load_project_schemas, load_schema
from generator.values import Context, Pools, compile_record


class Encoder:
    """Record dict -> bytes for one topic. JSON: exactly the schema's field names; Avro: schemaless binary."""

    def __init__(self, schema, fmt: str):
        if fmt == "json":
            # orjson directly when no field can hold bytes (the common case): one call less per record
            self.encode = _json if "bytes" in str(schema.raw) or "fixed" in str(schema.raw) else orjson.dumps
        else:
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
        # a bad schema shows up before any send; --strict (validate_every=1) checks every entity
        sample = None if config.validate_every == 1 else 10
        for d in self.customers.records[:sample] + self.offers[:sample]:
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
        ctx = Context(self.rng, Pools(config.seed), lambda: self.now, self.schema.path.name, self.schema.path.parent)
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


def _wire_schema(schema):
    """The schema as the wire carries it: timestamp-millis fields read back as the long epoch ms the
    JSON records (and the model) use, not as datetimes."""
    from fastavro import parse_schema

    strip = lambda node: ({k: strip(v) for k, v in node.items() if k != "logicalType"}  # noqa: E731
                          if isinstance(node, dict) else [strip(v) for v in node] if isinstance(node, list)
                          else node)
    return parse_schema(strip(schema.raw))


def json_view(records: Iterator[Record], config: GeneratorConfig) -> Iterator[Record]:
    """A run's records with JSON values: an Avro run's decoded with the project's schemas (fastavro,
    independent of the job), a JSON run's as they are. What the plain-Python recomputation reads."""
    if config.format != "avro":
        yield from records
        return
    from fastavro import schemaless_reader

    schemas = {name: _wire_schema(s) for name, s in load_project_schemas(config.schema_dir).items()}
    for r in records:
        if r.value is None:
            yield r
            continue
        body = BytesIO(r.value)
        try:
            doc = schemaless_reader(body, schemas[r.topic])
            if body.read(1):
                raise ValueError("bytes after the record")
        except Exception as e:  # noqa: BLE001 - any decoding failure means the same thing here
            raise UserError(f"the Avro run holds a record that does not decode ({r.topic}, {e}); the recomputation "
                            "reads Avro runs made without --malformed-rate and --invalid-rate.") from None
        yield r._replace(value=_json(doc))
