"""The job's result topics into Elasticsearch, for as long as it runs.

One consumer group reads every index's result topic (foundation.catalog.INDICES): a record is one
document, its key the document id, its value the document's JSON; a tombstone (no value) deletes it.
What it guarantees, and how:
- Nothing lost: a partition's offset is committed only after Elasticsearch acknowledged every
  document before it (or the document went to the index dead letters). A restart, a crash or a
  rebalance resumes from the last commit; what was written after it is written again.
- One document per id: the record key is the `_id`, so a record written twice is one document.
- Never an older version over a newer one: every write carries its record's offset as an external
  version. One id always lands in one partition (the key decides it), where offsets only grow, so
  the newer record has the higher version. Elasticsearch refuses a lower one with a 409: that is a
  replay, or a partition that moved to another indexer with writes in flight, and not an error.
  (A delete is remembered for index.gc_deletes, 60 s: a replay of an older write after that could
  bring a deleted document back. The job deletes nothing today.)
- Elasticsearch unavailable (no connection, 429, 5xx): the same documents are sent again with
  backoff for as long as it takes, with one log line per OUTAGE_LOG_EVERY_S; nothing is committed
  meanwhile. A wait longer than max.poll.interval.ms (10 min) makes this member leave the group;
  it rejoins when Elasticsearch is back and re-reads from the last commit.
- A document Elasticsearch refuses for good (mapping conflict, unparsable JSON): one record on the
  index dead-letter topic with the reason, index, id and payload; then it counts as done.
The request body is the record bytes between two action lines: no document is decoded here.
Scale-out is the group's: more processes with the same group id share the partitions; one that dies
leaves its partitions to the others within the session timeout (10 s).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from elastic_transport import ConnectionError as EsConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError

from foundation import UserError
from foundation.catalog import INDEX_DEAD_LETTERS, INDICES
from foundation.settings import Settings

log = logging.getLogger("churnstream.indexer")

OUTAGE_LOG_EVERY_S = 10.0
POLL_SLICE_S = 0.05
GONE = 404        # a delete of a document that is not there: the goal is reached
STALE = 409       # a write older than the document in the index: refused, correctly


@dataclass(frozen=True)
class IndexerOptions:
    group_id: str = "churnstream-indexer"
    batch_docs: int = 5_000            # a bulk request holds at most this many documents,
    batch_bytes: int = 8 << 20         # this many bytes,
    batch_wait_s: float = 0.2          # and leaves at the latest this long after its first record
    until_caught_up: bool = False      # stop when every partition is read to its end, indexed and searchable
    from_start: bool = False           # first read every partition from its beginning (a rebuild)
    progress_every_s: float = 5.0
    max_backoff_s: float = 30.0


@dataclass
class IndexerTotals:
    indexed: int = 0          # documents written (created or replaced)
    deleted: int = 0          # tombstones applied
    stale: int = 0            # refused as older than the document already there (409)
    dead_lettered: int = 0    # refused for good: on the index dead-letter topic
    retried: int = 0          # documents sent again after a 429/5xx or a lost connection
    bulks: int = 0

    def done(self) -> int:
        return self.indexed + self.deleted + self.stale + self.dead_lettered


def poll_timeout(batch_wait_s: float, waited_s: float | None) -> float:
    """How long the next consume() may wait, the batch having waited `waited_s` since its first record
    (None: no batch open). consume() returns only at its whole count or its whole timeout, so it is
    called in slices of POLL_SLICE_S: a record is seen within a slice of its arrival, and its batch
    leaves batch_wait_s after that (with one batch_wait_s-long call it left up to twice that later:
    at 5k msg/s the pass-through's documents became visible at p50 0.32 s instead of 0.23 s)."""
    left = batch_wait_s if waited_s is None else batch_wait_s - waited_s
    return max(0.0, min(POLL_SLICE_S, left))


def bulk_operation(index: str, key: bytes, value: bytes | None, offset: int) -> bytes:
    """One record as the lines of a bulk request: `index` with the value as the document, or
    `delete` for a tombstone; versioned by the record's offset. The value is not decoded."""
    # offset + 1: an external version must be positive, and offset 0 is a record like any other
    head = b'{"%s":{"_index":"%s","_id":%s,"version":%d,"version_type":"external"}}\n' % (
        b"index" if value is not None else b"delete", index.encode(), orjson.dumps(key.decode("utf-8", "replace")),
        offset + 1)
    return head + value + b"\n" if value is not None else head


class _Item:
    """One record as one bulk operation: the bytes to send (None: dead-lettered on reading), and
    where it came from."""
    __slots__ = ("chunk", "index", "doc_id", "topic", "partition", "offset", "value")

    def __init__(self, chunk: bytes | None, index: str, doc_id: bytes, topic: str, partition: int, offset: int,
                 value: bytes | None):
        self.chunk, self.index, self.doc_id = chunk, index, doc_id
        self.topic, self.partition, self.offset, self.value = topic, partition, offset, value


class Indexer:
    def __init__(self, settings: Settings, options: IndexerOptions = IndexerOptions(), es=None):
        self.settings, self.opts = settings, options
        # result topic -> its index
        self.routes = {settings.topic(i.topic): settings.index(i.name) for i in INDICES}
        self.es = (es or settings.es_client()).options(request_timeout=60, max_retries=0, retry_on_timeout=False)
        self.totals = IndexerTotals()
        self.dead_letter_topic = settings.topic(INDEX_DEAD_LETTERS)
        self._stop = threading.Event()
        self._assigned: set[tuple[str, int]] = set()
        self._at_end: set[tuple[str, int]] = set()
        self._rewind = options.from_start
        self._revoked = False
        self._producer: Producer | None = None
        self._last_outage_log = 0.0
        self.consumer = Consumer({
            **settings.kafka_client_config(),
            "group.id": options.group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            "max.poll.interval.ms": 600_000,
            # An indexer that dies (kill -9, a lost machine) leaves its partitions to the others of
            # the group after this long without a heartbeat (Kafka's default is 45 s).
            "session.timeout.ms": 10_000,
            "on_commit": self._on_commit,
        })

    # --------------------------------------------------------------------------------- lifecycle

    def stop(self) -> None:
        """Finish the batch at hand, commit it and return from run()."""
        self._stop.set()

    def run(self) -> IndexerTotals:
        restore = self._install_signals()
        self.consumer.subscribe(list(self.routes), on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_revoke)
        log.info("indexer: group %s reading %d result topics into %s", self.opts.group_id, len(self.routes),
                 self.settings.es_url)
        t0 = last_progress = time.monotonic()
        done_at_last = 0
        items: list[_Item] = []
        size, first_at = 0, 0.0
        try:
            while not self._stop.is_set():
                waited = time.monotonic() - first_at if items else None
                msgs = self.consumer.consume(num_messages=self.opts.batch_docs - len(items),
                                             timeout=poll_timeout(self.opts.batch_wait_s, waited))
                if self._revoked:   # a rebalance: what was read and not committed belongs to the new owner
                    items, size, self._revoked = [], 0, False
                for msg in msgs:
                    item = self._item(msg)
                    if item is None:
                        continue
                    if not items:
                        first_at = time.monotonic()
                    items.append(item)
                    size += len(item.chunk or b"")
                now = time.monotonic()
                if items and (len(items) >= self.opts.batch_docs or size >= self.opts.batch_bytes
                              or now - first_at >= self.opts.batch_wait_s or not msgs):
                    if self._write(items):
                        self._commit(items, asynchronous=True)
                    items, size = [], 0
                if now - last_progress >= self.opts.progress_every_s:
                    done = self.totals.done()
                    self._progress((done - done_at_last) / (now - last_progress))
                    last_progress, done_at_last = now, done
                if self.opts.until_caught_up and not items and self._caught_up():
                    break
            if items and self._write(items):
                self._commit(items, asynchronous=False)
            if self.opts.until_caught_up and not self._stop.is_set():
                # Caught up means searchable: without a refresh the last second of documents would
                # be invisible to a query made right after (refresh_interval 1 s).
                self.es.indices.refresh(index=",".join(sorted(set(self.routes.values()))), ignore_unavailable=True)
        finally:
            restore()
            self._close()
        elapsed = time.monotonic() - t0
        log.info("indexer: stopped after %.1f s: %d indexed, %d deleted, %d stale, %d dead-lettered, %d retried",
                 elapsed, self.totals.indexed, self.totals.deleted, self.totals.stale, self.totals.dead_lettered,
                 self.totals.retried)
        return self.totals

    def _close(self) -> None:
        self.consumer.close()   # offsets were committed batch by batch; this leaves the group at once
        if self._producer is not None:
            self._producer.flush(30)

    def _install_signals(self):
        if threading.current_thread() is not threading.main_thread():
            return lambda: None   # signals reach only the main thread; an embedding caller uses stop()
        old = {s: signal.signal(s, lambda *_: self._stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
        return lambda: [signal.signal(s, h) for s, h in old.items()]

    # ------------------------------------------------------------------------------- consuming

    def _item(self, msg) -> _Item | None:
        err = msg.error()
        tp = (msg.topic(), msg.partition())
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                self._at_end.add(tp)
            elif err.fatal():
                raise UserError(f"the indexer's Kafka consumer failed: {err.str()}")
            else:
                log.warning("indexer: Kafka: %s", err.str())
            return None
        self._at_end.discard(tp)
        index, key, value, offset = self.routes[msg.topic()], msg.key(), msg.value(), msg.offset()
        refused = None
        if key is None:
            refused = ("record_without_key", "a result record needs its document id as the key")
        elif value is not None and b"\n" in value:
            # One line per document in a bulk body: a raw line break would break the whole request.
            refused = ("document_spans_lines", "the value holds a raw line break")
        if refused:   # settled at once; still committed with its batch
            self._dead_letter(index, key or b"", msg.topic(), msg.partition(), offset, value, *refused)
            return _Item(None, index, key or b"", msg.topic(), msg.partition(), offset, value)
        return _Item(bulk_operation(index, key, value, offset), index, key, msg.topic(), msg.partition(), offset,
                     value)

    def _on_assign(self, consumer, partitions) -> None:
        if self._rewind:   # a rebuild reads everything again, whatever the group committed before
            for p in partitions:
                p.offset = OFFSET_BEGINNING
            self._rewind = False
        self._assigned = {(p.topic, p.partition) for p in partitions}
        self._at_end -= {tp for tp in self._at_end if tp not in self._assigned}
        consumer.assign(partitions)
        log.info("indexer: assigned %d partitions", len(partitions))

    def _on_revoke(self, consumer, partitions) -> None:   # noqa: ARG002
        self._revoked = True
        self._assigned, self._at_end = set(), set()
        log.info("indexer: %d partitions revoked; uncommitted records are left to their next owner", len(partitions))

    def _caught_up(self) -> bool:
        return bool(self._assigned) and self._assigned <= self._at_end

    def _commit(self, items: list[_Item], asynchronous: bool) -> None:
        last: dict[tuple[str, int], int] = {}
        for it in items:
            last[(it.topic, it.partition)] = it.offset
        offsets = [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=asynchronous)
        except KafkaException as e:   # e.g. this member was dropped from the group: the next owner re-reads
            log.warning("indexer: commit failed (%s); those records will be indexed again", e)

    def _on_commit(self, err, partitions) -> None:   # noqa: ARG002
        if err is not None:
            log.warning("indexer: commit failed (%s); those records will be indexed again", err)

    def _progress(self, rate: float) -> None:
        lag: dict[str, int] = {}
        try:
            parts = [TopicPartition(t, p) for t, p in sorted(self._assigned)]
            for tp in self.consumer.position(parts):
                # cached: the high watermark of the last fetch response, no request to the broker
                # (asking costs ~0.5 s per partition here)
                _, high = self.consumer.get_watermark_offsets(tp, cached=True)
                if high >= 0 and tp.offset >= 0:
                    lag[tp.topic] = lag.get(tp.topic, 0) + max(high - tp.offset, 0)
        except KafkaException:
            pass   # lag is for the eye; a broker hiccup must not stop indexing
        per_topic = "  ".join(f"{t.removeprefix(self.settings.topic_prefix)}={n:,}" for t, n in sorted(lag.items()))
        log.info("indexer: %8.0f docs/s  done=%s  dead-lettered=%d  lag %s", rate, f"{self.totals.done():,}",
                 self.totals.dead_lettered, per_topic or "-")

    # -------------------------------------------------------------------------------- writing

    def _write(self, items: list[_Item]) -> bool:
        """Index the batch until every document is settled; False when stopped before that."""
        pending, delay = [it for it in items if it.chunk is not None], 0.5
        while pending:
            try:
                statuses = self._bulk(pending)
            except _Retry as e:
                if not self._wait(delay, len(pending), str(e)):
                    return False
                delay = min(delay * 2, self.opts.max_backoff_s)
                continue
            retry: list[_Item] = []
            for it, (status, error) in zip(pending, statuses):
                if status < 300:
                    if it.value is None:
                        self.totals.deleted += 1
                    else:
                        self.totals.indexed += 1
                elif status == STALE:
                    self.totals.stale += 1
                elif status == GONE and it.value is None:
                    self.totals.deleted += 1
                elif status == 429 or status >= 500:
                    retry.append(it)
                else:
                    self._dead_letter(it.index, it.doc_id, it.topic, it.partition, it.offset, it.value,
                                      *(error or ("unknown", f"status {status}")))
            if retry:
                self.totals.retried += len(retry)
                if not self._wait(delay, len(retry), f"{len(retry)} documents refused for now (429/5xx)"):
                    return False
                delay = min(delay * 2, self.opts.max_backoff_s)
            pending = retry
        return self._settle_dead_letters()

    def _bulk(self, items: list[_Item]) -> list[tuple[int, tuple[str, str] | None]]:
        try:
            resp = self.es.bulk(operations=b"".join(it.chunk for it in items),
                                filter_path="errors,items.*.status,items.*.error.type,items.*.error.reason")
        except (EsConnectionError, ConnectionTimeout) as e:
            raise _Retry(f"no connection: {e}") from None
        except ApiError as e:
            if e.meta.status == 429 or e.meta.status >= 500:
                raise _Retry(f"HTTP {e.meta.status}") from None
            raise UserError(f"Elasticsearch at {self.settings.es_url} refused the indexer's bulk request "
                            f"(HTTP {e.meta.status}: {e.message}); check CHURNSTREAM_ES_USERNAME / "
                            "CHURNSTREAM_ES_PASSWORD and the user's index privileges.") from None
        self.totals.bulks += 1
        body = resp.body
        if not body.get("errors"):
            return [(200, None)] * len(items)
        out = []
        for entry in body["items"]:
            result = next(iter(entry.values()))
            error = result.get("error")
            out.append((result["status"], (error.get("type", "?"), error.get("reason", "")) if error else None))
        return out

    def _wait(self, delay: float, waiting: int, why: str) -> bool:
        now = time.monotonic()
        if now - self._last_outage_log >= OUTAGE_LOG_EVERY_S:
            self._last_outage_log = now
            log.warning("indexer: Elasticsearch at %s unavailable (%s); %d documents wait, nothing is committed, "
                        "retrying every %.0f s at most", self.settings.es_url, why, waiting, self.opts.max_backoff_s)
        return not self._stop.wait(delay)

    # ---------------------------------------------------------------------------- dead letters

    def _dead_letter(self, index: str, doc_id: bytes, topic: str, partition: int, offset: int, value: bytes | None,
                     error_type: str, reason: str) -> None:
        if self._producer is None:
            self._producer = Producer({**self.settings.kafka_client_config(), "acks": "all",
                                       "enable.idempotence": True, "linger.ms": 5})
        record = {"reason": error_type, "detail": reason[:1000], "index": index, "id": doc_id.decode("utf-8", "replace"),
                  "source_topic": topic, "source_partition": partition, "source_offset": offset,
                  "payload": value.decode("utf-8", "replace") if value is not None else None}
        self._producer.produce(self.dead_letter_topic, orjson.dumps(record), doc_id or None)
        self.totals.dead_lettered += 1
        if self.totals.dead_lettered <= 10 or self.totals.dead_lettered % 1000 == 0:
            log.warning("indexer: %s/%s refused by Elasticsearch (%s: %s): to %s", index,
                        doc_id.decode("utf-8", "replace"), error_type, reason[:200], self.dead_letter_topic)

    def _settle_dead_letters(self) -> bool:
        """The dead letters of a batch are on Kafka before its offsets are committed."""
        if self._producer is None:
            return True
        while self._producer.flush(5) > 0:
            if self._stop.is_set():
                return False
            log.warning("indexer: waiting for Kafka to take %d index dead letters", len(self._producer))
        return True


class _Retry(Exception):
    """Elasticsearch cannot take the request now; the same request will do later."""
