"""KafkaEventProducer against the real (embedded) broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from prometheus_client import CollectorRegistry

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.metrics import KafkaMetrics
from coffeebuddy.infra.kafka.models import (
    CONTENT_TYPE,
    ReminderScheduled,
    ReminderScheduledData,
    RunCreated,
    RunCreatedData,
    decode_event,
    encode_event,
)
from coffeebuddy.infra.kafka.producer import (
    EventNotAllowedError,
    InvalidTraceparentError,
    KafkaEventProducer,
    ProducerClosedError,
)
from coffeebuddy.infra.kafka.testing import TopicFactory
from coffeebuddy.infra.kafka.topics import REMINDER_EVENT_TYPES, TopicConfig

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def reminder(run_id: str, n: int = 0) -> ReminderScheduled:
    now = datetime.now(UTC)
    return ReminderScheduled.create(
        data=ReminderScheduledData(
            run_id=run_id,
            reminder_id=f"{run_id}:runner:{n}",
            kind="runner",
            team_id="T0001",
            channel_id="C0001",
            recipient_user_id="U0001",
            due_at=now + timedelta(minutes=5),
            place="Cafe Nero",
        )
    )


def run_created(run_id: str) -> RunCreated:
    return RunCreated.create(
        data=RunCreatedData(
            run_id=run_id,
            team_id="T0001",
            channel_id="C0001",
            organizer_user_id="U0001",
            place="Cafe Nero",
            closes_at=datetime.now(UTC) + timedelta(minutes=10),
        )
    )


async def read_all(settings: KafkaSettings, topic: str, count: int) -> list[Any]:
    consumer = AIOKafkaConsumer(topic, **settings.consumer_kwargs(None))
    await consumer.start()
    try:
        out: list[Any] = []
        for _ in range(100):
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                out.extend(records)
            if len(out) >= count:
                break
        return out
    finally:
        await consumer.stop()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def reminder_topic(unique_topic: TopicFactory) -> TopicConfig:
    return unique_topic(2, event_types=REMINDER_EVENT_TYPES)


async def test_publish_writes_cloudevent_with_key_headers_and_metrics(
    kafka_settings: KafkaSettings, reminder_topic: TopicConfig, registry: CollectorRegistry
) -> None:
    event = reminder("run-1")
    async with KafkaEventProducer(kafka_settings, metrics=KafkaMetrics(registry)) as producer:
        md = await producer.publish(reminder_topic, event, traceparent=TRACEPARENT)
    assert md.topic == reminder_topic.name
    assert md.offset == 0
    [record] = await read_all(kafka_settings, reminder_topic.name, 1)
    assert record.key == b"run-1"
    assert record.partition == md.partition
    headers = dict(record.headers)
    assert headers["content-type"] == CONTENT_TYPE.encode()
    assert headers["traceparent"] == TRACEPARENT.encode()
    assert decode_event(record.value) == event
    labels = {"topic": reminder_topic.name}
    assert (
        registry.get_sample_value(
            "coffeebuddy_kafka_messages_produced_total", {**labels, "outcome": "success"}
        )
        == 1
    )
    assert registry.get_sample_value("coffeebuddy_kafka_produced_bytes_total", labels) == len(
        record.value
    )
    assert (
        registry.get_sample_value("coffeebuddy_kafka_produce_duration_seconds_count", labels) == 1
    )


async def test_publish_many_keeps_per_key_order_and_counts_once_per_batch(
    kafka_settings: KafkaSettings, reminder_topic: TopicConfig, registry: CollectorRegistry
) -> None:
    events = [reminder(f"run-{i % 3}", i) for i in range(60)]
    async with KafkaEventProducer(kafka_settings, metrics=KafkaMetrics(registry)) as producer:
        results = await producer.publish_many(reminder_topic, events)
        assert await producer.publish_many(reminder_topic, []) == []
    assert len(results) == 60
    records = await read_all(kafka_settings, reminder_topic.name, 60)
    assert len(records) == 60
    by_key: dict[bytes, list[str]] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_key.setdefault(r.key, []).append(decode_event(r.value).id)
    for key, ids in by_key.items():
        expected = [e.id for e in events if e.data.run_id.encode() == key]
        assert ids == expected
    assert (
        registry.get_sample_value(
            "coffeebuddy_kafka_messages_produced_total",
            {"topic": reminder_topic.name, "outcome": "success"},
        )
        == 60
    )


async def test_refuses_raw_topic_names_and_foreign_event_types(
    kafka_settings: KafkaSettings, reminder_topic: TopicConfig, registry: CollectorRegistry
) -> None:
    async with KafkaEventProducer(kafka_settings, metrics=KafkaMetrics(registry)) as producer:
        with pytest.raises(TypeError, match="TopicConfig"):
            await producer.publish(reminder_topic.name, reminder("run-1"))  # type: ignore[arg-type]
        with pytest.raises(EventNotAllowedError) as info:
            await producer.publish(reminder_topic, run_created("run-1"))
        assert info.value.topic == reminder_topic.name
        assert info.value.event_type == "coffeebuddy.run.created.v1"
        assert "coffeebuddy.reminder.scheduled.v1" in str(info.value)
        with pytest.raises(EventNotAllowedError):
            await producer.publish_many(reminder_topic, [reminder("run-1"), run_created("run-2")])
        with pytest.raises(InvalidTraceparentError, match="traceparent"):
            await producer.publish(reminder_topic, reminder("run-1"), traceparent="00-abc-01")
        sentinel = reminder("run-sentinel")
        await producer.publish(reminder_topic, sentinel)
    # Nothing was written by the refused calls: the sentinel is the only record.
    records = await read_all(kafka_settings, reminder_topic.name, 1)
    assert [decode_event(r.value).id for r in records] == [sentinel.id]


async def test_send_raw_for_dead_letters_and_closed_producer(
    kafka_settings: KafkaSettings, unique_topic: TopicFactory, registry: CollectorRegistry
) -> None:
    topic = unique_topic(1, event_types=REMINDER_EVENT_TYPES)
    dlq = unique_topic.dead_letter(topic)
    producer = KafkaEventProducer(kafka_settings, metrics=KafkaMetrics(registry))
    with pytest.raises(ProducerClosedError):
        await producer.send_raw(dlq, b"junk", key=None)
    await producer.start()
    md = await producer.send_raw(dlq, b"not json", key=b"k", headers={"x-origin": "t"})
    report = await producer.close()
    assert report.undelivered == 0
    assert md.topic == dlq.name
    [record] = await read_all(kafka_settings, dlq.name, 1)
    assert (record.key, record.value) == (b"k", b"not json")
    assert dict(record.headers) == {"x-origin": b"t"}
    with pytest.raises(ProducerClosedError):
        await producer.publish(topic, reminder("r"))


async def test_close_reports_undelivered_when_broker_is_gone(
    kafka_settings: KafkaSettings, registry: CollectorRegistry
) -> None:
    import asyncio

    from coffeebuddy.infra.kafka.testing import EmbeddedBroker, create_topics, wait_until

    with EmbeddedBroker() as broker:
        settings = kafka_settings.with_overrides(
            bootstrap_servers=[broker.bootstrap_servers], enable_idempotence=False
        )  # a private embedded broker, killed below: it has no idempotent producer
        await create_topics(settings, [("doomed", 1)])
        topic = TopicConfig(
            name="doomed",
            partitions=1,
            replication_factor=1,
            key_field="run_id",
            event_types=REMINDER_EVENT_TYPES,
        )
        producer = KafkaEventProducer(settings, metrics=KafkaMetrics(registry), close_timeout=1.0)
        await producer.start()
        await producer.publish(topic, reminder("run-1"))
        broker.stop(timeout=0.5)
        pending = asyncio.ensure_future(producer.publish_many(topic, [reminder("run-2", 1)] * 3))
        await wait_until(lambda: producer.outstanding == 3, timeout=5, message="3 records queued")
        loop = asyncio.get_running_loop()
        started = loop.time()
        report = await producer.close()
        took = loop.time() - started
    assert report.undelivered == 3
    assert took < 3.0
    with pytest.raises(Exception):  # noqa: B017, PT011 - the caller learns its records failed
        await pending


async def test_publish_many_puts_each_key_where_send_would_with_each_records_offset(
    kafka_settings: KafkaSettings, unique_topic: TopicFactory, registry: CollectorRegistry
) -> None:
    # publish_many chooses partitions itself (whole batches); publish goes through aiokafka's
    # send and its partitioner. Both must agree for every key, or a key's records would split.
    topic = unique_topic(7, event_types=REMINDER_EVENT_TYPES)
    events = [reminder(f"run-{i % 150}", i) for i in range(600)]
    async with KafkaEventProducer(kafka_settings, metrics=KafkaMetrics(registry)) as producer:
        results = await producer.publish_many(topic, events)
        singles = {
            f"run-{k}": await producer.publish(topic, reminder(f"run-{k}", 1000 + k))
            for k in range(150)
        }
    assert len({md.partition for md in results}) == 7
    for event, md in zip(events, results, strict=True):
        assert md.partition == singles[event.data.run_id].partition, event.data.run_id
    records = await read_all(kafka_settings, topic.name, 750)
    stored = {(r.partition, r.offset): r for r in records}
    for event, md in zip(events, results, strict=True):
        record = stored[(md.partition, md.offset)]  # the offset returned is the record's own
        assert decode_event(record.value).id == event.id
        assert record.key == event.data.run_id.encode()
        assert dict(record.headers)["content-type"] == CONTENT_TYPE.encode()
    for key, md in singles.items():  # a later publish of a key lands after its batch records
        assert md.offset > max(r.offset for r in results if r.partition == md.partition), key


async def test_publish_many_refuses_an_oversized_record_before_sending_any(
    kafka_settings: KafkaSettings, reminder_topic: TopicConfig, registry: CollectorRegistry
) -> None:
    small = [reminder("run-1", i) for i in range(3)]
    big = reminder("run-1", 3).model_copy(
        update={"data": small[0].data.model_copy(update={"place": "P" * 120})}
    )

    def size(event: ReminderScheduled) -> int:  # as aiokafka's send measures a record
        header = [("content-type", CONTENT_TYPE.encode())]
        return int(
            DefaultRecordBatchBuilder.estimate_size_in_bytes(b"run-1", encode_event(event), header)
        )

    limit = size(small[0]) + 50
    assert size(big) > limit
    settings = kafka_settings.with_overrides(max_request_size=limit, max_batch_size=limit)
    async with KafkaEventProducer(settings, metrics=KafkaMetrics(registry)) as producer:
        with pytest.raises(MessageSizeTooLargeError, match=r"record 2 for .* nothing of this call"):
            await producer.publish_many(reminder_topic, [*small[:2], big, small[2]])
        md = await producer.publish(reminder_topic, small[2])
    assert md.offset == 0  # nothing of the refused call reached the partition
