"""Reading a whole topic once: the `TopicReader` seam and its aiokafka implementation.

Topics are read with a group-less consumer (assign + seek, never a group commit) from each
partition's start to the end offsets seen when the read starts, so reading changes nothing on
the cluster.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
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

    async def read(self, topic: str, *, what: str = "dead-letter topic") -> list[StoredRecord]:
        consumer = AIOKafkaConsumer(**self.settings.consumer_kwargs(None))
        try:
            await consumer.start()
        except Exception:
            with contextlib.suppress(Exception):
                await consumer.stop()  # else its finaliser reports an unclosed consumer at exit
            # aiokafka's bare start failure says little; check_connection raises the reason
            await check_connection(self.settings, timeout=10.0)
            raise
        try:
            return await self._read(consumer, topic, what)
        finally:
            await consumer.stop()

    async def _read(self, consumer: AIOKafkaConsumer, topic: str, what: str) -> list[StoredRecord]:
        if topic not in await consumer.topics():
            raise TopicMissingError(f"{what} {topic!r} does not exist on the cluster", topic)
        tps = [TopicPartition(topic, p) for p in sorted(await topic_partitions(consumer, topic))]
        if not tps:
            raise DlqError(f"{what} {topic!r} has no partitions in the cluster metadata")
        consumer.assign(tps)
        ends: dict[Any, int] = await consumer.end_offsets(tps)
        starts: dict[Any, int] = await consumer.beginning_offsets(tps)
        for tp in tps:
            consumer.seek(tp, starts[tp])
        out: list[StoredRecord] = []
        pending = {tp for tp in tps if starts[tp] < ends[tp]}
        deadline = time.monotonic() + self.timeout
        while pending:
            if time.monotonic() > deadline:
                left = {f"{tp.topic}[{tp.partition}]": ends[tp] for tp in pending}
                raise DlqError(f"timed out after {self.timeout}s reading {topic!r} up to {left}")
            batches = await consumer.getmany(*pending, timeout_ms=500)
            for tp, records in batches.items():
                out.extend(_stored(r) for r in records if r.offset < ends[tp])
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        return out


def _stored(record: Any) -> StoredRecord:
    return StoredRecord(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp,
        key=record.key,
        value=record.value,
        headers=tuple((k, bytes(v or b"")) for k, v in (record.headers or ())),
    )
