"""Content modes per topic / per call and OpenTelemetry PRODUCER spans, on the real broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.metrics import KafkaMetrics
from coffeebuddy.infra.kafka.models import (
    CONTENT_TYPE,
    ReminderScheduled,
    ReminderScheduledData,
    content_mode,
    decode_record,
)
from coffeebuddy.infra.kafka.producer import KafkaEventProducer, resolve_tracer
from coffeebuddy.infra.kafka.testing import TopicFactory
from coffeebuddy.infra.kafka.topics import REMINDER_EVENT_TYPES, TopicConfig

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def reminder(run_id: str, n: int = 0) -> ReminderScheduled:
    return ReminderScheduled.create(
        data=ReminderScheduledData(
            run_id=run_id,
            reminder_id=f"{run_id}:runner:{n}",
            kind="runner",
            team_id="T0001",
            channel_id="C0001",
            recipient_user_id="U0001",
            due_at=datetime.now(UTC) + timedelta(minutes=5),
            place="Cafe Nero",
        ),
        extensions={"tenant": "acme"},
    )


async def read_all(settings: KafkaSettings, topic: str, count: int) -> list[Any]:
    consumer = AIOKafkaConsumer(topic, **settings.consumer_kwargs(None))
    await consumer.start()
    try:
        out: list[Any] = []
        for _ in range(100):
            for records in (await consumer.getmany(timeout_ms=200)).values():
                out.extend(records)
            if len(out) >= count:
                break
        return sorted(out, key=lambda r: (r.partition, r.offset))
    finally:
        await consumer.stop()


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


@pytest.fixture
def topic(unique_topic: TopicFactory) -> TopicConfig:
    return unique_topic(2, event_types=REMINDER_EVENT_TYPES)


def _traceparent(span: ReadableSpan) -> bytes:
    ctx = span.get_span_context()
    assert ctx is not None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}".encode()


async def test_binary_mode_per_topic_and_per_call(
    kafka_settings: KafkaSettings, topic: TopicConfig
) -> None:
    binary_topic = topic.model_copy(update={"content_mode": "binary"})
    first, second, third = reminder("run-1", 1), reminder("run-1", 2), reminder("run-1", 3)
    async with KafkaEventProducer(kafka_settings, metrics=KafkaMetrics(CollectorRegistry())) as p:
        await p.publish(binary_topic, first, headers={"x-origin": "test"})
        await p.publish(binary_topic, second, content_mode="structured")
        await p.publish_many(topic, [third], content_mode="binary")
    records = await read_all(kafka_settings, topic.name, 3)
    modes = [content_mode(r.headers) for r in records]
    assert modes == ["binary", "structured", "binary"]
    binary = dict(records[0].headers)
    assert binary["content-type"] == b"application/json"
    assert binary["ce_id"] == first.id.encode()
    assert binary["ce_tenant"] == b"acme"
    assert binary["x-origin"] == b"test"
    assert dict(records[1].headers)["content-type"] == CONTENT_TYPE.encode()
    assert [decode_record(r.value, r.headers) for r in records] == [first, second, third]
    assert {r.key for r in records} == {b"run-1"}


async def test_traced_publish_makes_a_producer_span_whose_context_the_record_carries(
    kafka_settings: KafkaSettings,
    topic: TopicConfig,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    event = reminder("run-2")
    producer = KafkaEventProducer(
        kafka_settings, metrics=KafkaMetrics(CollectorRegistry()), tracer_provider=provider
    )
    assert producer.tracing
    async with producer:
        md = await producer.publish(
            topic, event, traceparent=PARENT, headers=[("traceparent", b"00-stale")]
        )
    [span] = exporter.get_finished_spans()
    assert span.name == f"send {topic.name}"
    assert span.kind is trace.SpanKind.PRODUCER
    assert dict(span.attributes or {}) == {
        "messaging.system": "kafka",
        "messaging.destination.name": topic.name,
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.message.id": event.id,
        "messaging.kafka.message.key": "run-2",
        "messaging.destination.partition.id": str(md.partition),
        "messaging.kafka.offset": md.offset,
        "cloudevents.event_type": event.type,
    }
    # the caller's traceparent is the parent; the record carries the span's own context
    assert span.parent is not None
    assert f"{span.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert f"{span.context.trace_id:032x}" == "4bf92f3577b34da6a3ce929d0e0e4736"
    [record] = await read_all(kafka_settings, topic.name, 1)
    traceparents = [v for n, v in record.headers if n == "traceparent"]
    assert traceparents == [_traceparent(span)]


async def test_traced_publish_many_gives_each_record_its_own_span(
    kafka_settings: KafkaSettings,
    topic: TopicConfig,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    events = [reminder(f"run-{i % 2}", i) for i in range(6)]
    async with KafkaEventProducer(
        kafka_settings, metrics=KafkaMetrics(CollectorRegistry()), tracer_provider=provider
    ) as producer:
        results = await producer.publish_many(topic, events)
    spans = {s.attributes["messaging.message.id"]: s for s in exporter.get_finished_spans()}
    assert set(spans) == {e.id for e in events}
    for event, md in zip(events, results, strict=True):
        span = spans[event.id]
        assert span.attributes["messaging.kafka.offset"] == md.offset
        assert span.attributes["messaging.destination.partition.id"] == str(md.partition)
    records = await read_all(kafka_settings, topic.name, 6)
    by_id = {decode_record(r.value, r.headers).id: dict(r.headers) for r in records}
    for event_id, headers in by_id.items():
        assert headers["traceparent"] == _traceparent(spans[event_id])
    assert len({h["traceparent"] for h in by_id.values()}) == 6


async def test_untraced_producer_adds_no_trace_headers(
    kafka_settings: KafkaSettings, topic: TopicConfig
) -> None:
    producer = KafkaEventProducer(kafka_settings, metrics=KafkaMetrics(CollectorRegistry()))
    assert not producer.tracing  # no SDK provider installed globally: off, no per-record work
    async with producer:
        await producer.publish(topic, reminder("run-3"))
    [record] = await read_all(kafka_settings, topic.name, 1)
    assert [n for n, _ in record.headers] == ["content-type"]


def test_tracing_rule(provider: TracerProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    name = "coffeebuddy.test"
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    assert resolve_tracer(None, None, name) is None
    assert resolve_tracer(False, provider, name) is None
    assert resolve_tracer(None, provider, name) is not None
    assert resolve_tracer(True, None, name) is not None  # forced: the global (proxy) provider
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert resolve_tracer(None, provider, name) is None


def test_without_opentelemetry_installed_tracing_is_off_and_true_says_what_to_install() -> None:
    import subprocess
    import sys

    script = """
import sys
sys.modules["opentelemetry"] = None  # as if opentelemetry-api were not installed
from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.producer import KafkaEventProducer, resolve_tracer
from coffeebuddy.infra.kafka.producer._tracing import OTEL_AVAILABLE
assert OTEL_AVAILABLE is False
settings = KafkaSettings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"})
assert KafkaEventProducer(settings).tracing is False
assert resolve_tracer(None, None, "x") is None
try:
    KafkaEventProducer(settings, tracing=True)
except RuntimeError as exc:
    print(exc)
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert "[otel]" in out.stdout
    assert "opentelemetry-api" in out.stdout


async def test_partitionkey_must_equal_the_record_key(
    kafka_settings: KafkaSettings, topic: TopicConfig
) -> None:
    matching = reminder("run-4").model_copy(update={"partitionkey": "run-4"})
    other = reminder("run-4").model_copy(update={"partitionkey": "run-5"})
    async with KafkaEventProducer(kafka_settings, metrics=KafkaMetrics(CollectorRegistry())) as p:
        await p.publish(topic, matching, content_mode="binary")
        with pytest.raises(ValueError, match="differs from the record key"):
            await p.publish(topic, other)
        with pytest.raises(ValueError, match="differs from the record key"):
            await p.publish_many(topic, [matching, other])
    [record] = await read_all(kafka_settings, topic.name, 1)
    assert record.key == b"run-4"
    assert dict(record.headers)["ce_partitionkey"] == b"run-4"
