"""Compare what is in Elasticsearch with what the pipeline must have produced.

For every index: expected, found, missing, duplicated, wrong (with the first differing ids).
Any difference is a failure: a single lost, duplicated or altered record is reported by id.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

from elasticsearch import helpers

from churnstream.expected import Expected, same_record
from foundation.catalog import date_fields, index_names
from foundation.settings import Settings

# Timestamps are compared as instants: the job and the recomputation write them in different forms.
TIME_FIELDS = date_fields()


@dataclass
class IndexReport:
    index: str
    expected: int
    found: int
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    wrong: list[tuple[str, str]] = field(default_factory=list)   # (id, "field: expected != found")

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.duplicated or self.wrong)


def to_ms(value) -> int | None:
    if value is None or isinstance(value, int):
        return value
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return round(dt.timestamp() * 1000)


def same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def compare_docs(index: str, expected: dict[str, dict], found: list[tuple[str, dict]]) -> IndexReport:
    counts = Counter(doc_id for doc_id, _ in found)
    report = IndexReport(index, len(expected), len(found))
    report.duplicated = sorted(i for i, n in counts.items() if n > 1)
    got = dict(found)
    report.missing = sorted(set(expected) - set(got))
    report.unexpected = sorted(set(got) - set(expected))
    for doc_id in sorted(set(expected) & set(got)):
        exp, doc = expected[doc_id], got[doc_id]
        for name, want in exp.items():
            have = doc.get(name)
            if name in TIME_FIELDS:
                have = to_ms(have)
            if not same(want, have):
                report.wrong.append((doc_id, f"{name}: expected {want!r}, found {have!r}"))
                break
    return report


def compare_dead_letters(index: str, expected: list[dict], found: list[tuple[str, dict]]) -> IndexReport:
    want = Counter((d["reason"], same_record(d["payload"])) for d in expected)
    have = Counter((d.get("reason"), same_record(d.get("payload"))) for _, d in found)
    report = IndexReport(index, sum(want.values()), sum(have.values()))
    # (An empty record's dead letter has no payload.)
    report.missing = [f"{r}: {(p or '')[:60]}" for (r, p), n in (want - have).items() for _ in range(n)]
    report.unexpected = [f"{r}: {(p or '')[:60]}" for (r, p), n in (have - want).items() for _ in range(n)]
    return report


def fetch_all(es, index: str) -> list[tuple[str, dict]]:
    if not es.indices.exists(index=index):
        return []
    es.indices.refresh(index=index)
    return [(h["_id"], h["_source"]) for h in helpers.scan(es, index=index, query={"query": {"match_all": {}}},
                                                        size=5000, preserve_order=False)]


def late_payloads(settings: Settings) -> Counter:
    """The payloads of the job's 'late' dead letters (records that arrived behind its watermark), with
    their counts: what the recomputation leaves out of its input (expected.compute's ``late``)."""
    es = settings.es_client()
    index = index_names(settings)["dead_letters"]
    if not es.indices.exists(index=index):
        return Counter()
    es.indices.refresh(index=index)
    hits = helpers.scan(es, index=index, query={"query": {"term": {"reason": "late"}}}, size=5000,
                        preserve_order=False)
    return Counter(h["_source"].get("payload") for h in hits)


def verify_accounting_late(settings: Settings, recompute) -> tuple[list[IndexReport], int]:
    """verify() against ``recompute(late payloads)``: every index equals the recomputation of the records
    the job accepted, the late ones counted apart. Returns the reports and how many were late."""
    late = late_payloads(settings)
    return verify(settings, recompute(late)), sum(late.values())


def verify(settings: Settings, expected: Expected) -> list[IndexReport]:
    es = settings.es_client()
    names = index_names(settings)
    reports = []
    for key, exp in expected.by_index().items():
        found = fetch_all(es, names[key])
        if key == "dead_letters":
            reports.append(compare_dead_letters(names[key], exp, found))
        else:
            reports.append(compare_docs(names[key], exp, found))
    return reports


def format_reports(reports: list[IndexReport]) -> str:
    lines = [f"{'index':<36} {'expected':>9} {'found':>9} {'missing':>8} {'dup':>5} {'extra':>6} {'wrong':>6}  status"]
    for r in reports:
        lines.append(f"{r.index:<36} {r.expected:>9} {r.found:>9} {len(r.missing):>8} {len(r.duplicated):>5} "
                     f"{len(r.unexpected):>6} {len(r.wrong):>6}  {'OK' if r.ok else 'DIFF'}")
        for label, items in (("missing", r.missing), ("duplicated", r.duplicated), ("unexpected", r.unexpected),
                             ("wrong", [f"{i} ({d})" for i, d in r.wrong])):
            if items:
                lines.append(f"    first {label}: " + "; ".join(map(str, items[:3])))
    return "\n".join(lines)
