"""KIT: the testing package as a client's test suite uses it (public API and fixtures only)."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.testing import (
    CAPABILITIES,
    SESSION_SASL_USERS,
    BrokerHandle,
    EmbeddedBroker,
    TopicFactory,
    free_port,
    require_capability,
    wait_until,
    wait_until_sync,
)


def test_kit_embedded_broker_starts_answers_and_stops() -> None:
    with EmbeddedBroker() as broker:
        assert broker.running
        assert broker.bootstrap_servers.startswith("127.0.0.1:")
        assert 18 in broker.api_versions  # it answered ApiVersions before start() returned
    assert not broker.running


async def test_kit_session_broker_round_trip(
    kafka_broker: BrokerHandle, kafka_settings: KafkaSettings, unique_topic: TopicFactory
) -> None:
    assert kafka_broker.kind in {"external", "testcontainers", "apache", "embedded"}
    topic = unique_topic(partitions=1)
    producer = AIOKafkaProducer(**kafka_settings.producer_kwargs())
    await producer.start()
    try:
        await producer.send_and_wait(topic.name, b"kit", key=b"run-1")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic.name, **kafka_settings.consumer_kwargs(None))
    await consumer.start()
    values: list[bytes | None] = []
    try:

        async def received() -> bool:
            batch = await consumer.getmany(timeout_ms=200)
            values.extend(r.value for records in batch.values() for r in records)
            return bool(values)

        await wait_until(received, timeout=15, message=f"the record on {topic.name}")
    finally:
        await consumer.stop()
    assert values == [b"kit"]


def test_kit_capabilities_explain_every_gap(kafka_broker: BrokerHandle) -> None:
    caps = kafka_broker.capabilities
    for name in CAPABILITIES:
        reason = caps.missing(name)
        assert caps.supports(name) is (reason is None)
        if reason is not None:
            assert reason  # a sentence naming the broker, used as the skip reason
    if kafka_broker.kind == "apache":
        assert caps.summary() == dict.fromkeys(CAPABILITIES)  # the reference broker lacks nothing
    if kafka_broker.kind == "embedded":
        assert not caps.supports("acls")
        assert not caps.supports("sasl")
        with pytest.raises(pytest.skip.Exception, match="CreatePartitions"):
            require_capability(kafka_broker, "create_partitions")


def test_kit_wait_until_sync_and_free_port() -> None:
    seen: list[int] = []

    def third_call() -> bool:
        seen.append(1)
        return len(seen) >= 3

    assert wait_until_sync(third_call, timeout=5, interval=0.001)
    assert len(seen) == 3
    with pytest.raises(TimeoutError, match="never"):
        wait_until_sync(lambda: False, timeout=0.02, message="never")
    assert 0 < free_port() < 65536


async def test_kit_apache_kafka_session_broker_has_sasl_users_per_principal(
    kafka_broker: BrokerHandle,
) -> None:
    """On the reference broker: every capability, and SCRAM users for the catalog principals."""
    if kafka_broker.apache is None:
        pytest.skip(f"the session broker is {kafka_broker.kind}, not a local Apache Kafka")
    from coffeebuddy.infra.kafka.config import check_connection

    assert kafka_broker.capabilities.summary() == dict.fromkeys(CAPABILITIES)
    for user in SESSION_SASL_USERS:
        settings = kafka_broker.apache.settings("SASL_SSL", user=user, mechanism="SCRAM-SHA-512")
        assert settings.acks == "all"
        assert settings.enable_idempotence
        await check_connection(settings, timeout=10)
