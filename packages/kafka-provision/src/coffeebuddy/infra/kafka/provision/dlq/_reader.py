"""Reading a topic: the `TopicReader` seam and its aiokafka implementation.

Topics are read with a group-less consumer (assign + seek, never a group commit) from each
partition's start to the end offsets seen when the read starts, so reading changes nothing on
the cluster. `KafkaTopicReader` also reads chosen partitions only, and follows a topic past
that end (the `reminders` commands: `show` reads one partition, `list --watch` follows).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition

from coffeebuddy.infra.kafka.config import KafkaSettings, check_connection, topic_partitions
from coffeebuddy.infra.kafka.provision.dlq._errors import DlqError, TopicMissingError


@dataclass(frozen=True)
class StoredRecord:
    """One record as read back from a topic (what the DLQ tools need of a consumer record)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


class TopicReader(Protocol):
    """Reads every record of a topic up to its current end; `what` names the topic in errors."""

    async def read(self, topic: str, *, what: str = "dead-letter topic") -> Sequence[StoredRecord]:
        """Raises `TopicMissingError` when the topic does not exist."""
        ...


class KafkaTopicReader:
    """`TopicReader` over aiokafka with the settings' consumer options (TLS, SASL, ...)."""

    def __init__(self, settings: KafkaSettings, *, timeout: float = 30.0) -> None:
        self.settings = settings
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"KafkaTopicReader({self.settings.describe()!r}, timeout={self.timeout})"

    async def read(
        self,
        topic: str,
        *,
        what: str = "dead-letter topic",
        partitions: Collection[int] | None = None,
    ) -> list[StoredRecord]:
        """Every record of `topic` (or of its `partitions`), at least up to the end offsets seen
        when the read starts."""
        out: list[StoredRecord] = []
        async with contextlib.aclosing(self.follow(topic, what=what, partitions=partitions)) as it:
            async for batch in it:
                if batch is None:
                    break
                out += batch
        return out

    async def partition_count(self, topic: str, *, what: str = "dead-letter topic") -> int:
        """How many partitions `topic` has; `TopicMissingError` when it is not in the metadata."""
        consumer = await self._start()
        try:
            return len(await self._partitions(consumer, topic, what))
        finally:
            await consumer.stop()

    async def follow(
        self,
        topic: str,
        *,
        what: str = "dead-letter topic",
        partitions: Collection[int] | None = None,
    ) -> AsyncGenerator[list[StoredRecord] | None, None]:
        """Every record from each partition's start, in batches as fetched; `None` once each
        partition's end seen at the start is reached (within `timeout`); then new records as
        they arrive, until the caller stops (close it: `contextlib.aclosing`). Each partition is
        read in offset order."""
        consumer = await self._start()
        try:
            ids = await self._partitions(consumer, topic, what)
            if partitions is not None:
                unknown = sorted(set(partitions) - ids)
                if unknown:
                    raise DlqError(
                        f"{what} {topic!r} has no partition {unknown} (it has {len(ids)})"
                    )
                ids = set(partitions)
            tps = [TopicPartition(topic, p) for p in sorted(ids)]
            consumer.assign(tps)
            ends: dict[Any, int] = await consumer.end_offsets(tps)
            starts: dict[Any, int] = await consumer.beginning_offsets(tps)
            for tp in tps:
                consumer.seek(tp, starts[tp])
            # A partition is read once its position reaches the larger of the end offset seen at
            # the start and the high watermark of its first fetch response: the embedded broker
            # answers ListOffsets with a stale end (hundreds of records short after a burst),
            # while its fetch responses carry the true one. Every record fetched is kept.
            targets: dict[Any, int] = {}
            pending = set(tps)
            deadline = time.monotonic() + self.timeout
            while pending:
                if time.monotonic() > deadline:
                    left = {
                        f"{tp.topic}[{tp.partition}]": targets.get(tp, ends[tp]) for tp in pending
                    }
                    raise DlqError(
                        f"timed out after {self.timeout}s reading {topic!r} up to {left}"
                    )
                # short: an empty partition answers with no records, and only its high
                # watermark (known once its fetch returned) says it is read
                batches = await consumer.getmany(*pending, timeout_ms=100)
                # let the fetcher send its next requests before the caller works through these
                # (the broker then serves them meanwhile): without it, fetching and the
                # caller's work take turns
                await asyncio.sleep(0)
                for records in batches.values():
                    yield [_stored(r) for r in records]
                for tp in list(pending):
                    highwater = consumer.highwater(tp)
                    if highwater is None:  # no fetch response for it yet
                        continue
                    target = targets.setdefault(tp, max(ends[tp], highwater))
                    if await consumer.position(tp) >= target:
                        pending.discard(tp)
            yield None
            while True:
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    yield [_stored(r) for r in records]
        finally:
            await consumer.stop()

    async def _start(self) -> AIOKafkaConsumer:
        # an empty partition's fetch is answered after fetch_max_wait_ms: keep that short
        kwargs = {**self.settings.consumer_kwargs(None), "fetch_max_wait_ms": 100}
        consumer = AIOKafkaConsumer(**kwargs)
        try:
            await consumer.start()
        except Exception:
            with contextlib.suppress(Exception):
                await consumer.stop()  # else its finaliser reports an unclosed consumer at exit
            # aiokafka's bare start failure says little; check_connection raises the reason
            await check_connection(self.settings, timeout=10.0)
            raise
        return consumer

    @staticmethod
    async def _partitions(consumer: AIOKafkaConsumer, topic: str, what: str) -> set[int]:
        if topic not in await consumer.topics():
            raise TopicMissingError(f"{what} {topic!r} does not exist on the cluster", topic)
        ids = await topic_partitions(consumer, topic)
        if not ids:
            raise DlqError(f"{what} {topic!r} has no partitions in the cluster metadata")
        return ids


def _stored(record: Any) -> StoredRecord:
    headers = record.headers
    return StoredRecord(
        record.topic,
        record.partition,
        record.offset,
        record.timestamp,
        record.key,
        record.value,
        tuple((k, bytes(v or b"")) for k, v in headers) if headers else (),
    )
