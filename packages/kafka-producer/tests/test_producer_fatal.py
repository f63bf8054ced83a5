"""Unit tests with a fake at aiokafka's send layer: fatal errors replace the producer."""

from __future__ import annotations

import asyncio
from collections import namedtuple
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError, OutOfOrderSequenceNumber, ProducerFenced
from prometheus_client import CollectorRegistry

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.metrics import KafkaMetrics
from coffeebuddy.infra.kafka.models import ReminderScheduled, ReminderScheduledData
from coffeebuddy.infra.kafka.producer import (
    InvalidTraceparentError,
    KafkaEventProducer,
    ProducerClosedError,
    PublishBatchError,
)
from coffeebuddy.infra.kafka.producer._records import validate_traceparent
from coffeebuddy.infra.kafka.testing import wait_until
from coffeebuddy.infra.kafka.topics import REMINDER_EVENTS_TOPIC

_Md = namedtuple("_Md", "topic partition offset")


class FakeProducer:
    """Stands in for AIOKafkaProducer; ``fail_with`` makes the next deliveries fail."""

    instances: list[FakeProducer]

    def __init__(self, kwargs: dict[str, Any], fail_with: list[BaseException]) -> None:
        self.kwargs = kwargs
        self.fail_with = fail_with
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def flush(self) -> None:
        return None

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Any]:
        # Resolved on a later loop iteration, like a real broker acknowledgement.
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        if self.fail_with:
            loop.call_soon(fut.set_exception, self.fail_with.pop(0))
        else:
            self.sent.append((topic, key, value))
            loop.call_soon(fut.set_result, _Md(topic, 0, len(self.sent) - 1))
        return fut


def event(n: int = 0) -> ReminderScheduled:
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


def make(errors: list[BaseException]) -> tuple[KafkaEventProducer, list[FakeProducer], Any]:
    created: list[FakeProducer] = []

    def factory(kwargs: dict[str, Any]) -> FakeProducer:
        fake = FakeProducer(kwargs, errors)
        created.append(fake)
        return fake

    registry = CollectorRegistry()
    settings = KafkaSettings.from_env(
        {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "KAFKA_ENABLE_IDEMPOTENCE": "true"}
    )
    producer = KafkaEventProducer(
        settings, metrics=KafkaMetrics(registry), producer_factory=factory
    )
    return producer, created, registry


@pytest.mark.parametrize(
    "fatal", [OutOfOrderSequenceNumber(), ProducerFenced("fenced")], ids=["out-of-order", "fenced"]
)
async def test_fatal_error_replaces_the_underlying_producer(fatal: BaseException) -> None:
    producer, created, registry = make([fatal])
    async with producer:
        with pytest.raises(type(fatal)):
            await producer.publish(REMINDER_EVENTS_TOPIC, event(1))
        assert len(created) == 2
        assert created[0].stopped
        assert created[1].started
        assert producer.recreated == 1
        md = await producer.publish(REMINDER_EVENTS_TOPIC, event(2))
    assert md.offset == 0
    assert created[1].sent[0][1] == b"run-2"
    assert created[0].kwargs["enable_idempotence"] is True
    labels = {"topic": REMINDER_EVENTS_TOPIC.name}
    name = "coffeebuddy_kafka_messages_produced_total"
    assert registry.get_sample_value(name, {**labels, "outcome": "error"}) == 1
    assert registry.get_sample_value(name, {**labels, "outcome": "success"}) == 1


async def test_non_fatal_error_keeps_the_producer_and_batch_reports_partial_failure() -> None:
    producer, created, registry = make([KafkaTimeoutError()])
    async with producer:
        with pytest.raises(PublishBatchError) as info:
            await producer.publish_many(REMINDER_EVENTS_TOPIC, [event(1), event(2), event(3)])
        assert len(info.value.failures) == 1
        assert "1 of 3" in str(info.value)
        assert len(created) == 1
        assert producer.recreated == 0
    labels = {"topic": REMINDER_EVENTS_TOPIC.name}
    name = "coffeebuddy_kafka_messages_produced_total"
    assert registry.get_sample_value(name, {**labels, "outcome": "error"}) == 1
    assert registry.get_sample_value(name, {**labels, "outcome": "success"}) == 2


async def test_concurrent_fatal_errors_recreate_once() -> None:
    producer, created, _ = make([OutOfOrderSequenceNumber(), OutOfOrderSequenceNumber()])
    async with producer:
        results = await asyncio.gather(
            producer.publish(REMINDER_EVENTS_TOPIC, event(1)),
            producer.publish(REMINDER_EVENTS_TOPIC, event(2)),
            return_exceptions=True,
        )
    assert all(isinstance(r, OutOfOrderSequenceNumber) for r in results)
    assert len(created) == 2
    assert producer.recreated == 1


@pytest.mark.parametrize(
    "bad",
    [
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
    ],
)
def test_traceparent_validation(bad: str) -> None:
    with pytest.raises(InvalidTraceparentError):
        validate_traceparent(bad)
    ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert validate_traceparent(ok) == ok


class _NeverAcks(FakeProducer):
    """Accepts records and never acknowledges them (a broker gone silent)."""

    async def send(self, topic: str, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()


class _RefusesToSend(FakeProducer):
    """send() itself raises (aiokafka raises before queueing, e.g. a fenced producer)."""

    async def send(self, topic: str, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        raise ProducerFenced("fenced before queueing")


class _WontStart(FakeProducer):
    async def start(self) -> None:
        raise KafkaTimeoutError()


def make_with(*kinds: type[FakeProducer]) -> tuple[KafkaEventProducer, list[FakeProducer], Any]:
    """A producer whose n-th underlying producer is of ``kinds[n]`` (the last one repeats)."""
    created: list[FakeProducer] = []

    def factory(kwargs: dict[str, Any]) -> FakeProducer:
        fake = kinds[min(len(created), len(kinds) - 1)](kwargs, [])
        created.append(fake)
        return fake

    registry = CollectorRegistry()
    settings = KafkaSettings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    producer = KafkaEventProducer(
        settings, metrics=KafkaMetrics(registry), producer_factory=factory
    )
    return producer, created, registry


async def test_close_reports_unacknowledged_records_and_fails_their_futures() -> None:
    producer, created, _ = make_with(_NeverAcks)
    await producer.start()
    sending = asyncio.ensure_future(producer.publish(REMINDER_EVENTS_TOPIC, event(1)))
    await wait_until(lambda: producer.outstanding == 1, timeout=5, message="one record in flight")
    report = await producer.close(timeout=0.1)
    assert report.undelivered == 1
    with pytest.raises(ProducerClosedError):
        await sending
    assert created[0].stopped
    assert not producer.started
    with pytest.raises(ProducerClosedError):
        await producer.publish(REMINDER_EVENTS_TOPIC, event(2))


async def test_a_send_that_raises_counts_every_record_and_repairs_the_producer() -> None:
    producer, created, registry = make_with(_RefusesToSend, FakeProducer)
    async with producer:
        with pytest.raises(ProducerFenced):
            await producer.send_raw_many(REMINDER_EVENTS_TOPIC, [(b"k", b"1", None)] * 3)
        assert producer.recreated == 1
        assert await producer.send_raw_many(REMINDER_EVENTS_TOPIC, []) == []
        md = await producer.send_raw(REMINDER_EVENTS_TOPIC, b"v", key=b"k")
    assert md.offset == 0
    assert created[1].sent == [(REMINDER_EVENTS_TOPIC.name, b"k", b"v")]
    name = "coffeebuddy_kafka_messages_produced_total"
    labels = {"topic": REMINDER_EVENTS_TOPIC.name}
    assert registry.get_sample_value(name, {**labels, "outcome": "error"}) == 3


async def test_a_replacement_that_cannot_start_keeps_the_old_producer() -> None:
    producer, created, _ = make_with(_RefusesToSend, _WontStart)
    async with producer:
        with pytest.raises(ProducerFenced):
            await producer.send_raw(REMINDER_EVENTS_TOPIC, b"v", key=b"k")
        assert producer.recreated == 0
        assert len(created) == 2
        assert created[1].stopped
        assert producer.started  # still on the first producer


async def test_a_producer_that_cannot_start_explains_why() -> None:
    producer, created, _ = make_with(_WontStart)
    with pytest.raises(ConnectionError):  # check_connection's diagnosis, or the start error
        await producer.start()
    assert created[0].stopped
    assert not producer.started
