"""Generator: schema conformance, integrity, determinism, faults, annotations, CLI errors, and (integration)
Kafka delivery, exact counts, rate control and a dead broker."""

from __future__ import annotations

import io
import json
import time
from collections import Counter

import orjson
import pytest

from foundation import PROJECT_ROOT, UserError
from churnstream.cli import main
from generator import GeneratorConfig, Record, expected_records, generate, produce
from generator.ratelimit import RateProfile, TokenBucket
from generator.schema import load_project_schemas, load_schema

START = 1_704_067_200_000   # 2024-01-01T00:00:00Z
SAMPLES = PROJECT_ROOT / "avro_schemas" / "samples"
SCHEMAS = load_project_schemas()


def cfg(**kw) -> GeneratorConfig:
    base = dict(seed=7, customers=60, offers=5, activities=4000, start_ms=START, customer_update_rate=0.05)
    base.update(kw)
    return GeneratorConfig(**base)


FAULTY = dict(activities=12_000, late_rate=0.05, duplicate_rate=0.03, malformed_rate=0.02, invalid_rate=0.04)


@pytest.fixture(scope="module")
def faulty_run() -> list[Record]:
    return list(generate(cfg(**FAULTY)))


# --- schema conformance -------------------------------------------------------------------------

def test_every_valid_record_validates_against_its_schema(faulty_run):
    for r in faulty_run:
        if r.kind in ("valid", "late", "duplicate", "update"):
            d = orjson.loads(r.value)
            assert SCHEMAS[r.topic].problems(d) == [], (r, SCHEMAS[r.topic].problems(d))
            assert set(d) == set(SCHEMAS[r.topic].field_names)


def test_faulty_records_are_what_they_claim(faulty_run):
    invalid_reasons = Counter()
    malformed = Counter()
    clock_max = max(r.timestamp_ms for r in faulty_run)
    for r in faulty_run:
        if r.kind == "malformed":
            assert r.topic == "customer_activity"
            with pytest.raises(orjson.JSONDecodeError):
                orjson.loads(r.value)
            try:
                r.value.decode("utf-8")
                malformed["cut short"] += 1
            except UnicodeDecodeError:
                malformed["not UTF-8"] += 1
                orjson.loads(r.value.replace(b"\xff", b""))     # otherwise well-formed
        elif r.kind == "invalid":
            assert r.topic == "customer_activity"
            d = orjson.loads(r.value)
            problems = SCHEMAS["customer_activity"].problems(d)
            if d.get("event_time", 0) > clock_max + 86_400_000:
                invalid_reasons["future"] += 1
            else:
                assert problems, d
                invalid_reasons["schema"] += 1
    assert invalid_reasons["future"] and invalid_reasons["schema"]
    assert malformed["cut short"] > malformed["not UTF-8"] > 0, malformed


def test_avro_records_decode_and_validate():
    from fastavro import schemaless_reader

    for r in generate(cfg(format="avro", activities=500, late_rate=0.1)):
        d = schemaless_reader(io.BytesIO(r.value), SCHEMAS[r.topic].parsed)
        assert SCHEMAS[r.topic].problems(d) == []


# --- integrity and time -------------------------------------------------------------------------

def test_activities_only_reference_customers_and_offers_sent_before(faulty_run):
    customers, offers, first_activity = {}, set(), None
    for r in faulty_run:
        if r.topic == "customer_details":
            d = orjson.loads(r.value)
            customers[d["customer_id"]] = d
            assert r.key == str(d["customer_id"]).encode()
        elif r.topic == "customer_offers":
            d = orjson.loads(r.value)
            offers.add(d["offer_id"])
            assert r.key == str(d["offer_id"]).encode() and first_activity is None
        elif r.kind in ("valid", "late", "duplicate"):
            d = orjson.loads(r.value)
            first_activity = first_activity or d["event_time"]
            assert d["customer_id"] in customers and r.key == str(d["customer_id"]).encode()
            assert d["offer_id"] is None or d["offer_id"] in offers
            # the latest customer version is in force at this event (a duplicate re-sends an older one)
            assert r.kind == "duplicate" or customers[d["customer_id"]]["updated_at"] <= d["event_time"]
            assert r.timestamp_ms == d["event_time"]
    assert len(customers) == 60 and len(offers) == 5


def test_entities_precede_activities_in_time_and_updates_carry_the_new_version():
    recs = list(generate(cfg(customer_update_rate=0.2, activities=500)))
    entity_ts = {r.timestamp_ms for r in recs if r.topic != "customer_activity" and r.kind == "valid"}
    assert entity_ts == {START - 60_000}
    updates = [(i, r) for i, r in enumerate(recs) if r.kind == "update"]
    assert len(updates) > 50
    for i, u in updates:
        nxt = orjson.loads(recs[i + 1].value)      # the activity the update precedes
        assert orjson.loads(u.value)["customer_id"] == nxt["customer_id"]
        assert orjson.loads(u.value)["updated_at"] == u.timestamp_ms <= nxt["event_time"]


def test_simulated_clock_and_late_events_stay_within_max_lateness(faulty_run):
    clock = None
    for r in faulty_run:
        if r.topic != "customer_activity" or r.kind in ("malformed", "invalid", "duplicate"):
            continue
        if r.kind == "valid":
            assert clock is None or r.timestamp_ms >= clock
            clock = r.timestamp_ms
        else:   # behind its own clock reading (activity k happens at START + 10 ms * k) by 1..2000 ms
            k = int(orjson.loads(r.value)["activity_id"].split("-")[1])
            assert 0 < START + 10 * k - r.timestamp_ms <= 2000


def test_story_correlates_churn_with_activity_and_tenure(faulty_run):
    by_type, new, old = {}, [], []
    tenure = {}
    for r in faulty_run:
        if r.topic == "customer_details":
            d = orjson.loads(r.value)
            tenure[d["customer_id"]] = d["years_active"]
        elif r.kind == "valid" and r.topic == "customer_activity":
            d = orjson.loads(r.value)
            by_type.setdefault(d["activity_type"], []).append(d["propensity_to_churn"])
            (new if tenure[d["customer_id"]] == 0 else old).append(d["propensity_to_churn"])
    mean = {t: sum(v) / len(v) for t, v in by_type.items()}
    assert mean["cancel_request"] > mean["complaint"] > mean["login"] > mean["accept_offer"]
    assert sum(new) / len(new) > sum(old) / len(old)


# --- determinism --------------------------------------------------------------------------------

def test_same_seed_same_bytes_other_seed_other_bytes(faulty_run):
    assert list(generate(cfg(**FAULTY))) == faulty_run
    assert [r.value for r in generate(cfg(activities=200, seed=8))] != [r.value for r in faulty_run[:265]]


def test_batch_size_does_not_change_the_stream():
    from generator.stream import open_streams

    c = cfg(**{**FAULTY, "activities": 3000, "customer_update_rate": 0.1})
    _, _, [a] = open_streams(c, [0])
    _, _, [b] = open_streams(c, [0])
    one = [r for _ in range(3000) for r in a.batch(1)]
    big = a and [r for _ in range(5) for r in b.batch(700)]
    assert one == big


def test_shards_partition_customers_and_count_exactly():
    recs = list(generate(cfg(shards=3, activities=999)))
    assert list(generate(cfg(shards=3, activities=999))) == recs
    acts = [orjson.loads(r.value) for r in recs if r.topic == "customer_activity"]
    assert len(acts) == 999 and len({a["activity_id"] for a in acts}) == 999
    assert {int(a["activity_id"].split("-")[1]) % 3 for a in acts[:3]} == {0, 1, 2}


def test_count_is_exact_and_ledger_config_regenerates_the_files(tmp_path):
    ledger = produce(None, cfg(activities=1234, duplicate_rate=0.05, invalid_rate=0.05), sink="files",
                     out_dir=str(tmp_path), progress=False)
    lines = (tmp_path / "customer_activity.jsonl").read_bytes().splitlines()
    assert ledger["activities"] == 1234 and ledger["topics"]["customer_activity"]["sent"] == len(lines)
    expected = [r.value for r in expected_records(ledger) if r.topic == "customer_activity"]
    assert lines == expected
    assert json.loads(json.dumps(ledger))["config"] == ledger["config"]   # JSON round trip


def test_load_plan_splits_shards_among_workers_and_names_topics():
    from generator.produce import plan_load

    plan = plan_load(None, cfg(shards=2), rate=300, workers=3, sink="files", out_dir="x")
    assert plan.config.shards == 3   # at least one shard per worker
    owned = [plan.shards_of(w) for w in range(3)]
    assert sorted(s for shards in owned for s in shards) == [0, 1, 2] and all(owned)
    assert plan.topic_names == {t: t for t in ("customer_details", "customer_offers", "customer_activity")}
    assert plan.profile.rate == 300 and plan.headers == {} and plan.duration is None
    with pytest.raises(UserError, match="needs --duration"):
        plan_load(None, cfg(activities=-1), sink="stdout")


def test_every_sink_counts_what_it_holds_and_delivers_on_close(tmp_path):
    from generator.produce import plan_load
    from generator.sinks import Sink

    sink = plan_load(None, cfg(), sink="files", out_dir=str(tmp_path)).open_sink(".t")
    assert isinstance(sink, Sink)
    sink.send([("customer_activity", b"k", b'{"a":1}', START, "valid")])
    assert sink.pending() == 0 and sink.flush(1) == 0 and sink.failures() == 0
    sink.close()
    assert (tmp_path / "customer_activity.t.jsonl").read_bytes() == b'{"a":1}\n'


# --- faults -------------------------------------------------------------------------------------

def test_faults_appear_at_the_requested_rates(faulty_run):
    kinds = Counter(r.kind for r in faulty_run)
    n = FAULTY["activities"]
    assert kinds["valid"] + kinds["late"] == n + 60 + 5          # activities + customer/offer snapshot
    for kind, rate in (("late", 0.05), ("duplicate", 0.03), ("malformed", 0.02), ("invalid", 0.04),
                       ("update", 0.05)):
        assert abs(kinds[kind] / n - rate) < rate * 0.15, (kind, kinds[kind])


def test_duplicates_are_exact_resends_of_earlier_events(faulty_run):
    sent = set()
    for r in faulty_run:
        if r.kind in ("valid", "late"):
            sent.add((r.key, r.value, r.timestamp_ms))
        elif r.kind == "duplicate":
            assert (r.key, r.value, r.timestamp_ms) in sent


# --- datagen annotations ------------------------------------------------------------------------

def _sample(name, n=300, **kw):
    c = GeneratorConfig(schema_path=str(SAMPLES / f"{name}.avsc"), activities=n, start_ms=0, validate_every=1, **kw)
    return [orjson.loads(r.value) for r in generate(c)]


def test_datagen_users_regex_range_options():
    rows = _sample("users")
    import re

    assert all(re.fullmatch(r"User_[1-9]?", r["userid"]) and re.fullmatch(r"Region_[1-9]?", r["regionid"])
               for r in rows)
    assert {r["gender"] for r in rows} == {"MALE", "FEMALE", "OTHER"}
    assert all(1487715775521 <= r["registertime"] < 1519273364600 for r in rows)


def test_datagen_iteration_with_step_and_restart():
    rows = _sample("pageviews", 7)
    assert [r["viewtime"] for r in rows] == [1, 11, 21, 31, 41, 51, 61]
    assert [r["session"] for r in rows] == [1, 2, 3, 1, 2, 3, 1]


def test_datagen_nested_arrays_maps_keys_unions_length_faker():
    rows = _sample("orders")
    assert [r["orderid"] for r in rows[:3]] == [0, 1, 2]
    assert [r["express"] for r in rows[:4]] == [True, False, True, False]
    assert all(1 <= len(r["tags"]) <= 3 and set(r["tags"]) <= {"gift", "fragile", "bulk"} for r in rows)
    assert all(len(r["attributes"]) <= 2 and set(r["attributes"]) <= {"size", "weight", "colour"}
               and all(1 <= v < 5 for v in r["attributes"].values()) for r in rows)
    coupons = [r["coupon"] for r in rows]
    assert None in coupons and all(c is None or 5 <= len(c) <= 8 for c in coupons)
    assert all(0.1 <= r["orderunits"] <= 10.0 and 10000 <= r["address"]["zipcode"] < 99999 for r in rows)
    assert len({r["customer_name"] for r in rows}) > 50 and all(" " in r["customer_name"] for r in rows)


# --- errors -------------------------------------------------------------------------------------

def _cli(capsys, *argv):
    code = main(["generate", *argv])
    return code, capsys.readouterr().err.strip()


def test_bad_flags_give_one_sentence_and_exit_2(capsys):
    assert _cli(capsys, "--rate", "-5") == (2, "error: --rate must be >= 0 (0 means as fast as possible).")
    assert _cli(capsys, "--skew", "pareto", "--dry-run") == (2, "error: --skew must be one of uniform, zipf, 80/20.")
    assert _cli(capsys, "--late-rate", "1.5", "--dry-run") == (2, "error: --late-rate must be between 0 and 1.")
    assert _cli(capsys, "--count", "-3", "--dry-run") == (2, "error: --count must be >= 0, or -1 for no limit.")
    assert _cli(capsys, "--start", "yesterday", "--dry-run") == (
        2, "error: --start must be epoch milliseconds or an ISO-8601 time such as 2024-01-01T00:00:00Z, "
           "not 'yesterday'.")


def test_bad_schema_files_give_one_sentence_and_exit_2(capsys, tmp_path):
    bad = tmp_path / "bad.avsc"
    bad.write_text('{"type": "record", "name": "x", "fields": [')
    assert _cli(capsys, "--schema", str(bad), "--dry-run") == (
        2, f"error: schema file {bad} is not valid JSON (Expecting value at line 1 column 44).")
    bad.write_text('{"type": "record", "name": "x", "fields": [{"name": "a", "type": "integer"}]}')
    code, err = _cli(capsys, "--schema", str(bad), "--dry-run")
    assert code == 2 and err.startswith(f"error: schema file {bad} is not a valid Avro schema: ")
    bad.write_text('{"type": "record", "name": "x", "fields": [{"name": "a", "type": "string", "faker": "nope"}]}')
    assert _cli(capsys, "--schema", str(bad), "--dry-run") == (
        2, "error: bad.avsc: field 'a': Faker has no provider 'nope'; use a Faker method name such as "
           "'first_name', 'email' or 'ipv4_public'.")
    assert _cli(capsys, "--schema", str(tmp_path / "none.avsc"), "--dry-run") == (
        2, f"error: schema file {tmp_path / 'none.avsc'} does not exist.")


def test_token_bucket_follows_the_profile_on_a_fake_clock():
    t = [0.0]
    bucket = TokenBucket(RateProfile(1000.0), clock=lambda: t[0], sleep=lambda s: t.__setitem__(0, t[0] + s))
    for _ in range(5000):
        bucket.take()
    assert 4.9 <= t[0] <= 5.05
    ramp = RateProfile(100.0, ramp_s=10, burst_every_s=20, burst_for_s=2, burst_factor=3)
    assert ramp.at(5) == pytest.approx(50.0) and ramp.at(21) == 300.0 and ramp.at(15) == 100.0


def test_library_validates_config():
    with pytest.raises(UserError, match="customers must be >= 1"):
        list(generate(GeneratorConfig(customers=0)))
    assert load_schema(SAMPLES / "orders.avsc").name == "orders"


# --- against the real local Kafka ---------------------------------------------------------------

@pytest.fixture
def sub_stack(stack, request):
    """The session stack with a per-test topic prefix; this test's topics are deleted afterwards."""
    from foundation.catalog import TOPICS
    from foundation.topics import delete_topics

    settings = stack.with_(topic_prefix=f"{stack.topic_prefix}{request.node.name[5:15]}-")
    yield settings
    delete_topics(settings, [settings.topic(t.name) for t in TOPICS])


def _consume(settings, topics: list[str], expect: int, timeout: float = 30.0) -> list:
    import uuid

    from confluent_kafka import Consumer

    c = Consumer({**settings.kafka_client_config(), "group.id": f"gen-test-{uuid.uuid4().hex}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe(topics)
    out, deadline = [], time.monotonic() + timeout
    while len(out) < expect and time.monotonic() < deadline:
        for m in c.consume(1000, 0.5):
            if m.error() is None:
                out.append(m)
    c.close()
    return out


@pytest.mark.integration
def test_kafka_run_delivers_exactly_the_generated_records(sub_stack):
    settings = sub_stack
    config = cfg(activities=5000, **{k: v for k, v in FAULTY.items() if k != "activities"})
    ledger = produce(settings, config, workers=2, progress=False)
    assert ledger["failed"] == 0 and ledger["activities"] == 5000
    expected = list(expected_records(ledger))
    topics = {t: settings.topic(t) for t in ("customer_details", "customer_offers", "customer_activity")}
    got = _consume(settings, list(topics.values()), len(expected))
    assert Counter((m.topic(), m.key(), m.value()) for m in got) == \
        Counter((topics[r.topic], r.key, r.value) for r in expected)
    for name, t in ledger["topics"].items():
        assert t["sent"] == t["delivered"] == sum(1 for r in expected if r.topic == name)


@pytest.mark.integration
def test_rate_holds_within_5_percent_over_10_seconds(sub_stack):
    settings = sub_stack
    ledger = produce(settings, cfg(activities=-1, customer_update_rate=0.0), rate=2000, duration=10.0,
                     progress=False)
    streamed = ledger["topics"]["customer_activity"]["sent"]
    assert abs(streamed - 20_000) <= 1000, streamed
    assert ledger["stopped_by"] == "duration" and ledger["failed"] == 0
    assert ledger["config"]["activities"] == streamed     # the ledger can regenerate what was sent


@pytest.mark.integration
def test_avro_with_schema_registry_uses_the_confluent_wire_format(sub_stack):
    """Against the stack's real registry: subjects registered, every record carries its id."""
    import urllib.request

    from fastavro import parse_schema, schemaless_reader

    settings = sub_stack
    registry = settings.schema_registry_url

    def get(path):
        with urllib.request.urlopen(f"{registry}{path}", timeout=10) as r:
            return json.loads(r.read())

    ledger = produce(settings, cfg(activities=300, format="avro"), progress=False, schema_registry=registry)
    for t in ("customer_details", "customer_offers", "customer_activity"):
        latest = get(f"/subjects/{settings.topic(t)}-value/versions/latest")
        assert latest["id"] == ledger["schema_ids"][t]
        assert json.loads(latest["schema"]) == SCHEMAS[t].raw
    act = settings.topic("customer_activity")
    msgs = _consume(settings, [act], 300)
    schema_id = ledger["schema_ids"]["customer_activity"]
    writer = parse_schema(json.loads(get(f"/schemas/ids/{schema_id}")["schema"]))
    for m in msgs:
        v = m.value()
        assert v[0] == 0 and int.from_bytes(v[1:5], "big") == schema_id
        assert SCHEMAS["customer_activity"].problems(schemaless_reader(io.BytesIO(v[5:]), writer)) == []


@pytest.mark.integration
def test_broker_down_is_one_sentence_within_seconds(stack, capsys, monkeypatch):
    monkeypatch.setenv("CHURNSTREAM_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    t0 = time.monotonic()
    code, err = _cli(capsys, "--count", "10", "--quiet")
    assert time.monotonic() - t0 < 10
    assert (code, err) == (2, "error: cannot reach Kafka at 127.0.0.1:1 within 5 s; start it with "
                              "'churnstream stack up' or point CHURNSTREAM_KAFKA_BOOTSTRAP at a running broker.")


def test_an_avro_run_reads_back_as_the_json_run_of_the_same_seed():
    """The recomputation's view of an Avro ledger (generator.stream.json_view, fastavro with the
    project's schemas) equals the JSON run of the same config, record by record."""
    from generator.stream import json_view

    base = dict(seed=5, customers=30, offers=4, activities=300, start_ms=1_767_225_600_000, late_rate=0.05,
                duplicate_rate=0.02, customer_update_rate=0.05)
    as_json = list(generate(GeneratorConfig(**base)))
    avro = GeneratorConfig(**base, format="avro")
    viewed = list(json_view(expected_records(avro), avro))
    assert len(viewed) == len(as_json) > 300
    for a, j in zip(viewed, as_json):
        assert (a.topic, a.key, a.timestamp_ms) == (j.topic, j.key, j.timestamp_ms)
        assert orjson.loads(a.value) == orjson.loads(j.value)
    broken = GeneratorConfig(**base, format="avro", malformed_rate=0.05)
    with pytest.raises(UserError, match="does not decode"):
        list(json_view(expected_records(broken), broken))


def test_closing_records_are_a_day_later_on_every_input_partition():
    from generator.closing import CLOSE_AFTER_MS, VERSIONS_BEFORE_MS, closing_records

    config = GeneratorConfig(seed=5, customers=30, offers=4, activities=100, start_ms=1_767_225_600_000)
    records = closing_records(config, {"customer_activity": 3, "customer_details": 2, "customer_offers": 1},
                              now_ms=config.start_ms + 30 * 86_400_000)
    assert [(t, p) for t, p, *_ in records] == [("customer_activity", 0), ("customer_activity", 1),
                                                ("customer_activity", 2), ("customer_details", 0),
                                                ("customer_details", 1), ("customer_offers", 0)]
    end = config.start_ms + CLOSE_AFTER_MS
    for topic, _, key, value, ts in records:
        doc = orjson.loads(value)
        if topic == "customer_activity":
            assert ts == doc["event_time"] == end and doc["activity_id"].startswith("closing-event-")
        else:   # the newest version of a real entity, 10 minutes before the closing activities
            assert ts == doc["updated_at"] == end - VERSIONS_BEFORE_MS and key
    # A live feed (started a minute ago) closes 50 minutes from now: Kafka refuses records stamped
    # more than an hour ahead of its clock.
    now = config.start_ms + 60_000
    live = closing_records(config, {"customer_activity": 1, "customer_details": 1, "customer_offers": 1}, now_ms=now)
    assert live[0][4] == now + 50 * 60_000 and live[1][4] == now + 50 * 60_000 - VERSIONS_BEFORE_MS
    last = {r.topic: r for r in generate(config) if r.topic == "customer_offers"}["customer_offers"]
    assert {k: v for k, v in orjson.loads(records[-1][3]).items() if k != "updated_at"} == \
        {k: v for k, v in orjson.loads(last.value).items() if k != "updated_at"}
