"""Shared helpers for the consumer harness tests: real-broker helpers (`kit`) and fakes of the
consumer seam and of aiokafka's producer for the unit tests (`fakes`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition as KafkaTopicPartition
from prometheus_client import CollectorRegistry

from coffeebuddy.infra.kafka.config import KafkaSettings
from coffeebuddy.infra.kafka.consumer import KafkaConsumerHarness, RetryPolicy
from coffeebuddy.infra.kafka.metrics import KafkaMetrics
from coffeebuddy.infra.kafka.models import ReminderScheduled, ReminderScheduledData, encode_event
from coffeebuddy.infra.kafka.producer import KafkaEventProducer, RecordMetadata
from coffeebuddy.infra.kafka.testing import wait_until
from coffeebuddy.infra.kafka.topics import TopicConfig


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


# ---------------------------------------------------------------- fakes for the consumer seam
UNIT_TOPIC = TopicConfig(
    name="unit.orders",
    partitions=2,
    replication_factor=1,
    key_field="run_id",
    dead_letter_topic="unit.orders.dlq",
)


@dataclass(frozen=True)
class FakeRecord:
    """The fields of an aiokafka `ConsumerRecord` the harness reads."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp: int


class FakeConsumer:
    """`ConsumerLike` over an in-memory log; rebalances queued by `assign`/`revoke` run inside
    the next `getmany`, the way aiokafka runs its listener while the poll waits."""

    def __init__(self, topic: str = UNIT_TOPIC.name, partitions: int = 1) -> None:
        self.topic = topic
        self.log: dict[KafkaTopicPartition, list[FakeRecord]] = {
            KafkaTopicPartition(topic, p): [] for p in range(partitions)
        }
        self.positions: dict[KafkaTopicPartition, int] = {}
        self.assigned: set[KafkaTopicPartition] = set()
        self.paused: set[KafkaTopicPartition] = set()
        self.pause_history: list[set[KafkaTopicPartition]] = []
        self.commits: list[dict[KafkaTopicPartition, int]] = []
        self.committed: dict[KafkaTopicPartition, int] = {}
        self.commit_error: BaseException | None = None
        self.poll_errors: list[BaseException] = []
        self.listener: Any = None
        self.kwargs: dict[str, Any] = {}
        self.started = self.stopped = False
        self.stop_blocks = False
        self._rebalances: list[tuple[str, list[KafkaTopicPartition]]] = []
        self._arrived = asyncio.Event()
        self.rebalancing: str | None = None  # "assign"/"revoke" while the listener runs

    def tp(self, partition: int = 0) -> KafkaTopicPartition:
        return KafkaTopicPartition(self.topic, partition)

    def add(
        self,
        value: bytes | None,
        *,
        partition: int = 0,
        key: bytes | None = b"k",
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> int:
        """Append a record; returns its offset."""
        records = self.log[self.tp(partition)]
        offset = len(records)
        records.append(
            FakeRecord(
                self.topic,
                partition,
                offset,
                key,
                value,
                tuple(headers),
                int(time.time() * 1000),
            )
        )
        self._arrived.set()
        return offset

    def assign(self, *partitions: int) -> None:
        self._rebalances.append(("assign", [self.tp(p) for p in partitions]))
        self._arrived.set()

    def revoke(self, *partitions: int) -> None:
        self._rebalances.append(("revoke", [self.tp(p) for p in partitions]))
        self._arrived.set()

    # ConsumerLike
    def subscribe(self, topics: Sequence[str], *, listener: Any) -> None:
        assert list(topics) == [self.topic]
        self.listener = listener
        self.assign(*(tp.partition for tp in self.log))

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        if self.stop_blocks:
            await asyncio.Event().wait()
        self.stopped = True

    async def getmany(
        self, *partitions: Any, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[Any, list[Any]]:
        while self._rebalances:
            kind, tps = self._rebalances.pop(0)
            self.rebalancing = kind
            if kind == "assign":
                self.assigned.update(tps)
                for tp in tps:
                    self.positions[tp] = self.committed.get(tp, 0)
                await self.listener.on_partitions_assigned(tps)
            else:
                await self.listener.on_partitions_revoked(tps)
                self.assigned.difference_update(tps)
                self.paused.difference_update(tps)
            self.rebalancing = None
        if self.poll_errors:
            raise self.poll_errors.pop(0)
        out = self._fetch(max_records or 500)
        if not out:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout_ms / 1000)
            out = self._fetch(max_records or 500)
        return out

    def _fetch(self, limit: int) -> dict[Any, list[Any]]:
        out: dict[Any, list[Any]] = {}
        for tp in sorted(self.assigned - self.paused):
            position = self.positions[tp]
            records = self.log[tp][position : position + limit]
            if records:
                out[tp] = records
                self.positions[tp] = position + len(records)
                limit -= len(records)
            if limit <= 0:
                break
        return out

    async def commit(self, offsets: dict[Any, int]) -> None:
        if self.commit_error is not None:
            raise self.commit_error
        self.commits.append(dict(offsets))
        self.committed.update(offsets)

    def assignment(self) -> set[Any]:
        return set(self.assigned)

    def pause(self, *partitions: Any) -> None:
        self.paused.update(partitions)
        self.pause_history.append(set(self.paused))

    def resume(self, *partitions: Any) -> None:
        self.paused.difference_update(partitions)
        self.pause_history.append(set(self.paused))

    def highwater(self, partition: Any) -> int | None:
        return len(self.log[partition]) if partition in self.log else None


class FakeProducer:
    """`ProducerLike` for a real `KafkaEventProducer`: keeps what was sent; the first
    `fail_sends` sends fail."""

    def __init__(self, fail_sends: int = 0) -> None:
        self.fail_sends = fail_sends
        self.failed = 0
        self.sent: list[FakeRecord] = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def flush(self) -> None:
        pass

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.failed < self.fail_sends:
            self.failed += 1
            future.set_exception(ConnectionError("dead-letter topic unreachable"))
            return future
        offset = len(self.sent)
        self.sent.append(FakeRecord(topic, 0, offset, key, value, tuple(headers or ()), 0))
        future.set_result(RecordMetadata(topic, 0, offset))
        return future


UNIT_SETTINGS = KafkaSettings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"})


@dataclass
class Rig:
    """A harness wired to a `FakeConsumer` and (through `KafkaEventProducer`) a `FakeProducer`."""

    harness: KafkaConsumerHarness
    consumer: FakeConsumer
    producer: FakeProducer
    metrics: KafkaMetrics

    def dead_letters(self) -> list[FakeRecord]:
        return self.producer.sent

    def committed(self, partition: int = 0) -> int | None:
        return self.consumer.committed.get(self.consumer.tp(partition))

    def sample(self, name: str, **labels: str) -> float:
        return sample(self.metrics.registry, name, **labels)


class Fakes:
    """The fakes above, as a fixture (test modules cannot import conftest)."""

    TOPIC = UNIT_TOPIC
    FakeConsumer = FakeConsumer
    FakeProducer = FakeProducer
    Rig = Rig
    event = staticmethod(lambda n=0: encode_event(make_event(f"run-{n}", n)))

    @staticmethod
    def rig(
        handler: Any,
        *,
        partitions: int = 1,
        fail_sends: int = 0,
        settings: KafkaSettings = UNIT_SETTINGS,
        **options: Any,
    ) -> Rig:
        consumer = FakeConsumer(partitions=partitions)
        fake_producer = FakeProducer(fail_sends)
        metrics = KafkaMetrics(CollectorRegistry())
        producer = KafkaEventProducer(
            settings, metrics=metrics, producer_factory=lambda kwargs: fake_producer
        )

        def factory(kwargs: dict[str, Any]) -> FakeConsumer:
            consumer.kwargs = kwargs
            return consumer

        options.setdefault("retry_policy", FAST_RETRY)
        options.setdefault("commit_interval", 0.01)
        options.setdefault("poll_timeout", 0.01)
        harness = KafkaConsumerHarness(
            settings,
            [UNIT_TOPIC],
            "unit-group",
            handler,
            producer=producer,
            metrics=metrics,
            consumer_factory=factory,
            **options,
        )
        return Rig(harness, consumer, fake_producer, metrics)


FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.05, jitter=0.1)


@pytest.fixture
def fakes() -> type[Fakes]:
    return Fakes
