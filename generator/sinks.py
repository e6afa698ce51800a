"""Where records go: Kafka (the load injector), stdout (--dry-run) or files (--out DIR).

Every sink is a `Sink`: it takes batches of (topic, key, value, timestamp_ms, kind) tuples and an
optional token bucket, says how many records are still on their way, and counts failures per
topic; none of them drops a record without counting it.
"""

from __future__ import annotations

import base64
import logging
import sys
import time
from pathlib import Path

from foundation import UserError

log = logging.getLogger("churnstream.generator")

PROBE_TIMEOUT_S = 5.0
DELIVERY_TIMEOUT_MS = 300_000
FLUSH_TIMEOUT_S = DELIVERY_TIMEOUT_MS / 1000 + 30
OUTAGE_LOG_EVERY_S = 10.0


def producer_config(settings) -> dict:
    """Safe by default: nothing is lost or duplicated by the producer itself, and batches are large."""
    return {
        **settings.kafka_client_config(),
        "acks": "all",
        "enable.idempotence": True,
        "compression.type": "lz4",
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "queue.buffering.max.messages": 500_000,
        "queue.buffering.max.kbytes": 512 * 1024,
        # librdkafka retries until this timeout: a broker restart of up to five minutes loses nothing;
        # a broker gone for longer shows up as counted failures in the ledger, not a hang.
        "message.timeout.ms": DELIVERY_TIMEOUT_MS,
        "delivery.report.only.error": True,    # successes cost nothing; delivered = sent - failed
        "log_level": 2,                        # connection errors: one line per 10 s from error_cb, not a flood
    }


def probe_kafka(settings, timeout: float = PROBE_TIMEOUT_S) -> None:
    """One sentence, within seconds, if the broker is not there."""
    from confluent_kafka import KafkaException, Producer

    p = Producer({**settings.kafka_client_config(), "socket.connection.setup.timeout.ms": int(timeout * 1000),
                  "log_level": 0})
    try:
        p.list_topics(timeout=timeout)
    except KafkaException:
        raise UserError(f"cannot reach Kafka at {settings.kafka_bootstrap} within {timeout:.0f} s; start it with "
                        "'churnstream stack up' or point CHURNSTREAM_KAFKA_BOOTSTRAP at a running broker.") from None


class Sink:
    """The load driver's view of a destination.

    send(records, bucket)  hand over one batch; `bucket.take()` paces it record by record
    flush(timeout_s)       wait until everything sent is delivered; returns how many are not
    pending()              records handed over and not yet delivered (queued or in flight)
    close()                flush, count what could not be delivered as failed, release resources
    failed / errors        per-topic failure counts and the first few reasons, for the ledger
    """
    name = ""

    def __init__(self) -> None:
        self.failed: dict[str, int] = {}
        self.errors: list[str] = []

    def send(self, records: list[tuple], bucket=None) -> None:
        raise NotImplementedError

    def flush(self, timeout_s: float) -> int:   # noqa: ARG002 - synchronous sinks have nothing in flight
        return 0

    def pending(self) -> int:
        return 0

    def failures(self) -> int:
        return sum(self.failed.values())

    def close(self) -> None:
        pass


class KafkaSink(Sink):
    name = "kafka"

    def __init__(self, settings, topic_names: dict[str, str], headers: dict[str, bytes] | None = None):
        from confluent_kafka import Producer

        super().__init__()
        self.topic_names = topic_names
        self.by_actual = {v: k for k, v in topic_names.items()}
        self.headers = headers or {}       # Avro wire-format prefix per logical topic (schema registry)
        conf = producer_config(settings)
        conf["on_delivery"] = self._on_delivery
        conf["error_cb"] = self._on_error
        self._last_outage_log = -OUTAGE_LOG_EVERY_S
        self.p = Producer(conf)

    def _on_delivery(self, err, msg) -> None:
        if err is not None:
            logical = self.by_actual.get(msg.topic(), msg.topic())
            self.failed[logical] = self.failed.get(logical, 0) + 1
            if len(self.errors) < 10:
                self.errors.append(f"{msg.topic()}: {err.str()}")

    def _on_error(self, err) -> None:
        if len(self.errors) < 10 and err.fatal():
            self.errors.append(f"producer: {err.str()}")
        # Broker down/unreachable: one line, not one per retry; the records wait in the queue.
        now = time.monotonic()
        if now - self._last_outage_log >= OUTAGE_LOG_EVERY_S:
            self._last_outage_log = now
            log.warning("generator: Kafka unreachable (%s); records stay queued and are retried for up to %d s",
                        err.str(), DELIVERY_TIMEOUT_MS // 1000)

    def send(self, records: list[tuple], bucket=None) -> None:
        produce, poll, names, headers = self.p.produce, self.p.poll, self.topic_names, self.headers
        take = bucket.take if bucket is not None else None
        if take is None and not headers:   # the load-test path: nothing but produce() per record
            try:
                for topic, key, value, ts, kind in records:
                    produce(names[topic], value, key, timestamp=ts)
                poll(0)
                return
            except BufferError:   # queue full part-way: finish this batch on the careful path below
                records = records[records.index((topic, key, value, ts, kind)):]
        for topic, key, value, ts, kind in records:
            if headers and kind != "invalid":   # invalid records are JSON on purpose, whatever the format
                value = headers[topic] + value
            if take is not None:
                take()
            try:
                produce(names[topic], value, key, timestamp=ts)
            except BufferError:   # local queue full: let librdkafka drain, then retry the same record
                while True:
                    poll(0.05)
                    try:
                        produce(names[topic], value, key, timestamp=ts)
                        break
                    except BufferError:
                        continue
        poll(0)

    def flush(self, timeout_s: float) -> int:
        return self.p.flush(timeout_s)

    def pending(self) -> int:
        return len(self.p) if self.p is not None else 0

    def close(self) -> None:
        """Flush, then release the producer: its threads must be gone before the driver forks workers."""
        if self.p is None:
            return
        remaining = self.p.flush(FLUSH_TIMEOUT_S)
        if remaining:   # purge the rest so their delivery reports (as failures) are counted per topic
            self.p.purge()
            self.p.flush(5)
            self.errors.append(f"{remaining} messages were still undelivered after {FLUSH_TIMEOUT_S:.0f} s")
        self.p = None


class StdoutSink(Sink):
    """--dry-run: one tab-separated line per record: topic, key, timestamp_ms, kind, value."""
    name = "stdout"

    def __init__(self, fmt: str, out=None):
        super().__init__()
        self.fmt, self.out = fmt, out or sys.stdout.buffer

    def send(self, records, bucket=None) -> None:
        write, take = self.out.write, (bucket.take if bucket is not None else None)
        for topic, key, value, ts, kind in records:
            if take is not None:
                take()
            if self.fmt == "avro" and kind != "invalid":
                value = base64.b64encode(value)
            write(b"%s\t%s\t%d\t%s\t%s\n" % (topic.encode(), key or b"", ts, kind.encode(), value))

    def close(self) -> None:
        self.out.flush()


class FileSink(Sink):
    """--out DIR: <topic>.jsonl (JSON), or <topic>.avro object container files (Avro) plus
    <topic>.rejects.jsonl for the malformed/invalid records a container file cannot hold."""
    name = "files"

    def __init__(self, out_dir: str, fmt: str, schemas: dict, suffix: str = ""):
        super().__init__()
        self.dir = Path(out_dir)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create output folder {out_dir}: {e.strerror}.") from None
        self.fmt, self.schemas, self.suffix = fmt, schemas, suffix
        self.files: dict[str, object] = {}
        self.avro_rows: dict[str, list] = {}

    def _file(self, name: str):
        if name not in self.files:
            self.files[name] = open(self.dir / name, "ab")
        return self.files[name]

    def send(self, records, bucket=None) -> None:
        take = bucket.take if bucket is not None else None
        for topic, key, value, ts, kind in records:
            if take is not None:
                take()
            if self.fmt == "json":
                self._file(f"{topic}{self.suffix}.jsonl").write(value + b"\n")
            elif kind in ("malformed", "invalid"):
                line = b'{"kind":"%s","key":"%s","value_b64":"%s"}\n' % (kind.encode(), key or b"",
                                                                        base64.b64encode(value))
                self._file(f"{topic}{self.suffix}.rejects.jsonl").write(line)
            else:
                self.avro_rows.setdefault(topic, []).append(value)
                if len(self.avro_rows[topic]) >= 10_000:
                    self._flush_avro(topic)

    def _flush_avro(self, topic: str) -> None:
        from io import BytesIO

        import fastavro

        rows = self.avro_rows.pop(topic, [])
        if not rows:
            return
        schema = self.schemas[topic].parsed
        dicts = [fastavro.schemaless_reader(BytesIO(v), schema) for v in rows]
        path = self.dir / f"{topic}{self.suffix}.avro"
        mode = "a+b" if path.exists() and path.stat().st_size else "wb"
        with open(path, mode) as fo:
            fastavro.writer(fo, schema, dicts, codec="deflate")

    def close(self) -> None:
        for topic in list(self.avro_rows):
            self._flush_avro(topic)
        for f in self.files.values():
            f.close()
