"""Cross-package: producer -> broker -> consumer harness -> dead-letter topic -> replay.

Uses the catalog's reminder topic definition (key rule, event types) on a unique test topic,
one shared metrics registry, and the real embedded broker.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer
from prometheus_client import CollectorRegistry

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.consumer import KafkaConsumerHarness, NonRetryableError, RecordContext
from coffeebuddy.infra.kafka.metrics import KafkaMetrics
from coffeebuddy.infra.kafka.models import (
    DLQ_HEADERS,
    DLQ_REASON,
    Event,
    ReminderScheduled,
    ReminderScheduledData,
)
from coffeebuddy.infra.kafka.producer import KafkaEventProducer
from coffeebuddy.infra.kafka.testing import TopicFactory, wait_until
from coffeebuddy.infra.kafka.topics import REMINDER_EVENTS_TOPIC

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def reminder(run_id: str) -> ReminderScheduled:
    return ReminderScheduled.create(
        data=ReminderScheduledData(
            run_id=run_id,
            reminder_id=f"{run_id}:runner",
            kind="runner",
            team_id="T0001",
            channel_id="C0001",
            recipient_user_id="U0001",
            due_at=datetime.now(UTC) + timedelta(minutes=5),
            place="Cafe",
        )
    )


async def test_publish_consume_dead_letter_and_replay(
    kafka_settings: KafkaSettings, unique_topic: TopicFactory
) -> None:
    topic = unique_topic(2, base=REMINDER_EVENTS_TOPIC)
    dlq = unique_topic.dead_letter(topic)
    registry = CollectorRegistry()
    metrics = KafkaMetrics(registry)
    broken_runs = {"run-bad"}
    seen: list[tuple[str, bytes | None, int]] = []

    async def handler(event: Event, ctx: RecordContext) -> None:
        seen.append((event.data.run_id, dict(ctx.headers).get("traceparent"), ctx.attempt))
        if event.data.run_id in broken_runs:
            raise NonRetryableError("recipient left the workspace")

    async with KafkaEventProducer(kafka_settings, metrics=metrics) as producer:
        await producer.publish(topic, reminder("run-1"), traceparent=TRACEPARENT)
        await producer.publish(topic, reminder("run-bad"))
        await producer.publish_many(topic, [reminder("run-2"), reminder("run-3")])
        harness = KafkaConsumerHarness(
            kafka_settings,
            [topic],
            "harness-roundtrip",
            handler,
            producer=producer,
            metrics=metrics,
        )
        task = asyncio.ensure_future(harness.run())
        try:
            await wait_until(lambda: len(seen) == 4, timeout=20, message="4 events handled")
            # Replay: the DLQ record goes back to its origin topic once the cause is fixed.
            reader = AIOKafkaConsumer(dlq.name, **kafka_settings.consumer_kwargs(None))
            await reader.start()
            dead = []
            try:

                async def got() -> bool:
                    for records in (await reader.getmany(timeout_ms=100)).values():
                        dead.extend(records)
                    return bool(dead)

                await wait_until(got, timeout=10, message="dead letter written")
            finally:
                await reader.stop()
            record = dead[0]
            assert dict(record.headers)[DLQ_REASON] == b"non_retryable"
            broken_runs.clear()
            original = [(k, v) for k, v in record.headers if k not in DLQ_HEADERS]
            await producer.send_raw(topic, record.value, key=record.key, headers=original)
            await wait_until(lambda: len(seen) == 5, timeout=10, message="replayed and handled")
        finally:
            await harness.stop()
            await task
    assert seen[0] == ("run-1", TRACEPARENT.encode(), 1)
    assert sorted(s[0] for s in seen) == ["run-1", "run-2", "run-3", "run-bad", "run-bad"]
    produced = registry.get_sample_value(
        "coffeebuddy_kafka_messages_produced_total", {"topic": topic.name, "outcome": "success"}
    )
    assert produced == 5
    assert (
        registry.get_sample_value(
            "coffeebuddy_kafka_dead_lettered_total",
            {"topic": topic.name, "group": "harness-roundtrip", "reason": "non_retryable"},
        )
        == 1
    )
