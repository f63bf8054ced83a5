"""Harness wiring on the real broker: delivery, order, commits, metrics, health, dead letters
(the failure paths in detail: test_consumer_harness_unit.py)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from prometheus_client import CollectorRegistry

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.consumer import KafkaConsumerHarness, RecordContext
from coffeebuddy.infra.kafka.metrics import KafkaMetrics
from coffeebuddy.infra.kafka.models import Event, parse_dead_letter_headers
from coffeebuddy.infra.kafka.testing import TopicFactory, wait_until


async def test_delivers_in_partition_order_commits_and_reports_health(
    kafka_settings: KafkaSettings,
    unique_topic: TopicFactory,
    group: str,
    metrics: KafkaMetrics,
    registry: CollectorRegistry,
    running: Any,
    kit: Any,
) -> None:
    topic = unique_topic(3)
    await kit.produce(kafka_settings, topic.name, kit.events_bytes(300))
    seen: dict[int, list[int]] = defaultdict(list)
    contexts: list[RecordContext] = []

    async def handler(event: Event, ctx: RecordContext) -> None:
        seen[ctx.partition].append(ctx.offset)
        assert ctx.attempt == 1
        assert ctx.key is not None
        assert event.type == "coffeebuddy.reminder.scheduled.v1"
        if not contexts:
            contexts.append(ctx)

    harness = KafkaConsumerHarness(kafka_settings, [topic], group, handler, metrics=metrics)
    assert not harness.health().ready
    async with running(harness):
        await wait_until(lambda: sum(map(len, seen.values())) == 300, timeout=20, message="300")
        await wait_until(lambda: harness.health().ready, timeout=5, message="ready")
        assert harness.health().live
        assert len(harness.assignment()) == 3
        await wait_until(
            lambda: (
                kit.sample(
                    registry,
                    "coffeebuddy_kafka_consumer_lag",
                    topic=topic.name,
                    group=group,
                    partition="0",
                )
                == 0
                and kit.sample(
                    registry,
                    "coffeebuddy_kafka_committed_offset",
                    topic=topic.name,
                    group=group,
                    partition="0",
                )
                == len(seen[0])
            ),
            timeout=5,
            message="lag 0 and committed offset reported",
        )
    for offsets in seen.values():
        assert offsets == sorted(offsets)
        assert offsets == list(range(len(offsets)))
    assert await kit.committed(kafka_settings, group, topic.name, 3) == [
        len(seen[p]) for p in range(3)
    ]
    ctx = contexts[0]
    assert ctx.timestamp.tzinfo is not None
    assert ctx.topic == topic.name
    assert ctx.headers == ()
    assert not harness.health().ready
    assert not harness.health().live
    assert (
        kit.sample(
            registry, "coffeebuddy_kafka_messages_consumed_total", topic=topic.name, group=group
        )
        == 300
    )
    assert (
        kit.sample(
            registry,
            "coffeebuddy_kafka_handler_duration_seconds_count",
            topic=topic.name,
            group=group,
            outcome="success",
        )
        == 300
    )
    assert kit.sample(registry, "coffeebuddy_kafka_commits_total", group=group) >= 1
    assert (
        kit.sample(registry, "coffeebuddy_kafka_rebalances_total", group=group, kind="assigned")
        >= 1
    )
    # Series of partitions no longer owned are gone after stop.
    assert (
        registry.get_sample_value(
            "coffeebuddy_kafka_consumer_lag",
            {"topic": topic.name, "group": group, "partition": "0"},
        )
        is None
    )


async def test_poison_records_go_to_dead_letter_topic_and_consumption_goes_on(
    kafka_settings: KafkaSettings,
    unique_topic: TopicFactory,
    group: str,
    metrics: KafkaMetrics,
    registry: CollectorRegistry,
    running: Any,
    kit: Any,
) -> None:
    topic = unique_topic(1)
    good = kit.events_bytes(20)
    values = []
    for i, value in enumerate(good):
        values.append(value)
        if i % 5 == 2:
            values.append(b'{"not": "an event"' if i % 2 else b"\xff\xfe garbage")
    await kit.produce(
        kafka_settings,
        topic.name,
        values,
        partition=0,
        headers=[("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")],
    )
    handled: list[int] = []

    async def handler(event: Event, ctx: RecordContext) -> None:
        handled.append(ctx.offset)

    harness = KafkaConsumerHarness(kafka_settings, [topic], group, handler, metrics=metrics)
    async with running(harness):
        dead = await kit.read_topic(kafka_settings, topic.dead_letter_topic, 4, timeout=20)
        await wait_until(lambda: len(handled) == 20, timeout=10, message="all good handled")
    assert await kit.committed(kafka_settings, group, topic.name, 1) == [len(values)]
    poison_offsets = [i for i, v in enumerate(values) if v not in good]
    parsed = [parse_dead_letter_headers(r.headers) for r in dead]
    assert sorted(d.origin_offset for d in parsed) == poison_offsets
    for record, headers in zip(dead, parsed, strict=True):
        assert record.value == values[headers.origin_offset]  # byte for byte, real producer
        assert record.key == headers.origin_key == f"k{headers.origin_offset}".encode()
        assert (headers.origin_topic, headers.origin_partition) == (topic.name, 0)
        assert (headers.reason, headers.error_type) == ("decode_error", "EventDecodeError")
        assert dict(headers.original)["traceparent"].startswith(b"00-4bf9")
    assert (
        kit.sample(
            registry,
            "coffeebuddy_kafka_dead_lettered_total",
            topic=topic.name,
            group=group,
            reason="decode_error",
        )
        == 4
    )
