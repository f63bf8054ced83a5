"""The aiokafka compat module: the supported range, and every private attribute it relies on.

An aiokafka upgrade that renames one of them fails here, naming it, instead of silently turning a
workaround into a no-op in production. ``abandon_consumer``/``abandon_producer`` are exercised by
the consumer and producer tests that stop a client whose broker is gone.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import aiokafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import ApiVersionRequest

from coffeebuddy.infra.kafka.config import (
    EMBEDDED_CLUSTER_ID,
    KafkaSettings,
    admin_send,
    cluster_id,
    leave_group_from_generation_zero,
    topic_partitions,
)
from coffeebuddy.infra.kafka.config._compat import AIOKAFKA_RANGE
from coffeebuddy.infra.kafka.testing import BrokerHandle, TopicFactory


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3] if part.isdigit())


def test_installed_aiokafka_is_in_the_supported_range() -> None:
    low, high = (spec.strip().lstrip("<>=") for spec in AIOKAFKA_RANGE.split(","))
    assert f">={low},<{high}" == AIOKAFKA_RANGE
    installed = _version(aiokafka.__version__)
    assert _version(low) <= installed < _version(high), (
        f"aiokafka {aiokafka.__version__} is outside {AIOKAFKA_RANGE}: re-check the compat module"
    )


def test_leave_group_fix_applies_only_to_a_joined_generation_zero() -> None:
    zero = SimpleNamespace(_coordinator=SimpleNamespace(generation=0, member_id="m-1"))
    assert leave_group_from_generation_zero(zero) is True
    assert zero._coordinator.generation == 1
    for generation, member in ((1, "m-1"), (-1, "m-1"), (0, "")):
        other = SimpleNamespace(
            _coordinator=SimpleNamespace(generation=generation, member_id=member)
        )
        assert leave_group_from_generation_zero(other) is False
        assert other._coordinator.generation == generation
    assert leave_group_from_generation_zero(SimpleNamespace()) is False


async def test_private_attributes_exist_on_real_clients(
    kafka_broker: BrokerHandle, kafka_settings: KafkaSettings, unique_topic: TopicFactory
) -> None:
    topic = unique_topic(partitions=2)
    consumer = AIOKafkaConsumer(topic.name, **kafka_settings.consumer_kwargs("compat-check"))
    producer = AIOKafkaProducer(**kafka_settings.producer_kwargs())
    admin = AIOKafkaAdminClient(**kafka_settings.admin_kwargs())
    await consumer.start()
    await producer.start()
    await admin.start()
    try:
        coordinator: Any = consumer._coordinator
        assert hasattr(coordinator, "generation")
        assert hasattr(coordinator, "member_id")
        assert hasattr(consumer._client, "close")
        assert hasattr(producer._sender, "sender_task")
        assert hasattr(producer.client, "close")
        assert await topic_partitions(consumer, topic.name) == {0, 1}
        assert await topic_partitions(consumer, "no.such.topic") == set()
        versions = await admin_send(admin, ApiVersionRequest())
        assert versions.error_code == 0
        found = await cluster_id(consumer)
        assert found is not None
        assert (found == EMBEDDED_CLUSTER_ID) is (kafka_broker.kind == "embedded")
    finally:
        await admin.close()
        await producer.stop()
        await consumer.stop()
