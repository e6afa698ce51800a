"""The indexer (indexer/: a result topic -> Elasticsearch) next to its ceiling, raw bulk indexing of the
same documents from one client (pre-serialised NDJSON), both into an index with the product's enriched
template; docs/s and CPU µs per document of Elasticsearch and of the client (bench/procs.py)."""

from __future__ import annotations

import hashlib
import logging
import random
import time

import orjson

from foundation import catalog

log = logging.getLogger("churnstream.bench")
BATCH = 5_000     # documents per bulk request: the indexer's default (IndexerOptions.batch_docs)
START_MS = 1_767_225_600_000


def enriched_documents(n: int, seed: int = 7, id_prefix: str = "bench") -> list[tuple[bytes, bytes]]:
    """`n` (key, value) pairs shaped like the job's enriched results (the enriched index's fields, its
    ISO-8601 timestamps, 32-hex pseudonyms: ~570 bytes of JSON each); the key is the activity id, as on
    the result topic."""
    rng = random.Random(seed)
    types, channels = catalog.activity_types(), catalog.channels()
    bands = (catalog.INCOME_BANDS.labels, catalog.FICO_BANDS.labels, catalog.TENURE_BANDS.labels)
    out = []
    for i in range(n):
        key = f"{id_prefix}{i}"
        customer, offer = rng.randrange(1, 10_001), rng.randrange(1, 21)
        t = START_MS + 10 * i
        doc = {
            "activity_id": key, "customer_id": customer, "offer_id": offer,
            "activity_type": rng.choice(types), "channel": rng.choice(channels),
            "propensity_to_churn": round(rng.random(), 6),
            "ip_hash": hashlib.sha256(b"ip%d" % customer).hexdigest()[:32],
            "event_time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t // 1000)) + f".{t % 1000:03d}",
            "customer_known": True, "email_hash": hashlib.sha256(b"mail%d" % customer).hexdigest()[:32],
            "gender": rng.choice(("F", "M", "X")), "income": rng.randrange(10_000, 250_000),
            "fico": rng.randrange(300, 851), "years_active": rng.randrange(0, 40),
            "income_band": rng.choice(bands[0]), "fico_band": rng.choice(bands[1]),
            "tenure_band": rng.choice(bands[2]), "offer_known": True, "offer_name": f"Offer {offer} retention plan",
            "offer_url": f"https://offers.example/retention/{offer}",
            "product_line": rng.choice(("auto", "home", "life")),
            "monthly_premium": round(rng.uniform(10, 400), 2),
        }
        out.append((key.encode(), orjson.dumps(doc)))
    return out


def bulk_bodies(docs: list[tuple[bytes, bytes]], batch: int = BATCH) -> list[bytes]:
    """NDJSON bodies of `batch` `index` actions each, `_id` = the key, the value as the document."""
    bodies = []
    for start in range(0, len(docs), batch):
        bodies.append(b"".join(b'{"index":{"_id":%s}}\n%s\n' % (orjson.dumps(k.decode()), v)
                               for k, v in docs[start:start + batch]))
    return bodies


def _send(es, index: str, bodies: list[bytes]) -> None:
    for body in bodies:
        r = es.bulk(operations=body, index=index, filter_path="errors,items.*.error")
        assert not r.get("errors"), str(r)[:2000]


def _client(settings):
    # as the indexer's: one connection, a long timeout, no retries
    return settings.es_client().options(request_timeout=60, max_retries=0, retry_on_timeout=False)


def warm_up(settings, docs: int) -> dict:
    """Index `docs` enriched documents, half with raw bulk requests, half through the indexer (from the
    settings' enriched result topic), into a throwaway index with the enriched template, then delete it.
    A freshly started node indexes the first ~100k documents several times slower per document (JIT),
    and a fresh broker creates its consumer offsets topic for the first consumer group: neither belongs
    in a figure."""
    from foundation.topics import ensure_topics
    from indexer import Indexer, IndexerOptions
    from kibana.templates import install_templates

    es = _client(settings)
    ensure_topics(settings)
    install_templates(settings, es)
    index = settings.index(catalog.INDEX["enriched"].name)
    es.indices.delete(index=index, ignore_unavailable=True)
    data = enriched_documents(docs, seed=3, id_prefix="warm")
    half = len(data) // 2
    fill_result_topic(settings, data[half:])
    t0 = time.monotonic()
    _send(es, index, bulk_bodies(data[:half]))
    Indexer(settings, IndexerOptions(group_id=f"{settings.topic_prefix}warm", until_caught_up=True)).run()
    took = time.monotonic() - t0
    es.indices.delete(index=index, ignore_unavailable=True)
    log.info("bench: Elasticsearch warm-up: %d documents in %.1f s", docs, took)
    return {"docs": docs, "seconds": round(took, 1)}


def _per_doc(summary: dict | None, docs: int) -> dict:
    """CPU µs per document of Elasticsearch and of the client (the driver, or an indexer process)."""
    groups = (summary or {}).get("groups", {})

    def us(*names):
        cpu = [groups[g]["cpu_s"] for g in names if g in groups]
        return round(sum(cpu) * 1e6 / docs, 1) if cpu and docs else None

    return {"es_us_per_doc": us("elasticsearch"), "client_us_per_doc": us("driver", "indexer")}


def bulk_ceiling(settings, docs: list[tuple[bytes, bytes]], mon=None, batch: int = BATCH) -> dict:
    """The ceiling: the documents as pre-serialised `index` actions (built before the clock starts), sent
    with es.bulk(operations=body) one request after the other from one client, into an index with the
    product's enriched template."""
    from bench.job_bench import phase
    from kibana.templates import install_templates

    es = _client(settings)
    install_templates(settings, es)
    index = settings.index(catalog.INDEX["enriched"].name)
    es.indices.delete(index=index, ignore_unavailable=True)
    es.indices.create(index=index)         # shaped by the template; not created inside the measurement
    bodies = bulk_bodies(docs, batch=batch)
    with phase(mon) as ph:
        t0 = time.monotonic()
        _send(es, index, bodies)
        took = time.monotonic() - t0
    count = _count(es, index)
    es.indices.delete(index=index, ignore_unavailable=True)
    out = {"docs": len(docs), "indexed": count, "seconds": round(took, 2), "docs_per_s": round(len(docs) / took),
           "bytes_per_doc": round(sum(len(b) for b in bodies) / len(docs)), **_per_doc(ph.summary, len(docs)),
           "procs": ph.summary}
    log.info("bench: raw bulk (ceiling): %s", {k: v for k, v in out.items() if k != "procs"})
    return out


def fill_result_topic(settings, docs: list[tuple[bytes, bytes]]) -> str:
    """The documents onto the settings' enriched result topic, keyed by id, compressed as the job's
    result sink writes them (flink_jobs.params.result_options: lz4)."""
    from confluent_kafka import Producer

    topic = settings.topic(catalog.INDEX["enriched"].topic)
    p = Producer({**settings.kafka_client_config(), "linger.ms": 10, "compression.type": "lz4", "acks": "all",
                  "batch.size": 1 << 20, "queue.buffering.max.kbytes": 1 << 20})
    for i, (key, value) in enumerate(docs):
        while True:
            try:
                p.produce(topic, value, key)
                break
            except BufferError:
                p.poll(0.1)
        if i % 10_000 == 0:
            p.poll(0)
    left = p.flush(60)
    if left:
        raise RuntimeError(f"{left} documents not delivered to {topic}")
    return topic


def indexer_run(settings, docs: int, mon=None, group: str | None = None) -> dict:
    """The indexer in this process over the enriched result topic (already filled with `docs` documents,
    fill_result_topic) into a new index with the enriched template: Indexer.run() with until_caught_up
    and a consumer group of its own, from the call to its return (group join and the last batch's wait
    included: what `churnstream index --until-caught-up` takes)."""
    from bench.job_bench import phase
    from indexer import Indexer, IndexerOptions
    from kibana.templates import install_templates

    es = _client(settings)
    install_templates(settings, es)
    index = settings.index(catalog.INDEX["enriched"].name)
    es.indices.delete(index=index, ignore_unavailable=True)
    es.indices.create(index=index)
    opts = IndexerOptions(group_id=group or f"{settings.index_prefix}indexer", until_caught_up=True)
    indexer = Indexer(settings, opts)
    with phase(mon) as ph:
        t0 = time.monotonic()
        totals = indexer.run()
        took = time.monotonic() - t0
    count = _count(es, index)
    es.indices.delete(index=index, ignore_unavailable=True)
    out = {"docs": docs, "indexed": totals.indexed, "visible": count, "dead_lettered": totals.dead_lettered,
           "bulks": totals.bulks, "seconds": round(took, 2), "docs_per_s": round(totals.indexed / took),
           **_per_doc(ph.summary, totals.indexed), "procs": ph.summary}
    if totals.indexed != docs or count != docs:
        log.warning("bench: the indexer indexed %d of %d documents (%d visible)", totals.indexed, docs, count)
    log.info("bench: indexer: %s", {k: v for k, v in out.items() if k != "procs"})
    return out


def _count(es, index: str) -> int:
    es.indices.refresh(index=index)
    return es.count(index=index)["count"]
