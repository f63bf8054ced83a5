"""What the content-mode dispatch and OpenTelemetry tracing cost (group "tracing").

Same run, same topics, rounds interleaved, medians of rounds:

- decode: `decode_record(value, headers)` with our two usual headers (content-type,
  traceparent) vs `decode_event(value)`, in process: the per-record price of choosing the
  content mode. And a binary-mode record vs a structured one.
- producer: `publish_many` with tracing off (opentelemetry-api installed, no SDK provider)
  vs raw aiokafka; with tracing on (SDK provider, batch processor, a discarding exporter) vs
  tracing off.
- consumer: the harness (no-op handler) over records that carry content-type and traceparent,
  tracing off vs the same harness with its pre-binding decode path swapped back in
  (`decode_event`, headers ignored: the "no measurable change" check) and vs a raw `getmany` +
  `decode_event` loop; tracing on vs off.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from _common import BenchContext, BenchRow, input_frozen
from bench_kafka import _Clock, _consume_raw, _create_topic, _events, _produce_raw
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from prometheus_client import CollectorRegistry

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.consumer import KafkaConsumerHarness, RecordContext
from coffeebuddy.infra.kafka.metrics import KafkaMetrics
from coffeebuddy.infra.kafka.models import (
    CONTENT_TYPE,
    Event,
    ReminderScheduled,
    decode_event,
    decode_record,
    encode_event,
    encode_record,
)
from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.topics import TopicConfig

GROUP = "tracing"
TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class _Discard(SpanExporter):
    """Exporter that drops spans: measures span work, not a collector's network."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def _provider() -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_Discard(), max_queue_size=65536))
    return provider


def _per_second(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return calls / (time.perf_counter() - start)


async def _produce(
    settings: KafkaSettings,
    topic: TopicConfig,
    events: list[ReminderScheduled],
    provider: TracerProvider | None,
) -> float:
    producer = KafkaEventProducer(
        settings,
        metrics=KafkaMetrics(CollectorRegistry()),
        tracing=provider is not None,
        tracer_provider=provider,
    )
    await producer.start()
    try:
        await producer.publish(topic, events[0])  # metadata warm-up, not timed
        start = time.perf_counter()
        await producer.publish_many(topic, events)
        return len(events) / (time.perf_counter() - start)
    finally:
        await producer.close()


def _decode_before_the_binding(value: bytes | None, headers: object) -> Event:
    """The harness's per-record decode before CloudEvents binary mode: headers ignored."""
    return decode_event(value if value is not None else b"")


async def _consume(
    settings: KafkaSettings,
    topic: TopicConfig,
    count: int,
    provider: TracerProvider | None,
    *,
    before: bool = False,
) -> float:
    """Harness msg/s; `before=True` runs it with the decode path from before the binding (the
    harness's `decoder=`)."""
    clock = _Clock(count)

    async def handler(event: Event, ctx: RecordContext) -> None:
        clock.tick()

    harness = KafkaConsumerHarness(
        settings,
        [topic],
        f"bench-trace-{uuid.uuid4().hex[:6]}",
        handler,
        metrics=KafkaMetrics(CollectorRegistry()),
        max_in_flight=20000,
        tracing=provider is not None,
        tracer_provider=provider,
        decoder=_decode_before_the_binding if before else decode_record,
    )
    task = asyncio.ensure_future(harness.run())
    try:
        await asyncio.wait_for(clock.done.wait(), timeout=180)
    finally:
        await harness.stop()
        await task
    return clock.rate()


async def _medians(rounds: int, *measures: Callable[[], Awaitable[float]]) -> list[list[float]]:
    """Run the measures `rounds` times, rotating their order every round (each variant takes
    each position: later runs in a round were seen to be slower); the samples of each."""
    results: list[list[float]] = [[] for _ in measures]
    n = len(measures)
    for r in range(rounds):
        for i in range(n):
            k = (i + r) % n
            results[k].append(await measures[k]())
    return results


def _row(
    name: str,
    value: list[float],
    unit: str,
    baseline: str,
    base: list[float],
    target: float | None,
) -> BenchRow:
    """A row of medians; `target=None`: informational (tracing on costs what the SDK costs)."""
    return BenchRow.of(
        GROUP,
        name,
        value,
        unit,
        baseline=baseline,
        baseline_samples=base,
        target=f">= {target:g}x" if target is not None else None,
        meets=(lambda v, b: v >= target * (b or 0)) if target is not None else None,
    )


async def run(ctx: BenchContext) -> list[BenchRow]:
    settings = ctx.settings
    count = 5_000 if ctx.quick else 30_000
    rounds = 1 if ctx.quick else 8  # a multiple of the 4 consumer variants: each in each place
    decode_calls = 5_000 if ctx.quick else 10_000
    events = _events(count)

    sample = events[0]
    structured = encode_event(sample)
    headers = [("content-type", CONTENT_TYPE.encode()), ("traceparent", TRACEPARENT)]
    bin_value, bin_headers = encode_record(sample, "binary")
    plain, dispatched, binary = [], [], []
    for _ in range(1 if ctx.quick else 21):  # short rounds, interleaved: drift hits all alike
        plain.append(_per_second(lambda: decode_event(structured), decode_calls))
        dispatched.append(_per_second(lambda: decode_record(structured, headers), decode_calls))
        binary.append(_per_second(lambda: decode_record(bin_value, bin_headers), decode_calls))
    decode_plain, decode_dispatch, decode_binary = plain, dispatched, binary

    provider = _provider()
    topic = await _create_topic(settings)
    with input_frozen():  # the bench's events sit out GC passes, for every variant alike
        raw, off, on = await _medians(
            rounds,
            lambda: _produce_raw(settings, topic, events),
            lambda: _produce(settings, topic, events, None),
            lambda: _produce(settings, topic, events, provider),
        )

    consume_topic = await _create_topic(settings)
    async with KafkaEventProducer(
        settings, metrics=KafkaMetrics(CollectorRegistry()), tracer_provider=provider
    ) as seed:  # records as our producers write them: content-type + traceparent
        await seed.publish_many(consume_topic, _events(count))
    with input_frozen():
        raw_consume, harness_before, harness_off, harness_on = await _medians(
            rounds,
            lambda: _consume_raw(settings, consume_topic, count),
            lambda: _consume(settings, consume_topic, count, None, before=True),
            lambda: _consume(settings, consume_topic, count, None),
            lambda: _consume(settings, consume_topic, count, provider),
        )
    provider.shutdown()
    rows: list[Any] = [
        _row(
            "decode_record (structured, 2 headers)",
            decode_dispatch,
            "ev/s",
            "decode_event",
            decode_plain,
            0.9,
        ),
        _row(
            "decode_record (binary mode)",
            decode_binary,
            "ev/s",
            "decode_record structured",
            decode_dispatch,
            None,
        ),
        _row("producer publish_many, tracing off", off, "msg/s", "raw aiokafka", raw, 0.95),
        _row("producer publish_many, tracing on", on, "msg/s", "tracing off", off, None),
        _row(
            "consumer harness, tracing off",
            harness_off,
            "msg/s",
            "harness, old decode path",
            harness_before,
            0.95,
        ),
        _row(
            "consumer harness, tracing off",
            harness_off,
            "msg/s",
            "raw getmany+decode",
            raw_consume,
            0.7,
        ),
        _row("consumer harness, tracing on", harness_on, "msg/s", "tracing off", harness_off, None),
    ]
    return rows


__all__ = ["run"]
