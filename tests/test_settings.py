import pytest

from foundation import UserError
from foundation.settings import Settings


def test_environment_overrides_defaults_with_types():
    s = Settings.from_env({"CHURNSTREAM_KAFKA_BOOTSTRAP": "k:1", "CHURNSTREAM_ES_PORT": "9999"})
    assert s.kafka_bootstrap == "k:1" and s.es_port == 9999


def test_bad_number_is_one_sentence_with_the_fix():
    with pytest.raises(UserError) as e:
        Settings.from_env({"CHURNSTREAM_ES_PORT": "nine"})
    assert str(e.value) == "CHURNSTREAM_ES_PORT='nine' is not a whole number; set it to one, e.g. CHURNSTREAM_ES_PORT=9200."


def test_secrets_never_printed():
    s = Settings(es_password="hunter22", kafka_sasl_password="pw-123456", pii_hash_key="k" * 10)
    text = repr(s) + str(s.redacted())
    assert "hunter22" not in text and "pw-123456" not in text and "kkkkkkkkkk" not in text
    assert s.redacted()["es_password"] == "***"


def test_sasl_settings_reach_both_client_kinds():
    s = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                 kafka_sasl_username="u", kafka_sasl_password='p"w')
    assert s.kafka_client_config()["sasl.mechanism"] == "SCRAM-SHA-512"
    jaas = s.kafka_java_properties()["sasl.jaas.config"]
    assert "ScramLoginModule" in jaas and 'password="p\\"w"' in jaas


def test_names_use_prefixes():
    s = Settings(topic_prefix="dev-", index_prefix="x-")
    assert s.topic("customer_activity") == "dev-customer_activity"
    assert s.index("enriched") == "x-enriched"


def test_log_lines_go_to_the_current_stderr_even_after_it_was_swapped(monkeypatch):
    import io
    import logging

    from foundation.logs import configure

    first = io.StringIO()
    monkeypatch.setattr("sys.stderr", first)
    configure()
    first.close()                         # what pytest does to a finished test's capture
    second = io.StringIO()
    monkeypatch.setattr("sys.stderr", second)
    logging.getLogger("churnstream.test").info("one useful line")
    assert second.getvalue().endswith("churnstream.test one useful line\n")


def test_to_env_round_trips_every_field_for_a_child_process():
    s = Settings().with_(topic_prefix="t-", kafka_port=19092, pii_hash_key="k", parallelism=2)
    assert Settings.from_env(s.to_env()) == s
