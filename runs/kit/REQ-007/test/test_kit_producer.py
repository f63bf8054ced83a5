"""Kit: KafkaEventProducer against the session broker (public API only)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.metrics import KafkaMetrics
from coffeebuddy.infra.kafka.models import (
    RunCreated,
    RunCreatedData,
)
from coffeebuddy.infra.kafka.producer import EventNotAllowedError, KafkaEventProducer
from coffeebuddy.infra.kafka.testing import TopicFactory
from coffeebuddy.infra.kafka.topics import REMINDER_EVENT_TYPES, RUN_EVENT_TYPES


def run_created(run_id: str) -> RunCreated:
    return RunCreated.create(
        data=RunCreatedData(
            run_id=run_id,
            team_id="T0001",
            channel_id="C0001",
            organizer_user_id="U0001",
            place="Cafe",
            closes_at=datetime.now(UTC) + timedelta(minutes=10),
        )
    )


async def test_kit_producer_publishes_and_guards_topics(
    kafka_settings: KafkaSettings, unique_topic: TopicFactory
) -> None:
    runs = unique_topic(2, event_types=RUN_EVENT_TYPES)
    reminders = unique_topic(1, event_types=REMINDER_EVENT_TYPES)
    registry = CollectorRegistry()
    async with KafkaEventProducer(kafka_settings, metrics=KafkaMetrics(registry)) as producer:
        first = await producer.publish(runs, run_created("run-a"))
        again = await producer.publish(runs, run_created("run-a"))
        assert (first.topic, first.partition) == (again.topic, again.partition)
        assert again.offset == first.offset + 1
        batch = await producer.publish_many(runs, [run_created(f"run-{i}") for i in range(10)])
        assert len(batch) == 10
        with pytest.raises(EventNotAllowedError):
            await producer.publish(reminders, run_created("run-a"))
        with pytest.raises(TypeError):
            await producer.publish(runs.name, run_created("run-a"))  # type: ignore[arg-type]
    assert (
        registry.get_sample_value(
            "coffeebuddy_kafka_messages_produced_total", {"topic": runs.name, "outcome": "success"}
        )
        == 12
    )


async def test_kit_producer_binary_mode_and_tracing(
    kafka_settings: KafkaSettings, unique_topic: TopicFactory
) -> None:
    """kit producer writes binary mode when asked and traces with a given provider"""
    from aiokafka import AIOKafkaConsumer
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from coffeebuddy.infra.kafka.models import content_mode, decode_record

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    topic = unique_topic(1, event_types=RUN_EVENT_TYPES).model_copy(
        update={"content_mode": "binary"}
    )
    event = run_created("run-kit-bin")
    metrics = KafkaMetrics(CollectorRegistry())
    async with KafkaEventProducer(kafka_settings, metrics=metrics, tracer_provider=provider) as p:
        assert p.tracing
        md = await p.publish(topic, event)
    [span] = exporter.get_finished_spans()
    assert span.name == f"send {topic.name}"
    assert span.attributes["messaging.message.id"] == event.id
    assert span.attributes["messaging.kafka.offset"] == md.offset
    reader = AIOKafkaConsumer(topic.name, **kafka_settings.consumer_kwargs(None))
    await reader.start()
    try:
        records: list[Any] = []
        for _ in range(50):
            for batch in (await reader.getmany(timeout_ms=200)).values():
                records.extend(batch)
            if records:
                break
    finally:
        await reader.stop()
    [record] = records
    assert content_mode(record.headers) == "binary"
    assert decode_record(record.value, record.headers) == event
    traceparent = dict(record.headers)["traceparent"].decode()
    assert traceparent.split("-")[2] == f"{span.context.span_id:016x}"
