"""Kit: producer -> consumer harness round trip with a poison record (public API only)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer
from prometheus_client import CollectorRegistry

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.consumer import KafkaConsumerHarness, RecordContext
from coffeebuddy.infra.kafka.metrics import KafkaMetrics
from coffeebuddy.infra.kafka.models import (
    DLQ_ORIGIN_OFFSET,
    DLQ_REASON,
    Event,
    ReminderScheduled,
    ReminderScheduledData,
)
from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.testing import TopicFactory, wait_until
from coffeebuddy.infra.kafka.topics import REMINDER_EVENT_TYPES


def reminder(n: int) -> ReminderScheduled:
    return ReminderScheduled.create(
        data=ReminderScheduledData(
            run_id=f"run-{n}",
            reminder_id=f"run-{n}:runner",
            kind="runner",
            team_id="T0001",
            channel_id="C0001",
            recipient_user_id="U0001",
            due_at=datetime.now(UTC) + timedelta(minutes=5),
            place="Cafe",
        )
    )


async def test_kit_consumer_handles_events_and_dead_letters_poison(
    kafka_settings: KafkaSettings, unique_topic: TopicFactory
) -> None:
    topic = unique_topic(1, event_types=REMINDER_EVENT_TYPES)
    dlq = unique_topic.dead_letter(topic)
    metrics = KafkaMetrics(CollectorRegistry())
    handled: list[str] = []
    dead: list[dict[str, bytes]] = []

    async def handler(event: Event, ctx: RecordContext) -> None:
        handled.append(event.id)

    async with KafkaEventProducer(kafka_settings, metrics=metrics) as producer:
        events = [reminder(i) for i in range(5)]
        await producer.publish_many(topic, events[:2])
        await producer.send_raw(topic, b"{broken", key=b"run-x")
        await producer.publish_many(topic, events[2:])
        harness = KafkaConsumerHarness(
            kafka_settings, [topic], "kit-consumer", handler, producer=producer, metrics=metrics
        )
        task = asyncio.ensure_future(harness.run())
        try:
            await wait_until(lambda: len(handled) == 5, timeout=20, message="5 events handled")
            await wait_until(lambda: harness.health().ready, timeout=5, message="ready")
        finally:
            await harness.stop()
            await task
        assert producer.started  # a producer passed in stays the caller's

    reader = AIOKafkaConsumer(dlq.name, **kafka_settings.consumer_kwargs(None))
    await reader.start()
    try:

        async def got_one() -> bool:
            for records in (await reader.getmany(timeout_ms=100)).values():
                dead.extend(dict(r.headers) for r in records)
            return bool(dead)

        await wait_until(got_one, timeout=10, message="dead letter")
    finally:
        await reader.stop()
    assert handled == [e.id for e in events]
    assert dead[0][DLQ_REASON] == b"decode_error"
    assert dead[0][DLQ_ORIGIN_OFFSET] == b"2"


async def test_kit_consumer_binary_mode_and_process_span(
    kafka_settings: KafkaSettings, unique_topic: TopicFactory
) -> None:
    """kit consumer reads binary-mode records and continues the trace around the handler"""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    topic = unique_topic(1, event_types=REMINDER_EVENT_TYPES)
    metrics = KafkaMetrics(CollectorRegistry())
    seen: list[tuple[str, int]] = []

    async def handler(event: Event, ctx: RecordContext) -> None:
        seen.append((event.id, trace.get_current_span().get_span_context().trace_id))

    event = reminder(7)
    async with KafkaEventProducer(kafka_settings, metrics=metrics, tracer_provider=provider) as p:
        await p.publish(topic, event, content_mode="binary")
        harness = KafkaConsumerHarness(
            kafka_settings,
            [topic],
            "kit-consumer-trace",
            handler,
            producer=p,
            metrics=metrics,
            tracer_provider=provider,
        )
        task = asyncio.ensure_future(harness.run())
        try:
            await wait_until(lambda: seen, timeout=20, message="binary record handled")
        finally:
            await harness.stop()
            await task
    spans = {s.kind: s for s in exporter.get_finished_spans()}
    send, process = spans[trace.SpanKind.PRODUCER], spans[trace.SpanKind.CONSUMER]
    assert seen == [(event.id, send.context.trace_id)]
    assert process.parent is not None
    assert process.parent.span_id == send.context.span_id
    assert process.attributes["messaging.consumer.group.name"] == "kit-consumer-trace"
