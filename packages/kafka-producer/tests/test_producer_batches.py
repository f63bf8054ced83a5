"""`send_raw_many` with known partitions, and `publish_many` with each key's partition, go as whole
aiokafka batches (`create_batch` / `send_batch`): per-record offsets, order within a partition,
full batches, headers, failures counted."""

from __future__ import annotations

import asyncio
from collections import namedtuple
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError, ProducerFenced
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import CollectorRegistry

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.metrics import KafkaMetrics
from coffeebuddy.infra.kafka.models import (
    CONTENT_TYPE,
    ReminderScheduled,
    ReminderScheduledData,
    encode_event,
)
from coffeebuddy.infra.kafka.producer import KafkaEventProducer, PublishBatchError
from coffeebuddy.infra.kafka.topics import REMINDER_EVENTS_TOPIC, REMINDER_STATE_CHANGELOG_TOPIC

_Md = namedtuple("_Md", "topic partition offset")
TOPIC = REMINDER_STATE_CHANGELOG_TOPIC


class _Batch:
    def __init__(self, room: int) -> None:
        self.room = room
        self.records: list[tuple[bytes | None, bytes | None]] = []
        self.headers: list[tuple[str, bytes]] = []

    def append(
        self, *, key: bytes | None, value: bytes | None, timestamp: Any, headers: Any = ()
    ) -> object | None:
        if len(self.records) >= self.room:
            return None
        self.records.append((key, value))
        self.headers = list(headers)
        return object()


class BatchingFake:
    """AIOKafkaProducer's batch half: a partition log per partition; `fail` fails batches."""

    def __init__(self, room: int = 3) -> None:
        self.room = room
        self.logs: dict[int, list[tuple[bytes | None, bytes | None]]] = {}
        self.fail: list[BaseException] = []
        self.raise_on_submit: BaseException | None = None
        self.sends = 0
        self.stopped = False
        self.headers: list[list[tuple[str, bytes]]] = []  # each submitted batch's record headers

    async def start(self) -> None: ...

    async def stop(self) -> None:
        self.stopped = True

    async def flush(self) -> None: ...

    async def send(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        self.sends += 1
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result(_Md(args[0], kwargs.get("partition") or 0, 0))
        return fut

    def create_batch(self) -> _Batch:
        return _Batch(self.room)

    async def send_batch(self, batch: _Batch, topic: str, *, partition: int) -> asyncio.Future[Any]:
        if self.raise_on_submit is not None:
            raise self.raise_on_submit
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if self.fail:
            loop.call_soon(fut.set_exception, self.fail.pop(0))
            return fut
        self.headers.append(batch.headers)
        log = self.logs.setdefault(partition, [])
        base = len(log)
        log.extend(batch.records)
        loop.call_soon(fut.set_result, _Md(topic, partition, base))
        return fut


def make(fake: BatchingFake) -> tuple[KafkaEventProducer, CollectorRegistry, list[BatchingFake]]:
    registry = CollectorRegistry()
    created: list[BatchingFake] = []

    def factory(kwargs: dict[str, Any]) -> BatchingFake:
        created.append(fake if not created else BatchingFake(fake.room))
        return created[-1]

    settings = KafkaSettings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    producer = KafkaEventProducer(
        settings, metrics=KafkaMetrics(registry), producer_factory=factory
    )
    return producer, registry, created


def _count(registry: CollectorRegistry, outcome: str, topic: str = TOPIC.name) -> float | None:
    return registry.get_sample_value(
        "coffeebuddy_kafka_messages_produced_total", {"topic": topic, "outcome": outcome}
    )


async def test_each_record_gets_its_own_offset_in_input_order_per_partition() -> None:
    fake = BatchingFake(room=3)
    producer, registry, _ = make(fake)
    records = [(f"k{i}".encode(), f"v{i}".encode(), i % 2) for i in range(8)]
    records.append((b"gone", None, 1))  # a tombstone
    async with producer:
        metas = await producer.send_raw_many(TOPIC, records)
    assert fake.sends == 0  # never record by record
    assert [(m.partition, m.offset) for m in metas] == [
        (0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2), (0, 3), (1, 3), (1, 4),
    ]  # fmt: skip
    for (key, value, partition), md in zip(records, metas, strict=True):
        assert fake.logs[partition][md.offset] == (key, value)
    assert _count(registry, "success") == 9


async def test_a_failed_batch_fails_its_records_and_counts_them() -> None:
    fake = BatchingFake(room=2)
    fake.fail = [KafkaTimeoutError()]
    producer, registry, _ = make(fake)
    async with producer:
        with pytest.raises(PublishBatchError) as info:
            await producer.send_raw_many(TOPIC, [(b"a", b"1", 0), (b"b", b"2", 0), (b"c", b"3", 0)])
    assert len(info.value.failures) == 2  # the first batch held two of the three
    assert _count(registry, "error") == 2
    assert _count(registry, "success") == 1


async def test_a_fatal_error_while_submitting_counts_all_and_replaces_the_producer() -> None:
    fake = BatchingFake()
    fake.raise_on_submit = ProducerFenced("fenced")
    producer, registry, created = make(fake)
    async with producer:
        with pytest.raises(ProducerFenced):
            await producer.send_raw_many(TOPIC, [(b"a", b"1", 0), (b"b", b"2", 1)])
        assert producer.recreated == 1
        assert created[0].stopped
        metas = await producer.send_raw_many(TOPIC, [(b"a", b"1", 0)])
    assert [(m.partition, m.offset) for m in metas] == [(0, 0)]
    assert _count(registry, "error") == 2


async def test_records_without_a_partition_or_with_headers_go_record_by_record() -> None:
    fake = BatchingFake()
    producer, _, _ = make(fake)
    async with producer:
        await producer.send_raw_many(TOPIC, [(b"a", b"1", None)])
        await producer.send_raw_many(TOPIC, [(b"a", b"1", 0)], headers={"h": b"1"})
    assert fake.sends == 2
    assert fake.logs == {}


class KeyedFake(BatchingFake):
    """A BatchingFake that also knows a topic's partitions, as `AIOKafkaProducer` does."""

    def __init__(self, partitions: int) -> None:
        super().__init__(room=1000)
        self.partitions = set(range(partitions))
        self.metadata_error: BaseException | None = None

    async def partitions_for(self, topic: str) -> set[int]:
        if self.metadata_error is not None:
            raise self.metadata_error
        return self.partitions


def _reminders(count: int) -> list[ReminderScheduled]:
    due = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
    return [
        ReminderScheduled.create(
            data=ReminderScheduledData(
                reminder_id=f"run-{i % 5}:runner",
                kind="runner",
                run_id=f"run-{i % 5}",
                team_id="T1",
                channel_id="C1",
                recipient_user_id="U1",
                due_at=due,
                place="Cafe",
            )
        )
        for i in range(count)
    ]


async def test_publish_many_fills_batches_on_each_keys_partition_with_the_headers() -> None:
    fake = KeyedFake(partitions=4)
    producer, registry, _ = make(fake)
    events = _reminders(20)
    async with producer:
        metas = await producer.publish_many(REMINDER_EVENTS_TOPIC, events)
    assert fake.sends == 0  # never record by record
    everything = sorted(fake.partitions)
    for event, md in zip(events, metas, strict=True):
        key = event.data.run_id.encode()
        assert md.partition == DefaultPartitioner()(key, everything, everything)  # aiokafka's rule
        assert fake.logs[md.partition][md.offset] == (key, encode_event(event))
    assert fake.headers == [[("content-type", CONTENT_TYPE.encode())]] * len(fake.logs)
    assert _count(registry, "success", REMINDER_EVENTS_TOPIC.name) == 20


async def test_publish_many_without_metadata_counts_every_record_as_failed() -> None:
    fake = KeyedFake(partitions=4)
    fake.metadata_error = KafkaTimeoutError()
    producer, registry, _ = make(fake)
    async with producer:
        with pytest.raises(KafkaTimeoutError):
            await producer.publish_many(REMINDER_EVENTS_TOPIC, _reminders(3))
    assert fake.logs == {}
    assert _count(registry, "error", REMINDER_EVENTS_TOPIC.name) == 3
