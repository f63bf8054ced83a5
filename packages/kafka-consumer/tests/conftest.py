"""Shared helpers for the consumer harness tests (real embedded broker)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition as KafkaTopicPartition
from prometheus_client import CollectorRegistry

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.consumer import KafkaConsumerHarness
from coffeebuddy.infra.kafka.metrics import KafkaMetrics
from coffeebuddy.infra.kafka.models import ReminderScheduled, ReminderScheduledData, encode_event
from coffeebuddy.infra.kafka.testing import wait_until


def make_event(run_id: str, n: int) -> ReminderScheduled:
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
        )
    )


async def produce(
    settings: KafkaSettings,
    topic: str,
    values: Sequence[bytes],
    *,
    partition: int | None = None,
    keys: Sequence[bytes] | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    """Write raw values (round-robin keys unless ``partition`` is given) with plain aiokafka."""
    producer = AIOKafkaProducer(**settings.producer_kwargs())
    await producer.start()
    try:
        futures = []
        for i, value in enumerate(values):
            key = keys[i] if keys is not None else f"k{i}".encode()
            futures.append(
                await producer.send(topic, value, key=key, partition=partition, headers=headers)
            )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def events_bytes(count: int, run_prefix: str = "run") -> list[bytes]:
    return [encode_event(make_event(f"{run_prefix}-{i % 7}", i)) for i in range(count)]


async def committed(settings: KafkaSettings, group: str, topic: str, partitions: int) -> list[Any]:
    """Committed offsets of ``group`` (None where nothing was committed), read by a new client."""
    consumer = AIOKafkaConsumer(**settings.consumer_kwargs(group))
    await consumer.start()
    try:
        return [await consumer.committed(KafkaTopicPartition(topic, p)) for p in range(partitions)]
    finally:
        await consumer.stop()


async def read_topic(
    settings: KafkaSettings,
    topic: str,
    count: int,
    timeout: float,  # noqa: ASYNC109
) -> list[Any]:
    consumer = AIOKafkaConsumer(topic, **settings.consumer_kwargs(None))
    await consumer.start()
    out: list[Any] = []
    try:

        async def enough() -> bool:
            for records in (await consumer.getmany(timeout_ms=100)).values():
                out.extend(records)
            return len(out) >= count

        await wait_until(enough, timeout=timeout, message=f"{count} records on {topic}")
        return out
    finally:
        await consumer.stop()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> KafkaMetrics:
    return KafkaMetrics(registry)


@pytest.fixture
def group() -> str:
    return f"test-group-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def running() -> Callable[[KafkaConsumerHarness], contextlib.AbstractAsyncContextManager[Any]]:
    """``async with running(harness) as task``: run it in the background, always stop it."""

    @contextlib.asynccontextmanager
    async def run(harness: KafkaConsumerHarness) -> AsyncIterator[asyncio.Task[None]]:
        task = asyncio.ensure_future(harness.run())
        try:
            yield task
        finally:
            await harness.stop()
            await asyncio.wait({task}, timeout=30)
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    return run


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


class Kit:
    """The helpers above, as a fixture (test modules cannot import conftest)."""

    make_event = staticmethod(make_event)
    produce = staticmethod(produce)
    events_bytes = staticmethod(events_bytes)
    committed = staticmethod(committed)
    read_topic = staticmethod(read_topic)
    sample = staticmethod(sample)


@pytest.fixture
def kit() -> type[Kit]:
    return Kit
