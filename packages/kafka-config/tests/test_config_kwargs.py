"""producer/consumer/admin kwargs: exact aiokafka arguments, accepted by the real constructors."""

from __future__ import annotations

import inspect
import ssl
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from coffeebuddy.infra.kafka.config import KafkaSettings

PASSWORD = "pw-for-kwargs-7Hq"


def _accepted(cls: type) -> set[str]:
    params = inspect.signature(cls).parameters.values()
    return {p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


def _sasl(mechanism: str, protocol: str = "SASL_PLAINTEXT") -> KafkaSettings:
    return KafkaSettings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "a:9092,b:9093",
            "KAFKA_SECURITY_PROTOCOL": protocol,
            "KAFKA_SASL_MECHANISM": mechanism,
            "KAFKA_SASL_USERNAME": "svc-coffeebuddy",
            "KAFKA_SASL_PASSWORD": PASSWORD,
        }
    )


def _all_settings(pki: Any) -> list[KafkaSettings]:
    plain = KafkaSettings.from_env(
        {"KAFKA_BOOTSTRAP_SERVERS": "a:9092", "KAFKA_CLIENT_RACK": "rack-1"}
    )
    tls = KafkaSettings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "a:9092",
            "KAFKA_SECURITY_PROTOCOL": "SSL",
            "KAFKA_SSL_CAFILE": str(pki.ca_file),
        }
    )
    return [plain, tls, _sasl("PLAIN"), _sasl("SCRAM-SHA-512", "SASL_SSL")]


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_config_kwargs_sasl_exact_arguments(mechanism: str) -> None:
    settings = _sasl(mechanism)
    common = {
        "bootstrap_servers": ["a:9092", "b:9093"],
        "client_id": "coffeebuddy",
        "request_timeout_ms": 40000,
        "retry_backoff_ms": 100,
        "metadata_max_age_ms": 300000,
        "connections_max_idle_ms": 540000,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "svc-coffeebuddy",
        "sasl_plain_password": PASSWORD,
    }
    assert settings.admin_kwargs() == common
    assert settings.producer_kwargs() == {
        **common,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "compression_type": None,
        "max_batch_size": 262144,
        "max_request_size": 1048576,
    }
    assert settings.consumer_kwargs("coffeebuddy.reminder-worker") == {
        **common,
        "group_id": "coffeebuddy.reminder-worker",
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": 45000,
        "heartbeat_interval_ms": 3000,
        "max_poll_interval_ms": 300000,
        "fetch_max_bytes": 52428800,
        "max_partition_fetch_bytes": 1048576,
        "fetch_max_wait_ms": 500,
        "max_poll_records": 500,
        "isolation_level": "read_uncommitted",
    }


def test_config_kwargs_sasl_ssl_adds_the_context(pki: Any) -> None:
    settings = _sasl("SCRAM-SHA-256", "SASL_SSL").with_overrides(ssl_cafile=pki.ca_file)
    kwargs = settings.producer_kwargs()
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-256"


def test_config_kwargs_plaintext_has_no_security_extras() -> None:
    kwargs = KafkaSettings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "a:1"}).consumer_kwargs(None)
    assert kwargs["security_protocol"] == "PLAINTEXT"
    assert kwargs["group_id"] is None
    assert not {k for k in kwargs if k.startswith(("sasl_", "ssl_"))}


def test_config_kwargs_consumer_never_auto_commits() -> None:
    settings = KafkaSettings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "a:1"})
    assert settings.consumer_kwargs("g")["enable_auto_commit"] is False


def test_config_kwargs_compression_and_rack() -> None:
    settings = KafkaSettings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "a:1",
            "KAFKA_COMPRESSION_TYPE": "gzip",
            "KAFKA_CLIENT_RACK": "az-1",
        }
    )
    assert settings.producer_kwargs()["compression_type"] == "gzip"
    assert settings.consumer_kwargs("g")["client_rack"] == "az-1"
    assert "client_rack" not in settings.producer_kwargs()  # the producer has no such arg


def test_config_kwargs_only_keys_each_constructor_accepts(pki: Any) -> None:
    for settings in _all_settings(pki):
        assert set(settings.producer_kwargs()) <= _accepted(AIOKafkaProducer)
        assert set(settings.consumer_kwargs("g")) <= _accepted(AIOKafkaConsumer)
        assert set(settings.admin_kwargs()) <= _accepted(AIOKafkaAdminClient)


def test_config_kwargs_every_setting_reaches_some_client() -> None:
    settings = KafkaSettings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "a:1", "KAFKA_CLIENT_RACK": "r"})
    used = set(settings.producer_kwargs()) | set(settings.consumer_kwargs("g"))
    by_kwarg = {"sasl_username": "sasl_plain_username", "sasl_password": "sasl_plain_password"}
    unused = {
        name
        for name in KafkaSettings.model_fields
        if by_kwarg.get(name, name) not in used
        and not name.startswith(("ssl_", "sasl_"))  # folded into ssl_context / SASL-only
    }
    assert unused == set()


async def test_config_kwargs_construct_real_clients(pki: Any) -> None:
    """aiokafka accepts every variant as it is (plain, TLS, mutual TLS, SASL): none raises."""
    for settings in _all_settings(pki):
        producer = AIOKafkaProducer(**settings.producer_kwargs())
        consumer = AIOKafkaConsumer(**settings.consumer_kwargs("g"))
        admin = AIOKafkaAdminClient(**settings.admin_kwargs())
        await producer.stop()
        await consumer.stop()
        await admin.close()


async def test_config_kwargs_idempotent_producer_with_weaker_acks_is_refused_early() -> None:
    # aiokafka itself refuses acks=1 with idempotence; the settings refuse it first, so
    # the kwargs never reach that state. With idempotence off aiokafka accepts acks=1.
    settings = KafkaSettings.from_env(
        {"KAFKA_BOOTSTRAP_SERVERS": "a:1", "KAFKA_ACKS": "1", "KAFKA_ENABLE_IDEMPOTENCE": "no"}
    )
    producer = AIOKafkaProducer(**settings.producer_kwargs())
    await producer.stop()
    with pytest.raises(ValueError, match="acks"):
        AIOKafkaProducer(**{**settings.producer_kwargs(), "enable_idempotence": True})
