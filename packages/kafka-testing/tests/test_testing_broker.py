"""The session broker fixtures against the real broker: round trip, topics, capabilities."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.testing import BrokerHandle, TopicFactory, start_broker, wait_until
from coffeebuddy.infra.kafka.topics import REMINDER_STATE_CHANGELOG_TOPIC, TopicConfig


async def test_plaintext_round_trip_with_settings(
    kafka_settings: KafkaSettings, unique_topic: TopicFactory
) -> None:
    topic = unique_topic(partitions=2)
    producer = AIOKafkaProducer(**kafka_settings.producer_kwargs())
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic.name, b"hello", key=b"run-1")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic.name, **kafka_settings.consumer_kwargs(None))
    await consumer.start()
    try:
        seen: list[tuple[bytes | None, bytes | None]] = []

        async def got_it() -> bool:
            batch = await consumer.getmany(timeout_ms=200)
            seen.extend((r.key, r.value) for records in batch.values() for r in records)
            return bool(seen)

        await wait_until(got_it, timeout=15, message=f"record on {topic.name}")
    finally:
        await consumer.stop()
    assert seen == [(b"run-1", b"hello")]
    assert sent.topic == topic.name


def test_unique_topic_is_created_with_dlq(
    unique_topic: TopicFactory, kafka_broker: BrokerHandle
) -> None:
    topic = unique_topic(partitions=3, key_field="reminder_id", event_types={"a.b.v1"})
    assert isinstance(topic, TopicConfig)
    assert topic.name.startswith("test.test_unique_topic_is_created_with_dlq.")
    assert topic.partitions == 3
    assert topic.key_field == "reminder_id"
    assert topic.event_types == frozenset({"a.b.v1"})
    assert topic.dead_letter_topic == f"{topic.name}.dlq"
    dlq = unique_topic.dead_letter(topic)
    assert dlq.kind == "dead_letter"
    assert dlq.name == topic.dead_letter_topic
    other = unique_topic()
    assert other.name != topic.name
    assert len(other.event_types) > 0, "defaults to the catalog's event types"


def test_unique_topic_copies_a_base_topic(unique_topic: TopicFactory) -> None:
    topic = unique_topic(1, base=REMINDER_STATE_CHANGELOG_TOPIC)  # the catalog's compacted log
    assert topic.name != REMINDER_STATE_CHANGELOG_TOPIC.name
    assert topic.key_field == REMINDER_STATE_CHANGELOG_TOPIC.key_field
    assert topic.event_types == REMINDER_STATE_CHANGELOG_TOPIC.event_types
    assert topic.is_compacted
    assert topic.partitions == 1


def test_unique_topic_rejects_zero_partitions(unique_topic: TopicFactory) -> None:
    with pytest.raises(ValueError, match="partitions must be >= 1"):
        unique_topic(0)


def test_kafka_settings_are_fast_and_honest(
    kafka_settings: KafkaSettings, kafka_broker: BrokerHandle
) -> None:
    assert kafka_settings.session_timeout_ms == 6000
    assert kafka_settings.heartbeat_interval_ms == 500
    assert ",".join(kafka_settings.bootstrap_servers) == kafka_broker.bootstrap_servers
    supported = kafka_broker.capabilities.supports("idempotent_producer")
    assert kafka_settings.enable_idempotence is supported


def test_external_resolution_probes_the_given_cluster(kafka_broker: BrokerHandle) -> None:
    """KAFKA_BOOTSTRAP_SERVERS wins: the handle is "external", probed, and never stopped by us."""
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers, "KAFKA_CLIENT_ID": "mine"}
    external = start_broker(env)
    assert external.kind == "external"
    assert external.bootstrap_servers == kafka_broker.bootstrap_servers
    assert external.capabilities.label == f"external broker {kafka_broker.bootstrap_servers}"
    same = kafka_broker.capabilities.supports("idempotent_producer")
    assert external.capabilities.supports("idempotent_producer") is same
    settings = external.settings()
    assert settings.client_id == "mine", "the user's KAFKA_* variables are kept"
    assert settings.session_timeout_ms == 6000
    external.close()
    assert kafka_broker.embedded is None or kafka_broker.embedded.running


def test_forced_broker_kind_is_validated() -> None:
    with pytest.raises(ValueError, match="COFFEEBUDDY_KAFKA_BROKER='zookeeper' must be one of"):
        start_broker({"COFFEEBUDDY_KAFKA_BROKER": "zookeeper"})
    with pytest.raises(ValueError, match="needs KAFKA_BOOTSTRAP_SERVERS"):
        start_broker({}, kind="external")
