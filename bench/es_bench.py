"""Elasticsearch bulk indexing docs/s from one client (pre-serialised NDJSON, the ceiling of a sink)."""

from __future__ import annotations

import time

import orjson


def bulk_docs_per_s(settings, docs: int = 200_000, batch: int = 5_000) -> dict:
    es = settings.es_client()
    index = settings.index("bench-bulk")
    es.indices.delete(index=index, ignore_unavailable=True)
    es.indices.create(index=index, body={"settings": {"number_of_shards": 1, "number_of_replicas": 0,
                                                      "refresh_interval": "1s"}})
    t0 = time.monotonic()
    for start in range(0, docs, batch):
        lines = []
        for i in range(start, min(docs, start + batch)):
            lines.append(orjson.dumps({"index": {"_id": str(i)}}))
            lines.append(orjson.dumps({"activity_id": str(i), "customer_id": i % 1000, "propensity_to_churn": 0.5,
                                       "activity_type": "login", "event_time": 1_767_225_600_000 + i}))
        r = es.bulk(body=b"\n".join(lines) + b"\n", index=index, filter_path="errors")
        assert not r.get("errors"), r
    took = time.monotonic() - t0
    es.indices.delete(index=index, ignore_unavailable=True)
    return {"docs": docs, "seconds": round(took, 2), "docs_per_s": round(docs / took)}
