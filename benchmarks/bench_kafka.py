"""Producer and consumer harness throughput against same-run baselines (group "kafka").

All numbers come from one run on the embedded broker with ~300-byte `ReminderScheduled` events:

- producer: `KafkaEventProducer.publish_many` (validation, encode, key, headers, metrics) vs raw
  `AIOKafkaProducer` with the same settings doing the same encode + send-all-then-gather. The
  input events are kept out of GC passes meanwhile (`input_frozen`) for both sides, and so is
  everything built before the consumer rounds.
- consumer: `KafkaConsumerHarness` (decode, no-op handler, offset tracking, commits,
  metrics) vs a raw aiokafka `getmany` loop doing the same pydantic decode and periodic
  commits, and vs FastStream 0.7.8's aiokafka subscriber decoding the same model.

Consumer rates are measured from the first handled record to the last, so the group join does
not count. Each row is the median of several rounds, interleaved with its baseline's rounds so
drift on a noisy machine hits both alike. The same code runs on either broker (`--broker`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from _common import BenchContext, BenchRow, input_frozen
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import CollectorRegistry

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.consumer import KafkaConsumerHarness, RecordContext
from coffeebuddy.infra.kafka.metrics import KafkaMetrics
from coffeebuddy.infra.kafka.models import (
    CONTENT_TYPE,
    Event,
    ReminderScheduled,
    ReminderScheduledData,
    decode_event,
    encode_event,
)
from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.topics import REMINDER_EVENT_TYPES, TopicConfig

GROUP = "kafka"
PARTITIONS = 4


def _events(count: int) -> list[ReminderScheduled]:
    due = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
    return [
        ReminderScheduled.create(
            data=ReminderScheduledData(
                reminder_id=f"run-{i % 97:04d}:runner",
                kind="runner",
                run_id=f"run-{i % 97:04d}",
                team_id="T024BE7LD",
                channel_id="C0123ABCD",
                recipient_user_id="U0456EFGH",
                due_at=due,
                expires_at=due + timedelta(minutes=15),
                place="Blue Bottle",
            ),
            time=due - timedelta(minutes=20),
        )
        for i in range(count)
    ]


async def _create_topic(settings: KafkaSettings, partitions: int = PARTITIONS) -> TopicConfig:
    name = f"bench.kafka.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**settings.admin_kwargs())
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, partitions, 1), NewTopic(name + ".dlq", 1, 1)], timeout_ms=10_000
        )
    finally:
        await admin.close()
    return TopicConfig(
        name=name,
        partitions=partitions,
        replication_factor=1,
        key_field="run_id",
        event_types=REMINDER_EVENT_TYPES,
        dead_letter_topic=name + ".dlq",
    )


# ---------------------------------------------------------------------------- producer
async def _produce_wrapper(
    settings: KafkaSettings, topic: TopicConfig, events: list[ReminderScheduled]
) -> float:
    producer = KafkaEventProducer(settings, metrics=KafkaMetrics(CollectorRegistry()))
    await producer.start()
    try:
        await producer.publish(topic, events[0])  # metadata warm-up, not timed
        start = time.perf_counter()
        await producer.publish_many(topic, events)
        return len(events) / (time.perf_counter() - start)
    finally:
        await producer.close()


async def _produce_raw(
    settings: KafkaSettings,
    topic: TopicConfig,
    events: list[ReminderScheduled],
    *,
    content_type: bool = True,
) -> float:
    producer = AIOKafkaProducer(**settings.producer_kwargs())
    await producer.start()
    headers = [("content-type", CONTENT_TYPE.encode())] if content_type else None
    try:
        await producer.send_and_wait(topic.name, encode_event(events[0]), key=b"warm-up")
        start = time.perf_counter()
        futures = [
            await producer.send(
                topic.name,
                encode_event(event),
                key=str(event.data.run_id).encode(),
                headers=headers,
            )
            for event in events
        ]
        await asyncio.gather(*futures)
        return len(events) / (time.perf_counter() - start)
    finally:
        await producer.stop()


# ---------------------------------------------------------------------------- consumer
class _Clock:
    """First-to-last handled record timing, shared by every consumer variant."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.done = asyncio.Event()

    def tick(self, n: int = 1) -> None:
        if self.count == 0:
            self.first = time.perf_counter()
        self.count += n
        if self.count >= self.target and not self.done.is_set():
            self.last = time.perf_counter()
            self.done.set()

    def rate(self) -> float:
        # the first tick's records arrived "at" first; count the rest over the elapsed time
        return self.count / max(self.last - self.first, 1e-9)


async def _consume_harness(settings: KafkaSettings, topic: TopicConfig, count: int) -> float:
    clock = _Clock(count)

    async def handler(event: Event, ctx: RecordContext) -> None:
        clock.tick()

    harness = KafkaConsumerHarness(
        settings,
        [topic],
        f"bench-harness-{uuid.uuid4().hex[:6]}",
        handler,
        metrics=KafkaMetrics(CollectorRegistry()),
        max_in_flight=20000,
    )
    task = asyncio.ensure_future(harness.run())
    try:
        await asyncio.wait_for(clock.done.wait(), timeout=120)
    finally:
        await harness.stop()
        await task
    return clock.rate()


async def _consume_raw(settings: KafkaSettings, topic: TopicConfig, count: int) -> float:
    clock = _Clock(count)
    consumer = AIOKafkaConsumer(
        topic.name, **settings.consumer_kwargs(f"bench-raw-{uuid.uuid4().hex[:6]}")
    )
    await consumer.start()
    try:
        next_commit = time.monotonic() + 1.0
        while not clock.done.is_set():
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    decode_event(record.value)
                clock.tick(len(records))
            if time.monotonic() >= next_commit:
                next_commit = time.monotonic() + 1.0
                await consumer.commit()
        await consumer.commit()
    finally:
        await consumer.stop()
    return clock.rate()


async def _consume_faststream(settings: KafkaSettings, topic: TopicConfig, count: int) -> float:
    from faststream.kafka import KafkaBroker

    clock = _Clock(count)
    broker = KafkaBroker(settings.bootstrap_servers, logger=None)  # best case: no per-msg logs

    async def decoder(message: Any) -> Any:
        # FastStream's own path (json.loads, then pydantic in Python mode) rejects the models'
        # strict RFC 3339 timestamps; decode the bytes with the same JSON-mode validation.
        return decode_event(message.body)

    @broker.subscriber(  # type: ignore[misc]
        topic.name,
        decoder=decoder,
        group_id=f"bench-faststream-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
    )
    async def handle(event: ReminderScheduled) -> None:
        clock.tick()

    await broker.start()
    try:
        await asyncio.wait_for(clock.done.wait(), timeout=300)
    finally:
        await broker.stop()
    return clock.rate()


async def run(ctx: BenchContext) -> list[BenchRow]:
    """Producer and consumer msg/s for the wrappers and their baselines, same run, same topic."""
    settings = ctx.settings
    produce_count = 5_000 if ctx.quick else 50_000
    consume_count = 5_000 if ctx.quick else 50_000
    faststream_count = 2_000 if ctx.quick else 10_000
    rounds = ctx.rounds
    events = _events(produce_count)

    produce_topic = await _create_topic(settings)
    wrapper_rates: list[float] = []
    raw_rates: list[float] = []
    with input_frozen():
        for _ in range(1 if ctx.quick else 5):  # interleaved, so drift hits both alike
            raw_rates.append(await _produce_raw(settings, produce_topic, events))
            wrapper_rates.append(await _produce_wrapper(settings, produce_topic, events))

    consume_topic = await _create_topic(settings)
    # No content-type header here: FastStream 0.7.8 only JSON-decodes bodies whose content type
    # it knows and hands `application/cloudevents+json` bodies over as raw bytes.
    await _produce_raw(settings, consume_topic, _events(consume_count), content_type=False)
    harness_rates: list[float] = []
    raw_consumer_rates: list[float] = []
    faststream_rates: list[float] = []
    with input_frozen():
        for _ in range(rounds):
            raw_consumer_rates.append(await _consume_raw(settings, consume_topic, consume_count))
            harness_rates.append(await _consume_harness(settings, consume_topic, consume_count))
            faststream_rates.append(
                await _consume_faststream(settings, consume_topic, faststream_count)
            )

    def row(
        name: str, values: list[float], baseline: str, base: list[float], target: float
    ) -> BenchRow:
        return BenchRow.of(
            GROUP,
            name,
            values,
            "msg/s",
            baseline=baseline,
            baseline_samples=base,
            target=f">= {target:g}x",
            meets=lambda value, base_value: value >= target * (base_value or 0),
        )

    return [
        row("producer publish_many", wrapper_rates, "raw aiokafka", raw_rates, 0.95),
        row(
            "consumer harness (decode, no-op)",
            harness_rates,
            "raw getmany+decode",
            raw_consumer_rates,
            0.7,
        ),
        row(
            "consumer harness vs FastStream 0.7.8",
            harness_rates,
            "FastStream",
            faststream_rates,
            5.0,
        ),
    ]


__all__ = ["run"]
