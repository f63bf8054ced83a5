"""Both CloudEvents content modes through the harness, dead letters keeping the mode, and the
OpenTelemetry CONSUMER span continuing the producer's trace around the handler."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.consumer import (
    KafkaConsumerHarness,
    NonRetryableError,
    RecordContext,
    RetryableError,
    RetryPolicy,
)
from coffeebuddy.infra.kafka.metrics import KafkaMetrics
from coffeebuddy.infra.kafka.models import (
    DLQ_HEADERS,
    DLQ_ORIGIN_OFFSET,
    DLQ_REASON,
    Event,
    content_mode,
    decode_record,
    encode_record,
)
from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.testing import TopicFactory, wait_until


async def test_harness_reads_both_modes_and_dead_letters_keep_mode_and_headers(
    kafka_settings: KafkaSettings,
    unique_topic: TopicFactory,
    group: str,
    metrics: KafkaMetrics,
    running: Any,
    kit: Any,
) -> None:
    topic = unique_topic(1)
    events = [kit.make_event("run-1", i) for i in range(6)]
    encoded = [encode_record(e, "binary" if i % 2 else "structured") for i, e in enumerate(events)]
    # a binary record without ce_id: malformed, straight to the DLQ
    bad_value, bad_headers = encode_record(kit.make_event("run-1", 99), "binary")
    bad_headers = [(n, v) for n, v in bad_headers if n != "ce_id"]
    records = [*encoded, (bad_value, bad_headers)]
    for value, headers in records:
        await kit.produce(
            kafka_settings,
            topic.name,
            [value],
            partition=0,
            keys=[b"run-1"],
            headers=[*headers, ("x-tenant", b"acme")],
        )
    seen: list[tuple[Event, str]] = []
    reject = events[3].id  # a binary record its handler refuses: DLQ, binary mode kept

    async def handler(event: Event, ctx: RecordContext) -> None:
        seen.append((event, content_mode(ctx.headers)))
        if event.id == reject:
            raise NonRetryableError("refused")

    harness = KafkaConsumerHarness(kafka_settings, [topic], group, handler, metrics=metrics)
    async with running(harness):
        dead = await kit.read_topic(kafka_settings, topic.dead_letter_topic, 2, timeout=20)
        await wait_until(lambda: len(seen) == 6, timeout=10, message="all good records handled")
    assert [e for e, _ in seen] == events
    assert [m for _, m in seen] == ["structured", "binary"] * 3
    by_offset = {int(dict(r.headers)[DLQ_ORIGIN_OFFSET]): r for r in dead}
    assert sorted(by_offset) == [3, 6]
    for offset, reason in ((3, b"non_retryable"), (6, b"decode_error")):
        record = by_offset[offset]
        value, headers = records[offset]
        assert dict(record.headers)[DLQ_REASON] == reason
        original = [(n, v) for n, v in record.headers if n not in DLQ_HEADERS]
        assert original == [*headers, ("x-tenant", b"acme")]
        assert record.value == value
        assert content_mode(record.headers) == "binary"
    # the refused one still decodes from the dead letter as it was sent
    assert decode_record(by_offset[3].value, by_offset[3].headers) == events[3]


async def test_consumer_span_continues_the_producer_trace_around_the_handler(
    kafka_settings: KafkaSettings,
    unique_topic: TopicFactory,
    group: str,
    metrics: KafkaMetrics,
    running: Any,
    kit: Any,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    topic = unique_topic(1)
    event = kit.make_event("run-2", 1)
    async with KafkaEventProducer(kafka_settings, metrics=metrics, tracer_provider=provider) as p:
        md = await p.publish(topic, event, content_mode="binary")
    await kit.produce(kafka_settings, topic.name, [b"{not json"], partition=0, keys=[b"run-2"])
    current: list[Any] = []

    async def handler(event: Event, ctx: RecordContext) -> None:
        current.append(trace.get_current_span().get_span_context())
        if ctx.attempt == 1:
            raise RetryableError("once")

    harness = KafkaConsumerHarness(
        kafka_settings,
        [topic],
        group,
        handler,
        metrics=metrics,
        tracer_provider=provider,
        retry_policy=RetryPolicy(initial_backoff=0.05, max_backoff=0.1, max_attempts=3),
    )
    async with running(harness):
        await kit.read_topic(kafka_settings, topic.dead_letter_topic, 1, timeout=20)
        await wait_until(lambda: len(current) == 2, timeout=10, message="handled after a retry")

    def finished() -> list[Any]:
        return [s for s in exporter.get_finished_spans() if s.name == f"process {topic.name}"]

    await wait_until(lambda: len(finished()) == 3, timeout=5, message="three process spans")
    [send] = [s for s in exporter.get_finished_spans() if s.kind is trace.SpanKind.PRODUCER]
    process = [s for s in finished() if s.attributes.get("messaging.message.id") == event.id]
    assert [s.attributes["coffeebuddy.attempt"] for s in process] == [1, 2]
    for span, ctx in zip(process, current, strict=True):
        assert span.kind is trace.SpanKind.CONSUMER
        assert span.parent is not None
        assert span.parent.span_id == send.context.span_id
        assert span.context.trace_id == send.context.trace_id
        assert ctx.span_id == span.context.span_id  # the handler runs inside its span
        assert {
            "messaging.system": "kafka",
            "messaging.destination.name": topic.name,
            "messaging.destination.partition.id": str(md.partition),
            "messaging.kafka.offset": md.offset,
            "messaging.consumer.group.name": group,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.kafka.message.key": "run-2",
        }.items() <= dict(span.attributes or {}).items()
    assert process[0].status.status_code is trace.StatusCode.ERROR
    assert process[0].attributes["error.type"] == "RetryableError"
    assert process[1].status.status_code is trace.StatusCode.UNSET
    [poison] = [s for s in finished() if "messaging.message.id" not in (s.attributes or {})]
    assert poison.status.status_code is trace.StatusCode.ERROR
    assert poison.attributes["error.type"] == "EventDecodeError"
    assert poison.attributes["coffeebuddy.decode.reason"] == "invalid_json"


async def test_untraced_harness_runs_handlers_outside_any_span(
    kafka_settings: KafkaSettings,
    unique_topic: TopicFactory,
    group: str,
    metrics: KafkaMetrics,
    running: Any,
    kit: Any,
) -> None:
    topic = unique_topic(1)
    await kit.produce(kafka_settings, topic.name, kit.events_bytes(1), partition=0)
    spans: list[Any] = []

    async def handler(event: Event, ctx: RecordContext) -> None:
        spans.append(trace.get_current_span())

    harness = KafkaConsumerHarness(kafka_settings, [topic], group, handler, metrics=metrics)
    async with running(harness):
        await wait_until(lambda: spans, timeout=10, message="handled")
    assert spans == [trace.INVALID_SPAN]


def test_without_opentelemetry_the_harness_needs_none_of_it() -> None:
    """A good and a poison record through the harness (fake consumer and producer of
    conftest.py) with opentelemetry unimportable: neither path reaches for tracing."""
    import subprocess
    import sys
    from pathlib import Path

    conftest_path = str(Path(__file__).with_name("conftest.py"))
    script = f"""
import asyncio, importlib.util, sys
sys.modules["opentelemetry"] = None  # as if opentelemetry-api were not installed
spec = importlib.util.spec_from_file_location("consumer_conftest", {conftest_path!r})
conftest = sys.modules["consumer_conftest"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(conftest)

handled = []

async def handler(event, ctx):
    handled.append(ctx.offset)

async def main():
    rig = conftest.Fakes.rig(handler)
    rig.consumer.add(b"not an event")
    rig.consumer.add(conftest.Fakes.event(1))
    task = asyncio.ensure_future(rig.harness.run())
    await conftest.wait_until(lambda: rig.committed() == 2, timeout=10)
    await rig.harness.stop()
    await task
    assert handled == [1] and len(rig.dead_letters()) == 1, (handled, rig.dead_letters())

asyncio.run(main())
assert "coffeebuddy.infra.kafka.consumer._tracing" not in sys.modules
print("ok")
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
