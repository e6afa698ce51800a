"""Fail fast, in one sentence, when a service the command needs is not there."""

from __future__ import annotations

from churnstream import UserError
from churnstream.settings import Settings


def require_kafka(settings: Settings, timeout: float = 5.0) -> None:
    from confluent_kafka.admin import AdminClient

    conf = dict(settings.kafka_client_config(), **{"socket.connection.setup.timeout.ms": int(timeout * 1000)})
    try:
        AdminClient(conf).list_topics(timeout=timeout)
    except Exception:  # noqa: BLE001 - any failure means the same thing to the user
        raise UserError(f"Kafka is not reachable at {settings.kafka_bootstrap}; start the local stack with "
                        "'churnstream stack up' or point CHURNSTREAM_KAFKA_BOOTSTRAP at your broker.") from None


def require_elasticsearch(settings: Settings) -> None:
    try:
        es = settings.es_client()
        es.cluster.health(wait_for_status="yellow", timeout="5s", request_timeout=10)
    except Exception as e:  # noqa: BLE001
        hint = "check CHURNSTREAM_ES_USERNAME/CHURNSTREAM_ES_PASSWORD" if "401" in str(e) or "403" in str(e) else \
            "start the local stack with 'churnstream stack up' or point CHURNSTREAM_ES_URL at your cluster"
        raise UserError(f"Elasticsearch is not usable at {settings.es_url} ({type(e).__name__}); {hint}.") from None
