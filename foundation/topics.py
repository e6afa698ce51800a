"""The project's Kafka topics (foundation.catalog.TOPICS), created idempotently with their partitions and cleanup policy."""

from __future__ import annotations

import logging
import time

from confluent_kafka.admin import AdminClient, NewTopic

from foundation import UserError
from foundation.catalog import TOPICS
from foundation.settings import Settings

log = logging.getLogger("churnstream.topics")


def ensure_topics(settings: Settings, specs=TOPICS) -> list[str]:
    """Create the missing topics; return the names created. Existing topics are left as they are."""

    admin = AdminClient(settings.kafka_client_config())
    try:
        existing = set(admin.list_topics(timeout=10).topics)
    except Exception as e:  # noqa: BLE001
        raise UserError(f"cannot reach Kafka at {settings.kafka_bootstrap} ({e}); "
                        "start it with 'churnstream stack up' or set CHURNSTREAM_KAFKA_BOOTSTRAP.") from None
    wanted = [s for s in specs if settings.topic(s.name) not in existing]
    if not wanted:
        return []
    # The catalog's partitions, or the job's parallelism if that is more: a source subtask without a
    # partition reads nothing, and a result topic's partitions are what its indexers share.
    futures = admin.create_topics([NewTopic(settings.topic(s.name), max(s.partitions, settings.parallelism),
                                            settings.topic_replication, config={**s.config, **replicated(settings)})
                                   for s in wanted], operation_timeout=30)
    created = []
    for name, fut in futures.items():
        try:
            fut.result()
            created.append(name)
            log.info("topics: created %s", name)
        except Exception as e:  # noqa: BLE001
            if "TOPIC_ALREADY_EXISTS" not in str(e):
                raise UserError(f"could not create topic {name}: {e}") from None
    _wait_for_leaders(settings, admin, [settings.topic(s.name) for s in wanted])
    return created


def replicated(settings: Settings) -> dict[str, str]:
    """A replicated topic takes a write once all but one of its replicas have it (2 of 3): with
    producers waiting for them (acks=all), an acknowledged record survives the loss of any one
    broker, and writes go on while one is down."""
    if settings.topic_replication < 2:
        return {}
    return {"min.insync.replicas": str(settings.topic_replication - 1)}


def _wait_for_leaders(settings: Settings, admin: AdminClient, names: list[str], timeout: float = 30.0) -> None:
    """Until every partition of the topics answers for its offsets: a created topic is not usable at
    once (a fresh broker answered a client asking for offsets with NOT_LEADER_FOR_PARTITION)."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    probe = Consumer({**settings.kafka_client_config(), "group.id": "churnstream-topics-probe",
                      "enable.auto.commit": False})
    deadline = time.monotonic() + timeout
    try:
        waiting = list(names)
        while waiting:
            meta = admin.list_topics(timeout=10).topics
            still = []
            for name in waiting:
                parts = meta[name].partitions if name in meta and meta[name].error is None else {}
                try:
                    if not parts:
                        raise KafkaException("no metadata yet")
                    for p in parts:
                        probe.get_watermark_offsets(TopicPartition(name, p), timeout=5)
                except KafkaException:
                    still.append(name)
            waiting = still
            if waiting and time.monotonic() > deadline:
                raise UserError(f"Kafka created {', '.join(waiting)} but its partitions did not answer within "
                                f"{timeout:.0f} s; check the broker's log.")
            if waiting:
                time.sleep(0.1)
    finally:
        probe.close()


def end_offsets(settings: Settings, name: str) -> dict[int, int]:
    """The end offset (next offset to be written) of every partition of topic ``name``, now."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    probe = Consumer({**settings.kafka_client_config(), "group.id": "churnstream-topics-probe",
                      "enable.auto.commit": False})
    try:
        meta = probe.list_topics(name, timeout=10).topics.get(name)
        if meta is None or meta.error is not None or not meta.partitions:
            raise UserError(f"topic {name} does not exist on {settings.kafka_bootstrap}; create the topics with "
                            "'churnstream topics' (or produce data with 'churnstream generate') first.")
        return {p: probe.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1] for p in sorted(meta.partitions)}
    except KafkaException as e:
        raise UserError(f"cannot read the end offsets of {name} from Kafka at {settings.kafka_bootstrap} ({e}); "
                        "start it with 'churnstream stack up' or set CHURNSTREAM_KAFKA_BOOTSTRAP.") from None
    finally:
        probe.close()


def delete_topics(settings: Settings, names: list[str]) -> None:
    admin = AdminClient(settings.kafka_client_config())
    for _, fut in admin.delete_topics(names, operation_timeout=30).items():
        try:
            fut.result()
        except Exception:  # noqa: BLE001 - already gone
            pass
