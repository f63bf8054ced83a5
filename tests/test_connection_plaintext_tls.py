"""Cross-package connection tests: KafkaSettings + check_connection against real brokers.

Plaintext against the session broker, TLS through the stunnel-fronted broker (trusted and
untrusted CA), SASL where the broker can do it (skipped with the reason elsewhere).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError as AIOKafkaConnectionError

from coffeebuddy.infra.kafka.config import (
    KafkaConnectionError,
    KafkaSettings,
    check_connection,
)
from coffeebuddy.infra.kafka.testing import (
    BrokerHandle,
    CertificateAuthority,
    TlsBroker,
    TopicFactory,
    create_topics,
    require_capability,
    unique_topic_name,
    wait_until,
)


async def _round_trip(settings: KafkaSettings, topic: str, value: bytes) -> list[bytes | None]:
    producer = AIOKafkaProducer(**settings.producer_kwargs())
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, **settings.consumer_kwargs(None))
    await consumer.start()
    seen: list[bytes | None] = []
    try:

        async def received() -> bool:
            batch = await consumer.getmany(timeout_ms=200)
            seen.extend(r.value for records in batch.values() for r in records)
            return bool(seen)

        await wait_until(received, timeout=15, message=f"record back from {topic}")
    finally:
        await consumer.stop()
    return seen


async def test_plaintext_round_trip_and_check_connection(
    kafka_settings: KafkaSettings, unique_topic: TopicFactory
) -> None:
    await check_connection(kafka_settings, timeout=5)
    topic = unique_topic(partitions=1)
    assert await _round_trip(kafka_settings, topic.name, b"plain") == [b"plain"]


async def test_tls_with_the_right_ca_produces_and_consumes(kafka_tls_broker: TlsBroker) -> None:
    settings = kafka_tls_broker.settings
    await check_connection(settings, timeout=5)
    topic = unique_topic_name("tls-round-trip")
    await create_topics(settings, [(topic, 1)])  # over TLS too: no broker auto-creates here
    assert await _round_trip(settings, topic, b"secret-ish") == [b"secret-ish"]


@pytest.fixture
def untrusted_ca(tmp_path: Path) -> Path:
    """A CA that did not sign the broker's certificate."""
    return CertificateAuthority("some other CA").write_cert(tmp_path / "other-ca.pem")


async def test_tls_with_an_untrusted_ca_fails_with_a_clear_message(
    kafka_tls_broker: TlsBroker, untrusted_ca: Path
) -> None:
    settings = kafka_tls_broker.settings_with(ca_file=untrusted_ca)
    with pytest.raises(KafkaConnectionError) as caught:
        await check_connection(settings, timeout=5)
    message = str(caught.value)
    assert "is not trusted" in message
    assert "certificate verify failed" in message
    assert f"KAFKA_SSL_CAFILE={untrusted_ca}" in message
    assert kafka_tls_broker.bootstrap_servers in message


async def test_producer_start_with_untrusted_ca_is_explained(
    kafka_tls_broker: TlsBroker, untrusted_ca: Path
) -> None:
    """aiokafka alone says "Unable to bootstrap"; the start path asks check_connection why."""
    settings = kafka_tls_broker.settings_with(
        ca_file=untrusted_ca, extra={"KAFKA_REQUEST_TIMEOUT_MS": "3000"}
    )
    producer = AIOKafkaProducer(**settings.producer_kwargs())
    with pytest.raises(AIOKafkaConnectionError) as bare:
        await producer.start()
    await producer.stop()
    assert "not trusted" not in str(bare.value)

    from coffeebuddy.infra.kafka.producer import KafkaEventProducer

    with pytest.raises(KafkaConnectionError, match="is not trusted") as explained:
        async with KafkaEventProducer(settings):
            pass
    assert "KAFKA_SSL_CAFILE" in str(explained.value)


async def test_tls_with_system_cas_only_is_not_trusted(kafka_tls_broker: TlsBroker) -> None:
    env = kafka_tls_broker.env()
    del env["KAFKA_SSL_CAFILE"]
    settings = KafkaSettings.from_env(env)
    with pytest.raises(KafkaConnectionError, match="is not trusted") as caught:
        await check_connection(settings, timeout=5)
    assert "set KAFKA_SSL_CAFILE to the CA" in str(caught.value)


SASL_CASES = [
    (protocol, mechanism)
    for protocol in ("SASL_PLAINTEXT", "SASL_SSL")
    for mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
]


@pytest.mark.parametrize(("protocol", "mechanism"), SASL_CASES)
async def test_sasl_connection_round_trip_with_production_defaults(
    kafka_broker: BrokerHandle, protocol: str, mechanism: str
) -> None:
    """Every SASL listener and mechanism: check_connection, then acks=all + idempotence."""
    require_capability(kafka_broker, "sasl")
    if kafka_broker.apache is not None:
        settings = kafka_broker.apache.settings(protocol, mechanism=mechanism)  # type: ignore[arg-type]
    else:
        username = os.environ.get("COFFEEBUDDY_TEST_SASL_USERNAME")
        password = os.environ.get("COFFEEBUDDY_TEST_SASL_PASSWORD")
        if not (username and password):
            pytest.skip(
                "the external broker supports SASL but COFFEEBUDDY_TEST_SASL_USERNAME/PASSWORD "
                "are not set"
            )
        if protocol != os.environ.get("COFFEEBUDDY_TEST_SASL_PROTOCOL", "SASL_PLAINTEXT") or (
            mechanism != os.environ.get("COFFEEBUDDY_TEST_SASL_MECHANISM", "PLAIN")
        ):
            pytest.skip(
                f"the external broker's test credentials are not for {protocol}/{mechanism}"
            )
        settings = kafka_broker.settings(
            KAFKA_SECURITY_PROTOCOL=protocol,
            KAFKA_SASL_MECHANISM=mechanism,
            KAFKA_SASL_USERNAME=username,
            KAFKA_SASL_PASSWORD=password,
        )
    assert settings.acks == "all"
    assert settings.enable_idempotence
    await check_connection(settings, timeout=10)
    topic = unique_topic_name(f"sasl-{protocol}-{mechanism}")
    await create_topics(settings, [(topic, 1)])
    assert await _round_trip(settings, topic, b"over sasl") == [b"over sasl"]
    wrong = settings.with_overrides(sasl_password="definitely-wrong")
    with pytest.raises(KafkaConnectionError, match="SASL authentication") as caught:
        await check_connection(wrong, timeout=10)
    assert "definitely-wrong" not in str(caught.value)
