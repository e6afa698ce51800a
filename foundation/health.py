"""Fail fast, in one sentence, when a service the command needs is not there (or will not let us in)."""

from __future__ import annotations

import contextlib
import json
import logging
import time
import urllib.error
import urllib.request
import warnings

from confluent_kafka.admin import AdminClient

from foundation import UserError
from foundation.catalog import TOPICS
from foundation.localstack.schema_registry import url as local_url
from foundation.settings import Settings


class _Collect(logging.Handler):
    """librdkafka's log lines, kept for the diagnosis instead of being printed to stderr."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _kafka_problem(settings: Settings, errors: list[str]) -> str | None:
    """The one-sentence diagnosis of what librdkafka reported, or None for 'not reachable'."""
    text = "\n".join(errors)
    where = settings.kafka_bootstrap
    if "SASL authentication error" in text or "_AUTHENTICATION" in text:
        return (f"Kafka at {where} rejected the {settings.kafka_sasl_mechanism} login of user "
                f"{settings.kafka_sasl_username!r}; check CHURNSTREAM_KAFKA_SASL_USERNAME, "
                "CHURNSTREAM_KAFKA_SASL_PASSWORD and CHURNSTREAM_KAFKA_SASL_MECHANISM.")
    if "certificate verify failed" in text:
        return (f"Kafka at {where} presented a TLS certificate this client does not trust; set "
                "CHURNSTREAM_KAFKA_SSL_CA_LOCATION to the PEM file of the CA that signed it.")
    if "connecting to a PLAINTEXT broker listener" in text or (
            "connection closed by peer" in text and ("APIVERSION_QUERY" in text or "in state UP" in text)):
        return (f"Kafka at {where} closed the connection during the handshake; check that "
                f"CHURNSTREAM_KAFKA_SECURITY_PROTOCOL ({settings.kafka_security_protocol}) is what the broker's "
                "listener on that port expects.")
    return None


def require_kafka(settings: Settings, timeout: float = 5.0) -> None:
    """Metadata from the brokers within ``timeout`` seconds, or a UserError saying why not.

    A rejected login or an untrusted certificate is reported as soon as librdkafka sees it (well
    under a second); nothing listening is reported after ``timeout``.
    """

    errors: list[str] = []
    logs = _Collect()
    logger = logging.getLogger("churnstream.health.rdkafka")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(logs)
    conf = dict(settings.kafka_client_config(), **{
        "socket.connection.setup.timeout.ms": int(timeout * 1000),
        "error_cb": lambda err: errors.append(f"{err.name()}: {err.str()}"),
        "logger": logger,
    })
    try:
        admin = AdminClient(conf)
        deadline = time.monotonic() + timeout
        while True:
            try:
                admin.list_topics(timeout=min(0.5, max(0.05, deadline - time.monotonic())))
                return
            except Exception:  # noqa: BLE001 - diagnosed below
                pass
            admin.poll(0)                       # serves error_cb and the log lines
            problem = _kafka_problem(settings, errors + logs.lines)
            definitive = problem is not None and "closed the connection" not in problem
            if definitive or time.monotonic() >= deadline:
                break
    except Exception:  # noqa: BLE001 - a client that cannot even start: same advice
        problem = None
    finally:
        logger.removeHandler(logs)
    raise UserError(problem or f"Kafka is not reachable at {settings.kafka_bootstrap}; start the local stack with "
                    "'churnstream stack up' or point CHURNSTREAM_KAFKA_BOOTSTRAP at your broker.")


@contextlib.contextmanager
def _quiet(*loggers: str):
    """The probe's own failures are the diagnosis: keep client warnings (with tracebacks) off stderr."""
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in loggers]
    for lg, _ in saved:
        lg.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # e.g. "unable to verify that the server is Elasticsearch" on a 401
            yield
    finally:
        for lg, level in saved:
            lg.setLevel(level)


def require_elasticsearch(settings: Settings) -> None:
    try:
        with _quiet("elasticsearch", "elastic_transport", "urllib3"):
            es = settings.es_client()
            es.options(request_timeout=10).cluster.health(wait_for_status="yellow", timeout="5s")
    except Exception as e:  # noqa: BLE001
        status = getattr(e, "status_code", None)
        if status == 401:
            who = f"the login of user {settings.es_username!r}" if settings.es_username else "a request without credentials"
            raise UserError(f"Elasticsearch at {settings.es_url} rejected {who} (HTTP 401); check "
                            "CHURNSTREAM_ES_USERNAME and CHURNSTREAM_ES_PASSWORD.") from None
        if status == 403:
            raise UserError(f"Elasticsearch at {settings.es_url} denied user {settings.es_username!r} access (HTTP 403); "
                            "give that user access or set CHURNSTREAM_ES_USERNAME to one that has it.") from None
        raise UserError(f"Elasticsearch is not usable at {settings.es_url} ({type(e).__name__}); start the local "
                        "stack with 'churnstream stack up' or point CHURNSTREAM_ES_URL at your cluster.") from None


def require_flink(settings: Settings, timeout: float = 5.0) -> None:
    """A remote session cluster (CHURNSTREAM_FLINK_JOBMANAGER / --jobmanager) answers its REST API.

    Without this the PyFlink client retries for over a minute and ends in a Java stack trace. The
    local mini-cluster (no jobmanager set) needs nothing.
    """
    if not settings.flink_jobmanager:
        return
    host, _, port = settings.flink_jobmanager.partition(":")
    url = f"http://{host}:{port or '8081'}/config"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            body = json.load(r)
    except (OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or type(e).__name__
        raise UserError(f"the Flink JobManager at {settings.flink_jobmanager} does not answer on its REST API "
                        f"({reason}); start the cluster or fix --jobmanager / CHURNSTREAM_FLINK_JOBMANAGER.") from None
    if not isinstance(body, dict) or "flink-version" not in body:
        raise UserError(f"{settings.flink_jobmanager} answers HTTP but is not a Flink JobManager REST API; "
                        "fix --jobmanager / CHURNSTREAM_FLINK_JOBMANAGER.")


def require_schema_registry(settings: Settings, timeout: float = 5.0) -> None:
    """--format avro: the Confluent-compatible registry answers (the job looks writer schemas up there)."""

    url = settings.schema_registry_url
    if not url:
        raise UserError("--format avro needs a Schema Registry; set CHURNSTREAM_SCHEMA_REGISTRY_URL (the local "
                        f"stack's is {local_url('127.0.0.1', settings.registry_port)}).")
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/subjects", timeout=timeout) as r:
            text = r.read()
    except (OSError, ValueError) as e:   # refused, timeout, HTTP error status, bad URL
        reason = getattr(e, "reason", None) or getattr(e, "code", None) or type(e).__name__
        raise UserError(f"the Schema Registry at {url} does not answer ({reason}); start the local stack with "
                        "'churnstream stack up' or point CHURNSTREAM_SCHEMA_REGISTRY_URL at your registry.") from None
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if not isinstance(body, list):
        raise UserError(f"{url} answers HTTP but is not a Confluent-compatible Schema Registry API; fix "
                        "CHURNSTREAM_SCHEMA_REGISTRY_URL (Apicurio serves it under /apis/ccompat/v7).")


def require_topics(settings: Settings, timeout: float = 10.0) -> None:
    """Every project topic exists: a Flink source or sink on a missing topic restarts forever
    (UnknownTopicOrPartitionException) instead of failing once."""


    existing = set(AdminClient(settings.kafka_client_config()).list_topics(timeout=timeout).topics)
    missing = [settings.topic(t.name) for t in TOPICS if settings.topic(t.name) not in existing]
    if missing:
        raise UserError(f"Kafka at {settings.kafka_bootstrap} has no topic {', '.join(missing)}; create the "
                        "project's topics with 'churnstream topics' (same CHURNSTREAM_TOPIC_PREFIX) and run again.")
