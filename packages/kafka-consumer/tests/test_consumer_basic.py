"""Harness basics on the real broker: delivery, order, commits, dead letters, retries, health."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from prometheus_client import CollectorRegistry

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.consumer import (
    DLQ_ATTEMPTS,
    DLQ_ERROR_MESSAGE,
    DLQ_ERROR_TYPE,
    DLQ_FIRST_SEEN,
    DLQ_ORIGIN_KEY,
    DLQ_ORIGIN_OFFSET,
    DLQ_ORIGIN_PARTITION,
    DLQ_ORIGIN_TOPIC,
    DLQ_REASON,
    KafkaConsumerHarness,
    NonRetryableError,
    RecordContext,
    RetryableError,
    RetryPolicy,
)
from coffeebuddy.infra.kafka.metrics import KafkaMetrics
from coffeebuddy.infra.kafka.models import Event
from coffeebuddy.infra.kafka.testing import TopicFactory, wait_until

FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff=0.05, max_backoff=0.2, jitter=0.1)


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
    assert sorted(int(dict(r.headers)[DLQ_ORIGIN_OFFSET]) for r in dead) == poison_offsets
    for record in dead:
        headers = dict(record.headers)
        offset = int(headers[DLQ_ORIGIN_OFFSET])
        assert record.value == values[offset]
        assert record.key == f"k{offset}".encode()
        assert headers[DLQ_ORIGIN_TOPIC] == topic.name.encode()
        assert headers[DLQ_ORIGIN_PARTITION] == b"0"
        assert headers[DLQ_ORIGIN_KEY] == record.key
        assert headers[DLQ_REASON] == b"decode_error"
        assert headers[DLQ_ERROR_TYPE] == b"EventDecodeError"
        assert headers[DLQ_ERROR_MESSAGE]
        assert headers[DLQ_ATTEMPTS] == b"1"
        assert headers[DLQ_FIRST_SEEN].endswith(b"Z")
        assert headers["traceparent"].startswith(b"00-4bf9")
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


async def test_retryable_errors_back_off_keep_order_then_dead_letter_when_exhausted(
    kafka_settings: KafkaSettings,
    unique_topic: TopicFactory,
    group: str,
    metrics: KafkaMetrics,
    registry: CollectorRegistry,
    running: Any,
    kit: Any,
) -> None:
    topic = unique_topic(1)
    await kit.produce(kafka_settings, topic.name, kit.events_bytes(6), partition=0)
    calls: list[tuple[int, int]] = []

    async def handler(event: Event, ctx: RecordContext) -> None:
        calls.append((ctx.offset, ctx.attempt))
        if ctx.offset == 1 and ctx.attempt < 3:
            raise RetryableError("slack 503")  # succeeds on the third attempt
        if ctx.offset == 3:
            raise RetryableError("still down")  # never succeeds: exhausted
        if ctx.offset == 4:
            raise NonRetryableError("bad reminder")
        if ctx.offset == 5:
            raise KeyError("bug")  # unclassified: non-retryable by default

    harness = KafkaConsumerHarness(
        kafka_settings, [topic], group, handler, metrics=metrics, retry_policy=FAST_RETRY
    )
    async with running(harness):
        dead = await kit.read_topic(kafka_settings, topic.dead_letter_topic, 3, timeout=20)
        await wait_until(lambda: calls and calls[-1][0] == 5, timeout=5, message="all called")
    assert calls == [(0, 1), (1, 1), (1, 2), (1, 3), (2, 1), (3, 1), (3, 2), (3, 3), (4, 1), (5, 1)]
    reasons = {int(dict(r.headers)[DLQ_ORIGIN_OFFSET]): dict(r.headers) for r in dead}
    assert reasons[3][DLQ_REASON] == b"retries_exhausted"
    assert reasons[3][DLQ_ATTEMPTS] == b"3"
    assert reasons[3][DLQ_ERROR_TYPE] == b"RetryableError"
    assert reasons[3][DLQ_ERROR_MESSAGE] == b"still down"
    assert reasons[4][DLQ_REASON] == b"non_retryable"
    assert reasons[5][DLQ_ERROR_TYPE] == b"KeyError"
    assert await kit.committed(kafka_settings, group, topic.name, 1) == [6]
    assert (
        kit.sample(
            registry,
            "coffeebuddy_kafka_handler_errors_total",
            topic=topic.name,
            group=group,
            error_type="RetryableError",
        )
        == 5
    )
    assert (
        kit.sample(
            registry,
            "coffeebuddy_kafka_handler_duration_seconds_count",
            topic=topic.name,
            group=group,
            outcome="retry",
        )
        == 4
    )


async def test_custom_classifier_decides(
    kafka_settings: KafkaSettings,
    unique_topic: TopicFactory,
    group: str,
    metrics: KafkaMetrics,
    running: Any,
    kit: Any,
) -> None:
    from coffeebuddy.infra.kafka.consumer import ErrorClass

    topic = unique_topic(1)
    await kit.produce(kafka_settings, topic.name, kit.events_bytes(1), partition=0)
    attempts: list[int] = []

    async def handler(event: Event, ctx: RecordContext) -> None:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            raise LookupError("eventually consistent read")

    def classify(exc: BaseException) -> ErrorClass:
        return ErrorClass.RETRYABLE if isinstance(exc, LookupError) else ErrorClass.NON_RETRYABLE

    harness = KafkaConsumerHarness(
        kafka_settings,
        [topic],
        group,
        handler,
        metrics=metrics,
        retry_policy=FAST_RETRY,
        classify_error=classify,
    )
    async with running(harness):
        await wait_until(lambda: attempts == [1, 2], timeout=10, message="retried once")
        await wait_until(
            lambda: (
                kit.sample(
                    metrics.registry,
                    "coffeebuddy_kafka_committed_offset",
                    topic=topic.name,
                    group=group,
                    partition="0",
                )
                == 1
            ),
            timeout=5,
            message="committed after retry",
        )


async def test_an_injected_decoder_replaces_the_cloudevents_one(
    kafka_settings: KafkaSettings,
    unique_topic: TopicFactory,
    group: str,
    metrics: KafkaMetrics,
    registry: CollectorRegistry,
    running: Any,
    kit: Any,
) -> None:
    """`decoder=` sees every record; whatever it raises dead-letters the record (the partition
    goes on), like a malformed event."""
    from coffeebuddy.infra.kafka.models import decode_record

    topic = unique_topic(1)
    await kit.produce(kafka_settings, topic.name, kit.events_bytes(6), partition=0)
    offsets: list[int] = []
    decoded: list[bytes | None] = []

    def every_other(value: bytes | None, headers: Any) -> Event:
        decoded.append(value)
        if len(decoded) % 2 == 0:
            raise LookupError("refused by the injected decoder")
        return decode_record(value, headers)

    async def handler(event: Event, ctx: RecordContext) -> None:
        offsets.append(ctx.offset)

    harness = KafkaConsumerHarness(
        kafka_settings, [topic], group, handler, metrics=metrics, decoder=every_other
    )
    async with running(harness):
        await wait_until(lambda: len(decoded) == 6, timeout=20, message="six decoded")
        await wait_until(
            lambda: (
                kit.sample(
                    registry,
                    "coffeebuddy_kafka_dead_lettered_total",
                    topic=topic.name,
                    group=group,
                    reason="decode_error",
                )
                == 3
            ),
            timeout=10,
            message="three dead letters",
        )
    assert offsets == [0, 2, 4]
